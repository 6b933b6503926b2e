"""Trained models that learnt nothing: accuracy at the chance floor on every test set.

A learning rate that drives the loss to 1e10 without a NaN, or too few epochs, leaves models at chance
while every task finishes; the barriers and claims then have no mechanism to show (the claims say "not
testable" comparison by comparison). The run's summary, `mmc-sweep claims` and the report name such
models once, by kind, with the settings that trained them. The floor is the claims' own
(`ClaimRules.floor_acc` above chance).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from orchestrator.report import stats
from orchestrator.report.verdicts import PP
from orchestrator.spec.claim_rules import ADVICE, STORED_BN, learnt_nothing, training_course
from tasks.settings.finetune import loss_is_cross_entropy

# The settings that decide whether a model of a row of Table 1 learns (`<section>.<field>`).
_PRETRAIN = ("pretrain.lr", "pretrain.epochs")
_FINETUNE = ("finetune.lr", "finetune.epochs")
_SETTINGS = {stats.PRETRAINED_NOCUE: _PRETRAIN, stats.PRETRAINED_CUE: _PRETRAIN,
             "llrt": (*_FINETUNE, "finetune.llrt_lr", "finetune.llrt_epochs")}


HEAD = "models learnt nothing"       # the warning's first words (the report's banner shows them in bold)


@dataclass(frozen=True)
class Unlearnt:
    """The models of one row of Table 1 (`stats.row_label`; of one architecture where the sweep has several)
    at the chance floor on every set."""
    label: str                               # the row, "· <model>" where the sweep has several
    count: int
    total: int
    best_acc: float                          # the highest accuracy of those models on any set
    example: str                             # one of their task ids
    settings: tuple[tuple[str, str], ...]    # (column, its values among them)
    final_loss: float | None = None          # the median of their last epochs' training losses
    course: str | None = None                # what that loss tells (`claim_rules.training_course`), or STORED_BN
    endpoint_acc: float | None = None        # the best accuracy of their path endpoints (BatchNorm re-estimated)


def unlearnt(evaluations: pd.DataFrame, chance: float | None, floor_acc: float,
             spec: Mapping | None = None, curves: pd.DataFrame | None = None,
             paths: pd.DataFrame | None = None) -> list[Unlearnt]:
    """Per row of Table 1, the trained models whose accuracy on every set they were tested on is within
    `floor_acc` of `chance` (a cue model that learnt only the cue is above it on the cued set, so it counts
    as learnt), with the values of the settings that trained them: a swept setting's from its column of
    `evaluations`, any other's from the sweep's resolved `spec`; with their training `curves`, the median
    of their last training losses and what it tells; with the `paths` table, where the same models as path
    endpoints (their BatchNorm statistics re-estimated) score above the floor, that the stored statistics,
    not the weights, sit at chance (STORED_BN). [] without a chance level or evaluations."""
    if chance is None or evaluations.empty or not {"task_id", "kind", "acc"} <= set(evaluations.columns):
        return []
    ev = evaluations[evaluations["acc"].notna()]
    first = ev.drop_duplicates("task_id").set_index("task_id")
    best = ev.groupby("task_id", sort=False)["acc"].max().reindex(first.index).to_numpy(dtype=float)
    none = pd.Series(None, index=first.index, dtype=object)
    kinds = first["kind"].astype(object)
    methods = first["method"].astype(object) if "method" in first else none
    proportions = first["cue_proportion"].astype(object) if "cue_proportion" in first else none
    labels = pd.Series([stats.row_label(k, m, p) for k, m, p in zip(kinds, methods, proportions)], index=first.index)
    models = first["model"].astype(object) if "model" in first else none
    several = len(stats.order_values(models, ())) > 1        # then each model's rows on their own
    last_loss = _last_training_loss(curves)
    cross_entropy = [loss_is_cross_entropy(m if isinstance(m, str) else None) for m in methods]
    last_loss = last_loss[last_loss.index.isin(first.index[cross_entropy])]   # (CBFT's adds its invariance term)
    at_ends = _endpoint_best(paths)
    out = []
    for model in stats.order_values(models, ()) if several else [None]:
        for label in stats.order_values(labels.dropna(), stats.row_order()):
            mine = ((labels == label) & ((models == model) if several else True)).to_numpy()
            low = mine & learnt_nothing(best, chance, floor_acc)
            if not low.any():
                continue
            rows = first[low]
            settings = tuple((name, values) for name in _SETTINGS.get(label, _FINETUNE)
                             if (values := _values(rows, name, spec)))
            losses = last_loss.reindex(rows.index).dropna()
            loss = float(losses.median()) if len(losses) else None
            ends = at_ends.reindex(rows.index).dropna()
            ends_best = float(ends.max()) if len(ends) else None
            course = STORED_BN if ends_best is not None and not learnt_nothing(ends_best, chance, floor_acc) else \
                training_course(loss, round(1 / chance))
            out.append(Unlearnt(f"{label} · {model}" if several else label, int(low.sum()), int(mine.sum()),
                                float(best[low].max()), str(rows.index[0]), settings, loss, course, ends_best))
    return out


def _endpoint_best(paths: pd.DataFrame | None) -> pd.Series:
    """Task id -> the best accuracy on any set of the model as a path endpoint (`stats.path_endpoints`), its
    BatchNorm statistics re-estimated; empty without paths."""
    needed = {"alpha", "acc", "endpoint_a", "endpoint_b"}
    if paths is None or paths.empty or not needed <= set(paths.columns):
        return pd.Series(dtype=float)
    ends = pd.concat([rows[[column, "acc"]].set_axis(["task_id", "acc"], axis=1)
                      for _, column, rows in stats.path_endpoints(paths)])
    return ends.dropna().groupby("task_id", sort=False)["acc"].max().astype(float)


def _last_training_loss(curves: pd.DataFrame | None) -> pd.Series:
    """Task id -> its last epoch's training loss; empty without curves. Every `train_curves` row is a
    training epoch: split "train", or "llrt" for head-only epochs (all of LLRT's, LP-FT's first ones)."""
    if curves is None or curves.empty or not {"task_id", "epoch", "loss"} <= set(curves.columns):
        return pd.Series(dtype=float)
    train = curves.sort_values("epoch", kind="stable")
    return train.groupby("task_id", sort=False)["loss"].last().astype(float)


def _values(rows: pd.DataFrame, name: str, spec: Mapping | None) -> str:
    """`name`'s values among `rows` (its column where swept, else the spec's value), as text; "" if unknown."""
    if name in rows and rows[name].notna().any():
        found = sorted(rows[name].dropna().unique())
    else:
        section, field = name.split(".")
        value = (spec or {}).get(section, {}).get(field) if isinstance((spec or {}).get(section), Mapping) else None
        found = [] if value is None or isinstance(value, (dict, list)) else [value]
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in found)


def warning_text(found: list[Unlearnt], chance: float, floor_acc: float) -> str:
    """One `warning:` line for the models in `found` ("" for none)."""
    if not found:
        return ""
    groups = "; ".join(f"{u.label}: {u.count} of {u.total} (best {u.best_acc:.1%}, e.g. {u.example}"
                       + "".join(f", {name} {values}" for name, values in u.settings)
                       + (f", last training loss {u.final_loss:.3g}" if u.final_loss is not None else "")
                       + (f", as path endpoints up to {u.endpoint_acc:.1%}" if u.course == STORED_BN else "") + ")"
                       for u in found)
    guess = (f" (a constant guess's training loss: {math.log(round(1 / chance)):.2f})"
             if chance and any(u.final_loss is not None for u in found) else "")
    advice = "; ".join(dict.fromkeys(ADVICE[u.course] for u in found))
    lead = "Their paths and claims cannot show a mechanism" if any(u.course != STORED_BN for u in found) else \
        "The claims that read their evaluations cannot show a mechanism"
    return (f"warning: {HEAD}, their accuracy on every test set within {PP * floor_acc:g} pp "
            f"of chance ({chance:.0%}){guess}: {groups}. {lead}; {advice}.")
