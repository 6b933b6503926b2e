"""The training curves of the models of Table 1, as the report's training figure draws them.

Every `train_curves` row is one epoch of a training task: its training loss and accuracy (split "train",
or "llrt" for an epoch that trains the head alone: every epoch of LLRT, the first phase of LP-FT). A row of
Table 1 (`stats.row_label`: the pretrained models without and with the cue, each fine-tuning method) gets
one curve per cue proportion: the mean over its models at each epoch, and their spread. It is where a model
that learnt nothing shows why (`report.learnt`): a loss above a constant guess's, flat at it, or falling
while the test sets stay at chance.
"""
from __future__ import annotations

import pandas as pd

from orchestrator.report.stats import order_values, row_label, row_order, with_labels
from tasks.settings.finetune import HEAD_ONLY_SPLIT

COLUMNS = ("row", "cue_proportion", "epoch", "head_only", "n", "loss_mean", "loss_min", "loss_max", "acc_mean",
           "acc_min", "acc_max")


def curves_long(curves: pd.DataFrame, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (row of Table 1, cue proportion, epoch), in Table 1's row order: how many models reached
    that epoch (`n`), the mean, lowest and highest of their training loss and accuracy, and whether the epoch
    trained the head alone. Labels missing from `curves` come from `tasks`, whose unfinished tasks are left
    out (`stats.with_labels`); midpoints (no row of Table 1) are not drawn. Empty without such rows."""
    needed = {"task_id", "epoch", "loss", "acc"}
    if curves is None or curves.empty or not needed <= set(curves.columns):
        return pd.DataFrame(columns=list(COLUMNS))
    wanted = ("task_id", "kind", "method", "cue_proportion", "epoch", "split", "loss", "acc")
    rows = with_labels(curves[[c for c in wanted if c in curves.columns]], tasks)   # (a 10^5-task sweep: 10^6 rows)
    first = rows.drop_duplicates("task_id")          # a task's row of Table 1 is the same at every epoch
    label = dict(zip(first["task_id"], [row_label(k, m, p) for k, m, p in
                                        zip(first["kind"], first["method"], first["cue_proportion"])]))
    rows = rows.assign(row=rows["task_id"].map(label),
                       head_only=(rows["split"] == HEAD_ONLY_SPLIT) if "split" in rows else False)
    rows = rows[rows["row"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    rows = rows.assign(cue_proportion=rows["cue_proportion"].astype(float).fillna(0.0),
                       loss=rows["loss"].astype(float), acc=rows["acc"].astype(float))
    grouped = rows.groupby(["row", "cue_proportion", "epoch"], sort=False)
    out = grouped.agg(head_only=("head_only", "any"), n=("task_id", "nunique"), loss_mean=("loss", "mean"),
                      loss_min=("loss", "min"), loss_max=("loss", "max"), acc_mean=("acc", "mean"),
                      acc_min=("acc", "min"), acc_max=("acc", "max")).reset_index()
    rank = {r: i for i, r in enumerate(order_values(out["row"], row_order()))}
    out = out.assign(_r=out["row"].map(rank), epoch=out["epoch"].astype(int), n=out["n"].astype(int))
    return out.sort_values(["_r", "cue_proportion", "epoch"]).drop(columns="_r").reset_index(drop=True)[list(COLUMNS)]
