"""A synthetic sweep's result rows, shaped like a real sweep's (every table, 3 seeds, 6 pair/path
combinations, 11 alphas, 4 evaluation sets), for tests of tables, statistics and the report.

`synthetic_sweep()` returns table -> task id -> rows; `write_sweep(layout, tables)` writes them as
fragments. Loss curves are a bump of known height per pair, so barriers are known in advance.
"""
from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np

from orchestrator.tables import SCHEMAS, write_fragment
from orchestrator.vocab import FINISHED

EVAL_SETS = ("nocue", "cue", "randcue", "randimg")
ALPHAS = [i / 10 for i in range(11)]
SEEDS = (0, 1, 2)
# (pair_type, path_kind, alignment, cue_proportion, height of the loss bump)
PAIRS = (
    ("cue~nocue", "linear", None, 0.8, 2.0),
    ("cue~nocue", "quadratic", None, 0.8, 0.2),
    ("cue~nocue", "aligned", "activation", 0.8, 1.2),
    ("cue~cue", "linear", None, 0.8, 0.1),
    ("pretrained~ft:naive", "linear", None, 0.8, 0.05),
    ("pretrained~ft:cbft", "linear", None, 0.8, 1.5),
)
METHODS = ("naive", "cbft")


def _barrier_rows(path_rows: list[dict]) -> list[dict]:
    """Chord and mean-endpoint barriers of loss (and accuracy drop), computed directly."""
    out = []
    for eval_set in EVAL_SETS:
        rows = sorted((r for r in path_rows if r["eval_set"] == eval_set), key=lambda r: r["alpha"])
        a = np.array([r["alpha"] for r in rows])
        for metric, sign in (("loss", 1.0), ("acc", -1.0)):
            v = sign * np.array([r[metric] for r in rows])
            chord = np.max(v - ((1 - a) * v[0] + a * v[-1]))
            mean_end = np.max(v) - 0.5 * (v[0] + v[-1])
            for definition, value in (("chord", chord), ("mean_endpoints", mean_end)):
                out.append({"eval_set": eval_set, "metric": metric, "definition": definition,
                            "value": float(value)})
    return out


def synthetic_sweep(seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """Result rows shaped like a real sweep: table -> task_id -> rows.
    3 seeds; pretrain at cue proportion 0 and 0.8; naive and cbft fine-tuning; 6 pair/path
    combinations; 11 alphas; 4 eval sets."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    tables: dict[str, dict[str, list[dict]]] = {t: {} for t in SCHEMAS}
    n_task = 0

    def task_row(task_id, kind, **labels):
        nonlocal n_task
        start = t0 + dt.timedelta(seconds=10 * n_task)
        n_task += 1
        return {"task_id": task_id, "kind": kind, "status": FINISHED, "parents": [],
                "spec_hash": "abc123", "dataset": "digits", "model": "small_cnn",
                "started_at": start, "finished_at": start + dt.timedelta(seconds=7.5),
                "duration_s": 7.5, "device": "cpu", "git_rev": "deadbeef",
                "torch_version": "2.13.0", "cached": False, **labels}

    for p in (0.0, 0.8):
        for s in SEEDS:
            tid = f"pretrain-p{p}-s{s}"
            labels = {"cue_proportion": p, "seed": s}
            tables["tasks"][tid] = [task_row(tid, "pretrain", **labels)]
            accs = {"nocue": 0.8, "cue": 0.95, "randcue": 0.8, "randimg": 0.1} if p == 0 else \
                   {"nocue": 0.7, "cue": 0.99, "randcue": 0.1, "randimg": 0.95}
            tables["evaluations"][tid] = [
                {"kind": "pretrain", "dataset": "digits", "model": "small_cnn", **labels,
                 "eval_set": e, "loss": float(rng.uniform(0.1, 2)),
                 "acc": float(np.clip(a + rng.normal(0, 0.02), 0, 1)), "n": 397}
                for e, a in accs.items()]
            tables["train_curves"][tid] = [
                {"kind": "pretrain", "epoch": ep, "split": "train", "loss": 2.0 / (ep + 1),
                 "acc": 1 - 1 / (ep + 2), "lr": 0.05} for ep in range(5)]
    for method in METHODS:
        for s in SEEDS:
            tid = f"finetune-{method}-s{s}"
            labels = {"cue_proportion": 0.8, "seed": s, "method": method}
            tables["tasks"][tid] = [task_row(tid, "finetune", parents=[f"pretrain-p0.8-s{s}"],
                                             **labels)]
            tables["evaluations"][tid] = [
                {"kind": "finetune", "dataset": "digits", "model": "small_cnn", **labels,
                 "eval_set": e, "loss": float(rng.uniform(0.1, 2)),
                 "acc": float(rng.uniform(0.1, 0.9)), "n": 397} for e in EVAL_SETS]
    for pair_type, path_kind, alignment, p, bump in PAIRS:
        for s in SEEDS:
            tid = re.sub(r"[^A-Za-z0-9.]+", "_", f"path_eval-{pair_type}-{path_kind}-{alignment}-s{s}")
            design = "fine-tuned" if pair_type.startswith("pretrained~ft") else "independent"
            labels = {"pair_type": pair_type, "pair_design": design, "path_kind": path_kind, "alignment": alignment,
                      "cue_proportion": p, "seed": s, "endpoint_a": f"a{s}", "endpoint_b": f"b{s}",
                      "init_seed_a": 100 + s, "init_seed_b": 200 + s, "data_seed_a": s, "data_seed_b": s}
            tables["tasks"][tid] = [task_row(tid, "path_eval", **labels)]
            rows = []
            for e in EVAL_SETS:
                for a in ALPHAS:
                    h = bump * math.sin(math.pi * a) * (1 + 0.2 * rng.normal())
                    rows.append({**labels, "dataset": "digits", "model": "small_cnn", "alpha": a,
                                 "eval_set": e, "loss": 0.3 + h, "acc": float(np.clip(0.9 - 0.3 * h, 0, 1))})
            tables["paths"][tid] = rows
            tables["barriers"][tid] = [{**labels, "dataset": "digits", "model": "small_cnn", **b}
                                       for b in _barrier_rows(rows)]
    return tables


def write_sweep(layout, tables: dict[str, dict[str, list[dict]]]) -> None:
    for table, by_task in tables.items():
        for task_id, rows in by_task.items():
            write_fragment(layout, table, task_id, rows)
