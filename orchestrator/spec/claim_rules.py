"""The decision rules of the paper's claims, declared before any result: the spec's `claims:` section.

Every verdict of `orchestrator.report.claims` follows these values and nothing else; the resolved
spec records them (so changing them is a new spec version), and the report and `mmc-sweep claims`
print them next to each verdict. What each rule means, and why these defaults, is in
docs/SCIENCE.md ("Verdicts"). Accuracies and cue-reliance indices are fractions (0.02 = 2 pp).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator import vocab
from tasks.settings import Settings, setting
from tasks.settings.data import EVAL_SETS

METRICS = ("loss", "acc")


def learnt_nothing(best_acc, chance: float, floor_acc: float):
    """Whether a trained model whose best test accuracy is `best_acc` sits at the chance floor: within
    `floor_acc` (`ClaimRules.floor_acc`) of `chance`, inclusive as every floor of the claims. Arrays too. The
    report's summary (`report.learnt`) and the run's watch (`run.unlearnt_watch`) both ask it."""
    return best_acc <= chance + floor_acc


# How a model at chance trained, from its last training loss against a constant guess's (ln classes): the
# loss above 1.5x it, or not finite: the steps overshoot; within 0.8-1.5x: it learnt nothing from its data;
# below 0.8x: it fit its training data and none of its test sets (a cue the tests lack, data memorised).
# Asked only of a cross-entropy loss (`tasks.settings.finetune.loss_is_cross_entropy`: not CBFT's).
DIVERGED, FLAT, FITTED = "diverged", "flat", "fitted"
STORED_BN = "stored_bn"      # at chance as stored, above it with its BatchNorm statistics re-estimated (its paths' endpoints)
ADVICE = {
    STORED_BN: "their path endpoints, the same weights with BatchNorm statistics re-estimated (`paths.bn_data`), score "
               "above chance: the weights learnt and the stored BatchNorm running statistics did not settle (few "
               "epochs, a high learning rate), so the evaluations of the stored models (Table 1, the claims' "
               "reliance) read them at chance: train longer or at a lower learning rate, or trust the paths' numbers",
    DIVERGED: "a training loss over 1.5 times a constant guess's means steps that overshoot: lower the learning "
              "rate",
    FLAT: "a training loss near a constant guess's (0.8 to 1.5 times it) means nothing was learnt from the "
          "training data: train longer, try another learning rate, or check that the data carry a signal",
    FITTED: "a training loss under 0.8 times a constant guess's with every test set at chance means the model "
            "fit what its test sets do not share: check the training data against the test sets, not the "
            "learning rate",
    None: "lower the learning rate or train longer",      # no training loss to tell by
}


def training_course(final_loss, classes: int) -> str | None:
    """DIVERGED, FLAT or FITTED for a model whose last training loss (mean cross-entropy) is `final_loss`
    on `classes` classes; None without a loss or a class count. The report's summary (`report.learnt`) and
    the run's watch (`run.unlearnt_watch`) both ask it of a model at chance (`learnt_nothing`)."""
    if final_loss is None or not classes or classes < 2:
        return None
    guess = math.log(classes)
    if not math.isfinite(final_loss) or final_loss > 1.5 * guess:
        return DIVERGED
    return FLAT if final_loss >= 0.8 * guess else FITTED


@dataclass(frozen=True)
class ClaimRules(Settings):
    level: float = setting(0.95, gt=0.5, lt=1.0, doc="two-sided confidence level of every interval; a comparison "
                           "is decided when its interval excludes 0 (or the margin): alpha = 1 - level")
    power: float = setting(0.8, gt=0.05, lt=1.0, doc="power at which the smallest detectable effect and the seeds a "
                           "decision would take are computed")
    barrier_metric: str = setting("loss", choices=METRICS, doc="barrier metric of the connectivity comparisons "
                                  "(b)-(d): loss (nats) | acc (an accuracy drop)")
    barrier_definition: str = setting("chord", choices=vocab.DEFINITIONS, doc="barrier definition the comparisons "
                                      "use: chord (the paper's) | worse_endpoint (peak above the worse endpoint) | "
                                      "mean_endpoints")
    check_definition: str | None = setting("worse_endpoint", choices=vocab.DEFINITIONS, doc="a second definition "
                                           "every barrier comparison is also decided with; where the two decide "
                                           "opposite ways, the endpoints' own losses decide the comparison and it "
                                           "is not testable; null: no second definition")
    barrier_sets: tuple = setting(("nocue", "cue"), choices=EVAL_SETS, doc="eval sets on which barrier comparisons of (b) and (d) are "
                                  "judged (the two training distributions); each is a comparison of its own")
    basin_sets: tuple = setting(("cue",), choices=EVAL_SETS, doc="eval sets on which (c) 'CBFT leaves the pretrained model's linear "
                                "basin' is judged (CBFT's barrier term acts on cue data)")
    floor_acc: float = setting(0.10, ge=0, le=1, doc="a path sits at the chance floor on a set when, on any of "
                               "its pairs, its lowest accuracy is within this of chance (a model's clean accuracy, "
                               "on any seed) ...")
    floor_loss: float = setting(0.25, ge=0, le=100, doc="... or its highest loss within this (nats) of the chance "
                                "loss ln(classes); a barrier comparison whose lower side sits at the floor is not "
                                "testable (the barrier is then chance loss minus endpoint loss)")
    barrier_effect: float = setting(0.05, gt=0, le=100, doc="smallest barrier difference the claims are about (the "
                                    "metric's units); an undecided comparison that could not detect it at `power` "
                                    "with the seeds run is not testable (underpowered), not 'cannot be separated'")
    reliance_effect: float = setting(0.05, gt=0, le=1, doc="smallest difference of a cue-reliance index or an "
                                     "accuracy the claims are about (0.05 = 5 pp), as `barrier_effect`")
    acc_margin: float = setting(0.02, ge=0, le=1, doc="(c) non-inferiority margin: CBFT's clean accuracy may be at "
                                "most this below naive fine-tuning's and naive_cued's (the paper's 2 pp)")
    keep_fraction: float = setting(0.5, ge=0, le=1, doc="(b) naive fine-tuning keeps the cue reliance: its randimg "
                                   "reliance is above this fraction of its own parent's (paired)")
    no_reliance_margin: float = setting(0.05, gt=0, le=1, doc="(c, supporting) 'no reliance left': CBFT's reliance "
                                        "indices within +- this of 0 (equivalence, two one-sided tests); (a, "
                                        "supporting) the no-cue models' randimg reliance within +- this of 0; (b, "
                                        "c) keeping or lowering a reliance whose mean is within this of 0 is not "
                                        "testable (there is none); (d) comparing cue~nocue with same-data pairs "
                                        "where the cue models' randimg reliance is within this of 0 is not "
                                        "testable (no cue learnt)")
    aligned_works: float = setting(0.1, gt=0, le=100, doc="(d) independent-init pairs are compared after alignment "
                                   "only where alignment works for their same-data controls: each control's "
                                   "aligned barrier has its upper interval bound below this")
    reliance_cut: float = setting(0.25, gt=0, lt=1, doc="(e) a model relies on the cue when its randimg reliance "
                                  "(acc(randimg) - chance) is above this: the reliance groups of the mechanism map")
    permutations: int = setting(2000, ge=100, le=1_000_000, doc="(e) relabelings of the models drawn for its "
                                "permutation tests (every relabeling when there are at most this many)")

    def cross_problems(self) -> list[tuple[str, str]]:
        out = []
        for name in ("barrier_sets", "basin_sets"):
            if not getattr(self, name):
                out.append((name, f"[] is empty; give at least one of {', '.join(EVAL_SETS)}"))
        if self.check_definition == self.barrier_definition:
            out.append(("check_definition", f"{self.check_definition!r} is `barrier_definition` itself; give "
                                            "another definition or null"))
        return out

    @property
    def alpha(self) -> float:
        return 1.0 - self.level
