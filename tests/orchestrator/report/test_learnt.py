"""Trained models that learnt nothing (`orchestrator.report.learnt`): which models count (every set at the
chance floor, the claims' floor), the settings named beside them, and where the warning is shown: the
run's summary, `mmc-sweep claims` and the report's banner."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import build as report, learnt, stats
from orchestrator.spec import claim_rules
from orchestrator.spec.claim_rules import ClaimRules
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.report_data import SPEC, synthetic_sweep, write_sweep

SETS = ("nocue", "cue", "randcue", "randimg")


def _ev(models: dict[str, tuple[str, object, float | None, dict[str, float]]], **columns) -> pd.DataFrame:
    """task id -> (kind, method, cue proportion, eval set -> accuracy): evaluation rows."""
    return pd.DataFrame([{"task_id": t, "kind": kind, "method": method, "cue_proportion": p, "eval_set": e,
                          "acc": acc, "loss": 1.0, "dataset": "digits", **columns}
                         for t, (kind, method, p, accs) in models.items() for e, acc in accs.items()])


def test_a_model_counts_as_unlearnt_only_when_every_set_is_at_the_floor():
    """Chance 0.1, floor 0.1: a model whose best set is 0.2 counts (the claims' floor is inclusive), one at
    0.21 on a single set does not; a cue model that learnt only the cue (chance on nocue, 0.99 on cue) learnt
    something. Groups follow Table 1's rows and count every model of the row."""
    ev = _ev({
        "p-nocue-0": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.2)),
        "p-nocue-1": (vocab.PRETRAIN, None, 0.0, {"nocue": 0.21, "cue": 0.1, "randcue": 0.1, "randimg": 0.1}),
        "p-cue-0": (vocab.PRETRAIN, None, 0.8, {"nocue": 0.1, "cue": 0.99, "randcue": 0.1, "randimg": 0.95}),
        "f-naive-0": (vocab.FINETUNE, "naive", 0.8, dict.fromkeys(SETS, 0.05)),
        "f-naive-1": (vocab.FINETUNE, "naive", 0.8, dict.fromkeys(SETS, 0.08)),
    })
    found = learnt.unlearnt(ev, 0.1, 0.1)
    assert [(u.label, u.count, u.total, u.example) for u in found] == [
        (stats.PRETRAINED_NOCUE, 1, 2, "p-nocue-0"), ("naive", 2, 2, "f-naive-0")]
    assert found[0].best_acc == pytest.approx(0.2) and found[1].best_acc == pytest.approx(0.08)


def test_a_sweep_of_several_architectures_names_the_one_that_learnt_nothing():
    """Two models: the rows are counted per model (a pooled "1 of 2" would hide which architecture failed)."""
    ev = pd.concat([_ev({"p0": (vocab.PRETRAIN, None, 0.8, dict.fromkeys(SETS, 0.1))}, model="vgg13-w8"),
                    _ev({"p1": (vocab.PRETRAIN, None, 0.8, dict.fromkeys(SETS, 0.9))}, model="small_cnn-w8")])
    found = learnt.unlearnt(ev, 0.1, 0.1)
    assert [(u.label, u.count, u.total) for u in found] == [(f"{stats.PRETRAINED_CUE} · vgg13-w8", 1, 1)]
    one = learnt.unlearnt(ev.assign(model="vgg13-w8"), 0.1, 0.1)
    assert [(u.label, u.count, u.total) for u in one] == [(stats.PRETRAINED_CUE, 1, 2)]


def test_nothing_is_flagged_without_a_chance_level_or_rows_or_above_the_floor():
    ev = _ev({"p": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.1))})
    assert learnt.unlearnt(ev, None, 0.1) == []
    assert learnt.unlearnt(ev.iloc[:0], 0.1, 0.1) == []
    assert len(learnt.unlearnt(ev, 0.1, 0.0)) == 1      # chance itself: at a floor of 0 it still counts
    assert learnt.unlearnt(ev.assign(acc=0.101), 0.1, 0.0) == []
    assert learnt.warning_text([], 0.1, 0.1) == ""


def test_the_settings_named_are_a_swept_columns_values_else_the_specs():
    """`pretrain.lr` swept (a column): the values among the unlearnt models only; `pretrain.epochs` not swept:
    the spec's value; LLRT also names its own learning rate; a setting neither has is left out."""
    ev = pd.concat([
        _ev({"p0": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.1))}, **{"pretrain.lr": 50.0}),
        _ev({"p1": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.9))}, **{"pretrain.lr": 0.05}),
        _ev({"f0": (vocab.FINETUNE, "llrt", 0.8, dict.fromkeys(SETS, 0.1))}),
    ])
    spec = {"pretrain": {"lr": 0.05, "epochs": 3}, "finetune": {"lr": 0.01, "llrt_lr": 2.0}}
    found = {u.label: dict(u.settings) for u in learnt.unlearnt(ev, 0.1, 0.1, spec)}
    assert found == {stats.PRETRAINED_NOCUE: {"pretrain.lr": "50", "pretrain.epochs": "3"},
                     "llrt": {"finetune.lr": "0.01", "finetune.llrt_lr": "2"}}
    text = learnt.warning_text(learnt.unlearnt(ev, 0.1, 0.1, spec), 0.1, 0.1)
    assert text.startswith("warning: ") and "within 10 pp of chance (10%)" in text
    assert "pretrained (no cue): 1 of 2 (best 10.0%, e.g. p0, pretrain.lr 50, pretrain.epochs 3)" in text



def _curves(losses: dict[str, tuple], head_only: int = 0) -> pd.DataFrame:
    """`train_curves` rows: each task's training loss per epoch, its first `head_only` epochs split "llrt"
    (LP-FT's first phase; every epoch of LLRT's), as `tasks/finetune.py` labels them."""
    return pd.DataFrame([{"task_id": t, "epoch": e, "split": "llrt" if e < head_only else "train", "loss": loss}
                         for t, course in losses.items() for e, loss in enumerate(course)])


def test_the_last_training_loss_tells_the_cause_and_the_advice_follows_it():
    """Digits (chance 10%, a constant guess's loss ln 10 = 2.30): per row the median of the models' last
    training losses (not the first epoch's; a head-only epoch's where that is the last) decides; each
    cause's advice is said once, in the rows' order; a row without curves keeps the plain advice."""
    ev = _ev({
        "p0": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.1)),
        "p1": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.1)),
        "p2": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.1)),
        "n0": (vocab.FINETUNE, "naive", 0.8, dict.fromkeys(SETS, 0.1)),
        "c0": (vocab.FINETUNE, "cbft", 0.8, dict.fromkeys(SETS, 0.1)),
        "l0": (vocab.FINETUNE, "llrt", 0.8, dict.fromkeys(SETS, 0.1)),
    })
    curves = _curves({"p0": (2.0, 1e10), "p1": (2.0, 5e3), "p2": (9.0, 2.2), "n0": (0.5, 2.31)})
    found = {u.label: u for u in learnt.unlearnt(ev, 0.1, 0.1, curves=curves)}
    assert found[stats.PRETRAINED_NOCUE].final_loss == pytest.approx(5e3)
    assert found[stats.PRETRAINED_NOCUE].course == claim_rules.DIVERGED
    assert (found["naive"].final_loss, found["naive"].course) == (pytest.approx(2.31), claim_rules.FLAT)
    assert (found["cbft"].final_loss, found["cbft"].course) == (None, None)
    assert (found["llrt"].final_loss, found["llrt"].course) == (None, None)
    text = learnt.warning_text(list(found.values()), 0.1, 0.1)
    assert "of chance (10%) (a constant guess's training loss: 2.30): " in text
    assert "pretrained (no cue): 3 of 3 (best 10.0%, e.g. p0, last training loss 5e+03)" in text
    assert text.endswith("Their paths and claims cannot show a mechanism; " + "; ".join(
        claim_rules.ADVICE[c] for c in (claim_rules.DIVERGED, claim_rules.FLAT, None)) + ".")
    fitted = learnt.unlearnt(ev, 0.1, 0.1, curves=_curves({t: (0.01,) for t in ("p0", "p1", "p2", "n0", "c0", "l0")}))
    assert {u.label: u.course for u in fitted} == {stats.PRETRAINED_NOCUE: claim_rules.FITTED, "naive": claim_rules.FITTED,
                                                   "llrt": claim_rules.FITTED, "cbft": None}   # CBFT's loss adds lam x invariance
    head = learnt.unlearnt(ev, 0.1, 0.1, curves=_curves({"l0": (1e9, 2.3)}, head_only=2))   # all head-only: LLRT
    assert [(u.final_loss, u.course) for u in head if u.label == "llrt"] == [(2.3, claim_rules.FLAT)]
    assert learnt.warning_text(fitted, 0.1, 0.1).count(claim_rules.ADVICE[claim_rules.FITTED]) == 1

@pytest.fixture(scope="module")
def unlearnt_sweep(tmp_path_factory):
    """The synthetic sweep with every CBFT model at chance on every set (a blown-up fine-tuning)."""
    layout = SweepLayout(Storage(str(tmp_path_factory.mktemp("learnt"))), "test-sweep")
    data = synthetic_sweep(accuracy={"cbft": dict.fromkeys(SETS, 0.1)},
                           pair_types=("cue~nocue", "pretrained~ft:naive", "pretrained~ft:cbft"))
    write_sweep(layout, data, spec=SPEC + "finetune: {lr: 0.7, epochs: 2}\n")
    return layout


def test_the_run_summary_and_claims_name_the_unlearnt_models_and_their_settings(unlearnt_sweep):
    """What `mmc-sweep run` prints (`summary_text`) says it before the claims; `mmc-sweep claims` first."""
    text = report.summary_text(unlearnt_sweep)[1]
    line = next(x for x in text.splitlines() if x.startswith("warning: "))
    assert "cbft: 3 of 3" in line and "finetune.lr 0.7, finetune.epochs 2" in line
    assert "naive" not in line and "pretrained" not in line
    assert text.index(line) < text.index("claims (details")
    printed = []
    report.print_claims(unlearnt_sweep, log=printed.append)
    assert printed[0].startswith("warning: models learnt nothing") and "cbft: 3 of 3" in printed[0]


def test_the_reports_banner_says_it_and_turns_red_and_claims_md_starts_with_it(unlearnt_sweep, monkeypatch):
    monkeypatch.setattr(report.figures, "draw_all", lambda jobs, processes=None: [b"" for _ in jobs])
    out = report.write_report(unlearnt_sweep)
    page = unlearnt_sweep.storage.read_bytes(out.html).decode()
    banner = page[page.index('<div class="banner'):page.index("</div>", page.index('<div class="banner'))]
    claims_md = unlearnt_sweep.storage.read_bytes(unlearnt_sweep.report_file("claims.md")).decode()
    assert claims_md.startswith("warning: models learnt nothing") and "\n(a) " in claims_md
    assert 'class="banner bad"' in banner and "⚠ Models learnt nothing</strong>, their accuracy" in banner and "cbft: 3 of 3" in banner


def test_a_sweep_whose_models_learnt_says_nothing(tmp_path):
    layout = SweepLayout(Storage(str(tmp_path)), "test-sweep")
    write_sweep(layout, synthetic_sweep(pair_types=("cue~nocue",)))
    assert "warning:" not in report.summary_text(layout)[1]
    assert report.unlearnt_warning(report.read_results(layout), ClaimRules(), SPEC) == ""


def test_a_model_at_chance_as_stored_but_not_as_a_path_endpoint_is_told_apart():
    """A real 2-epoch sweep: a cue model at 18.6% on every set as stored (chance 10%) scored 63% on `cue` as a
    path endpoint, the same weights with their BatchNorm statistics re-estimated. "Train longer, nothing was
    learnt" misdiagnosed it: the warning now says the stored statistics did not settle, with the endpoints'
    best; a model at chance at its endpoints too keeps the training-loss advice."""
    ev = _ev({"p-cue-0": (vocab.PRETRAIN, None, 0.8, dict.fromkeys(SETS, 0.15)),
              "p-cue-1": (vocab.PRETRAIN, None, 0.8, dict.fromkeys(SETS, 0.12))})
    paths = pd.DataFrame([{"endpoint_a": "p-cue-0", "endpoint_b": "p-cue-1", "alpha": alpha, "acc": acc}
                          for alpha, acc in ((0.0, 0.63), (0.5, 0.1), (1.0, 0.14))])
    (found,) = learnt.unlearnt(ev, 0.1, 0.1, paths=paths)
    assert found.course == claim_rules.STORED_BN and found.endpoint_acc == pytest.approx(0.63)
    text = learnt.warning_text([found], 0.1, 0.1)
    assert "as path endpoints up to 63.0%" in text and "the stored BatchNorm running statistics did not settle" in text
    assert "Their paths and claims cannot show a mechanism" not in text
    low = paths.assign(acc=[0.13, 0.1, 0.14])
    (found,) = learnt.unlearnt(ev, 0.1, 0.1, paths=low)
    assert found.course != claim_rules.STORED_BN and "Their paths and claims cannot show a mechanism" in \
        learnt.warning_text([found], 0.1, 0.1)


def test_a_model_above_the_floor_on_one_set_as_a_path_endpoint_is_a_stored_statistics_problem():
    """As a path endpoint the model scores 45% on `cue` and chance on the three other sets: its best endpoint
    accuracy (45%, above the floor), not the mean over the sets (19%, at it), tells that the weights learnt."""
    ev = _ev({"p-cue-0": (vocab.PRETRAIN, None, 0.8, dict.fromkeys(SETS, 0.12))})
    paths = pd.DataFrame([{"endpoint_a": "p-cue-0", "endpoint_b": "p-cue-1", "alpha": alpha, "eval_set": e,
                           "acc": (0.45 if e == "cue" else 0.1) if alpha == 0.0 else 0.1}
                          for alpha in (0.0, 0.5, 1.0) for e in SETS])
    (found,) = learnt.unlearnt(ev, 0.1, 0.1, paths=paths)
    assert found.course == claim_rules.STORED_BN and found.endpoint_acc == pytest.approx(0.45)


def test_the_constant_guess_loss_counts_every_class_of_a_dataset_whose_chance_does_not_invert_exactly():
    """99 classes: 1 / (1 / 99) is 98.99999999999999 in floating point; the class count is 99 (rounded), so a
    last training loss of 6.885, below 1.5 ln 99 = 6.893 and above 1.5 ln 98 = 6.877, is FLAT, not DIVERGED."""
    assert 1 / (1 / 99) < 99
    assert 1.5 * math.log(98) < 6.885 < 1.5 * math.log(99)
    ev = _ev({"p0": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 1 / 99))})
    curves = pd.DataFrame([{"task_id": "p0", "epoch": 0, "split": "train", "loss": 6.885}])
    (found,) = learnt.unlearnt(ev, 1 / 99, 0.1, curves=curves)
    assert found.course == claim_rules.FLAT


def test_the_last_training_loss_is_that_of_the_last_epoch_whatever_order_the_rows_come_in():
    """Rows read from several Parquet files need not be in epoch order: epoch 2's loss (2.31, flat at a
    constant guess's 2.30) is the last one, not the row read last (epoch 0's 1e10)."""
    ev = _ev({"p0": (vocab.PRETRAIN, None, 0.0, dict.fromkeys(SETS, 0.1))})
    curves = _curves({"p0": (1e10, 50.0, 2.31)}).iloc[::-1]
    (found,) = learnt.unlearnt(ev, 0.1, 0.1, curves=curves)
    assert found.final_loss == pytest.approx(2.31) and found.course == claim_rules.FLAT


def test_llrt_names_its_head_only_epochs_beside_its_learning_rates_and_swept_values_go_in_order():
    """LLRT trains the head alone for `finetune.llrt_epochs`: the warning names them with its learning rates;
    a swept setting's values are listed from the lowest, whatever order the models come in."""
    ev = pd.concat([
        _ev({"f0": (vocab.FINETUNE, "llrt", 0.8, dict.fromkeys(SETS, 0.1))}, **{"finetune.lr": 0.5}),
        _ev({"f1": (vocab.FINETUNE, "llrt", 0.8, dict.fromkeys(SETS, 0.1))}, **{"finetune.lr": 0.05}),
    ])
    spec = {"finetune": {"epochs": 2, "llrt_lr": 30.0, "llrt_epochs": 5}}
    (found,) = learnt.unlearnt(ev, 0.1, 0.1, spec)
    assert dict(found.settings) == {"finetune.lr": "0.05, 0.5", "finetune.epochs": "2", "finetune.llrt_lr": "30",
                                    "finetune.llrt_epochs": "5"}


def _unlearnt(label: str, course, endpoint_acc=None) -> learnt.Unlearnt:
    return learnt.Unlearnt(label, 1, 1, 0.1, f"{label}-0", (), None, course, endpoint_acc)


def test_a_group_at_chance_as_endpoints_too_keeps_the_paths_lead_and_only_stored_bn_quotes_endpoints():
    """One group at chance only through its stored BatchNorm statistics, one at chance as path endpoints too:
    the paths of the second cannot show a mechanism either, so the stronger lead is said; only the first's
    endpoint accuracy is quoted (the second's is at chance, no sign of what the weights learnt)."""
    bn = _unlearnt(stats.PRETRAINED_CUE, claim_rules.STORED_BN, endpoint_acc=0.63)
    flat = _unlearnt("naive", claim_rules.FLAT, endpoint_acc=0.12)
    text = learnt.warning_text([bn, flat], 0.1, 0.1)
    assert "Their paths and claims cannot show a mechanism" in text
    assert "as path endpoints up to 63.0%" in text and "12.0%" not in text
    only_bn = learnt.warning_text([bn], 0.1, 0.1)
    assert "The claims that read their evaluations cannot show a mechanism" in only_bn
