"""The orchestrator's vocabulary: every word that names a kind of thing, defined once.

Task kinds, path kinds, pair types and designs, result tables and status words live here and
nowhere else; every other module imports them. Evaluation sets, fine-tuning methods, models and
datasets are the `tasks/` registries (`tasks.settings.data.EVAL_SETS`, `tasks.finetune.FINETUNE_METHODS`,
...), whose names `tasks/settings/` gives without importing torch.
"""
from __future__ import annotations

import re

# ----- task kinds -----
PRETRAIN, FINETUNE, MIDPOINT, ALIGN, PATH_EVAL = "pretrain", "finetune", "midpoint", "align", "path_eval"
TASK_KINDS = (PRETRAIN, FINETUNE, MIDPOINT, ALIGN, PATH_EVAL)          # also the topological order
TRAINING_KINDS = (PRETRAIN, FINETUNE, MIDPOINT)   # may run data-parallel; save a resume state per epoch
BUNDLE_KINDS = (ALIGN, PATH_EVAL)                 # short tasks that may share one Tune trial
MODEL_KINDS = (PRETRAIN, FINETUNE, MIDPOINT, ALIGN)   # write a model's weights (align: B permuted onto A)

# ----- paths -----
LINEAR, QUADRATIC, ALIGNED = "linear", "quadratic", "aligned"
PATH_KINDS = (LINEAR, QUADRATIC, ALIGNED)

# ----- pairs: "<pair>" (design `independent`) or "<pair>:<design>" (a control) -----
CUE_NOCUE, CUE_CUE, NOCUE_NOCUE, PRETRAINED_FT = "cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft"
PAIRS = (CUE_NOCUE, CUE_CUE, NOCUE_NOCUE, PRETRAINED_FT)
# claim (b) compares a fine-tuned model's barrier to its parent with the first of these pair types (independent
# initialisations) a sweep has
FT_REFERENCES = (CUE_CUE, NOCUE_NOCUE, CUE_NOCUE)
INDEPENDENT, SAME_INIT, SPAWN, SELF, FINE_TUNED = "independent", "same-init", "spawn", "self", "fine-tuned"
RESUBSET = "resubset"
# Which designs each pair accepts (the first is the main one). spawn is written `spawn@K` (K epochs shared).
PAIR_DESIGNS = {
    CUE_NOCUE: (INDEPENDENT, SAME_INIT),
    CUE_CUE: (INDEPENDENT, SPAWN, RESUBSET, SELF),
    NOCUE_NOCUE: (INDEPENDENT, SPAWN, SELF),
    PRETRAINED_FT: (FINE_TUNED,),
}
DESIGN_MEANING = {
    INDEPENDENT: "independent initialisations and data order, same data seed",
    SAME_INIT: "the same initialisation and data order; only the data differ (the paper's reference code)",
    SPAWN: "children of one run: the first K epochs shared, then different data order (Frankle et al.)",
    RESUBSET: "the same initialisation and data order, another seeded cued subset at the same proportion: a "
              "same-data control of same-init pairs",
    SELF: "a model with itself, BatchNorm re-estimated on a fresh sample at each alpha: the noise floor",
    FINE_TUNED: "a pretrained cue model and its fine-tuned child",
}
# ASCII digits and the end of the text (`\d` takes any script's digits, `$` a newline before the end): one pair
# type has one spelling, so that the spec's repeat check sees it
_PAIR_TYPE = re.compile(r"^(?P<pair>[a-z]+~[a-z]+)(?::(?P<design>[a-z-]+)(?:@(?P<epoch>[0-9]{1,6}))?)?\Z")


# Pairs of a population (`population:` in the spec): every unordered pair of the models a sweep trains.
# `population` is the pair type and design of the pairs only the population plans; a pair a pair type
# above already plans keeps that type (the same endpoints and path are one task).
POPULATION = "population"


def parse_pair_type(text: str) -> tuple[str, str, int | None]:
    """`cue~cue:spawn@2` -> ("cue~cue", "spawn", 2); `cue~nocue` -> ("cue~nocue", "independent", None).
    Raises ValueError naming what is allowed."""
    match = _PAIR_TYPE.match(text) if isinstance(text, str) else None
    allowed = ", ".join(pair if design == designs[0] else f"{pair}:{design}" + ("@K" if design == SPAWN else "")
                        for pair, designs in PAIR_DESIGNS.items() for design in designs)    # every spelling
    if not match or match["pair"] not in PAIRS:
        raise ValueError(f"{text!r} is not a pair type; allowed: {allowed}")
    pair, design, epoch = match["pair"], match["design"] or PAIR_DESIGNS[match["pair"]][0], match["epoch"]
    if design not in PAIR_DESIGNS[pair] or (pair == PRETRAINED_FT and match["design"]):
        choices = ", ".join(f"{pair}:{d}" + ("@K" if d == SPAWN else "") for d in PAIR_DESIGNS[pair][1:])
        raise ValueError(f"{text!r}: {pair!r} has no design {design!r}; allowed: {pair}"
                         + (f", {choices}" if choices else ""))
    if design == SPAWN and epoch is None:
        raise ValueError(f"{text!r}: write the spawn epoch as `{pair}:spawn@K` (K epochs shared)")
    if design != SPAWN and epoch is not None:
        spawn = f"; `{pair}:spawn@K` shares K epochs" if SPAWN in PAIR_DESIGNS[pair] else ""
        raise ValueError(f"{text!r}: only a spawn design takes an epoch (`@K`): write `{pair}:{design}`{spawn}")
    if epoch is not None and epoch != str(int(epoch)):     # spawn@01 and spawn@1 would be one pair type
        raise ValueError(f"{text!r}: write the spawn epoch without leading zeros: `{pair}:spawn@{int(epoch)}`")
    return pair, design, None if epoch is None else int(epoch)


def pair_type_pattern() -> str:
    """`parse_pair_type`'s pair types as one regular expression (for the JSON schema)."""
    alternatives = []
    for pair, designs in PAIR_DESIGNS.items():
        assert re.fullmatch(r"[a-z~-]+", pair + "".join(designs)), "pair words are [a-z~-]"
        written = [d + ("@(?:0|[1-9][0-9]{0,5})" if d == SPAWN else "") for d in designs]
        alternatives.append(pair if pair == PRETRAINED_FT else f"{pair}(?::(?:{'|'.join(written)}))?")
    return f"^(?:{'|'.join(alternatives)})$"


def shares_only_the_start(pair_type: str) -> bool:
    """A same-data control whose two models share only their start: spawn@0 (one initialisation, another data
    order) or resubset (one initialisation and order, another cued subset). A spawn@K child with K > 0 shares
    K epochs of training as well, so its barrier is a lower baseline than a shared initialisation alone gives
    (claim (d) reads it as supporting only; the mechanism map's threshold does not use it)."""
    _, design, epoch = parse_pair_type(pair_type)
    return design == RESUBSET or (design == SPAWN and epoch == 0)


def pair_proportions(pair: str, design: str, cue_proportions, all_cued=()) -> tuple[float, ...]:
    """The cue proportions of `cue_proportions` a pair type is planned at (its first model's): nocue~nocue
    0.0; the others every proportion > 0, cue~nocue only when 0.0 is there too, and `resubset` only where
    some samples go without the cue: not at 1.0 nor at the proportions of `all_cued` (those that cue every
    sample of the sweep's dataset, `spec.planned_pairs.all_cued`): there is no other cued subset, the partner
    would be the model."""
    if pair == NOCUE_NOCUE:
        return (0.0,) if 0.0 in cue_proportions else ()
    if pair == CUE_NOCUE and 0.0 not in cue_proportions:
        return ()
    return tuple(p for p in cue_proportions if p > 0 and (design != RESUBSET or (p < 1 and p not in all_cued)))


def pair_type_name(pair: str, design: str, epoch: int | None = None, method: str | None = None) -> str:
    """The `pair_type` column: the pair, its design unless it is the main one, the method for fine-tuning."""
    if pair == PRETRAINED_FT:
        return f"{pair}:{method}"
    if design == PAIR_DESIGNS[pair][0]:
        return pair
    return f"{pair}:{design}" + (f"@{epoch}" if design == SPAWN else "")


# ----- result tables -----
TASKS, EVALUATIONS, TRAIN_CURVES, PATHS, BARRIERS = "tasks", "evaluations", "train_curves", "paths", "barriers"
TABLES = (TASKS, EVALUATIONS, TRAIN_CURVES, PATHS, BARRIERS)
METRICS = ("loss", "acc")
DEFINITIONS = ("chord", "mean_endpoints", "worse_endpoint")   # barrier definitions: tasks.paths.BARRIER_DEFINITIONS

# ----- statuses: of a task during a run, and their spellings in the `tasks` table and in MLflow -----
PENDING, RUNNING, DONE, CACHED, FAILED, SKIPPED = "pending", "running", "done", "cached", "failed", "skipped"
RUN_STATUSES = (PENDING, RUNNING, DONE, CACHED, FAILED, SKIPPED)
FINISHED = "finished"                      # a task whose outputs exist (done now or cached earlier)
STATUS_IN_TABLE = {DONE: FINISHED, CACHED: FINISHED, FAILED: FAILED, SKIPPED: SKIPPED}
TABLE_STATUSES = (FINISHED, FAILED, SKIPPED)
MLFLOW_FINISHED, MLFLOW_FAILED, MLFLOW_KILLED = "FINISHED", "FAILED", "KILLED"
STATUS_IN_MLFLOW = {DONE: MLFLOW_FINISHED, CACHED: MLFLOW_FINISHED, FAILED: MLFLOW_FAILED,
                    SKIPPED: MLFLOW_KILLED}   # skipped: never ran
MLFLOW_STATUSES = (MLFLOW_FINISHED, MLFLOW_FAILED, MLFLOW_KILLED)

# ----- failures: errors a rerun with the same settings repeats (training is seeded; bad settings stay bad) -----
REAL_RUNNER = "real"   # the runner of the science (orchestrator.run.work.RUNNERS); tests bring others by import path

DETERMINISTIC_ERRORS = ("DivergenceError", "SettingsError", "DataError", "AlignmentUnsupported", "PluginError")


def error_type(error: str | None) -> str | None:
    """The exception's name in a task's error text (`DivergenceError: loss is nan …` -> `DivergenceError`)."""
    head = (error or "").strip().split(":", 1)[0]
    return head if head.isidentifier() else None

