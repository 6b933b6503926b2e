"""A synthetic finished sweep for the report, claims and statistics tests: result rows shaped like a
real sweep's (written through `tables.write_fragment`, so they fit the schemas), its plan and its
spec.yaml. Numbers are chosen so that every claim (a)–(d) holds with 3 seeds; arguments move them."""
from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.results import outputs, tables
EVAL_SETS = ("nocue", "cue", "randcue", "randimg")
ALPHAS = [i / 10 for i in range(11)]
SEEDS = (0, 1, 2)
METHODS = ("naive", "cbft", "naive_cued")
P = 0.8
ACCURACY = {   # model -> accuracy per eval set (noise added)
    "nocue": {"nocue": 0.80, "cue": 0.82, "randcue": 0.80, "randimg": 0.10},
    "cue": {"nocue": 0.70, "cue": 0.99, "randcue": 0.10, "randimg": 0.95},
    "naive": {"nocue": 0.75, "cue": 0.98, "randcue": 0.20, "randimg": 0.85},
    "cbft": {"nocue": 0.74, "cue": 0.75, "randcue": 0.73, "randimg": 0.11},
    "naive_cued": {"nocue": 0.76, "cue": 0.97, "randcue": 0.30, "randimg": 0.80},
}
# (pair type, path kind, alignment, endpoint A, endpoint B, height of the loss bump)
PAIRS = (
    ("cue~nocue", "linear", None, "cue", "nocue", 2.0),
    ("cue~nocue", "quadratic", None, "cue", "nocue", 0.2),
    ("cue~nocue", "aligned", "activation", "cue", "nocue", 1.5),
    ("cue~nocue:same-init", "linear", None, "cue", "nocue", 0.3),
    ("cue~nocue:same-init", "quadratic", None, "cue", "nocue", 0.02),
    ("cue~cue:spawn@0", "linear", None, "cue", "cue_s", 0.03),
    ("cue~cue:resubset", "linear", None, "cue", "cue_r", 0.02),
    ("cue~cue", "linear", None, "cue", "cue_b", 0.4),
    ("cue~cue", "aligned", "activation", "cue", "cue_b", 0.3),
    ("nocue~nocue", "linear", None, "nocue", "nocue_b", 0.4),
    ("nocue~nocue:self", "linear", None, "nocue", "nocue", 0.01),
    ("pretrained~ft:naive", "linear", None, "cue", "naive", 0.05),
    ("pretrained~ft:cbft", "linear", None, "cue", "cbft", 1.5),
    ("pretrained~ft:naive_cued", "linear", None, "cue", "naive_cued", 0.05),
)
# a clean-accuracy margin the synthetic 3 seeds can decide (the default 2 pp would need about 15)
SPEC = ("# run with: mmc-sweep run sweeps/test.yaml\nname: test-sweep\nseeds: [0, 1, 2]\naxes: []\n"
        "claims: {acc_margin: 0.2, barrier_sets: [nocue, cue]}\n")


def barrier_rows(path_rows: list[dict]) -> list[dict]:
    """Chord, mean-endpoint and worse-endpoint barriers of loss (and accuracy drop), computed directly."""
    out = []
    for eval_set in EVAL_SETS:
        rows = sorted((r for r in path_rows if r["eval_set"] == eval_set), key=lambda r: r["alpha"])
        a = np.array([r["alpha"] for r in rows])
        for metric, sign in (("loss", 1.0), ("acc", -1.0)):
            v = sign * np.array([r[metric] for r in rows])
            chord = np.max(v - ((1 - a) * v[0] + a * v[-1]))
            mean_end = np.max(v) - 0.5 * (v[0] + v[-1])
            worse = np.max(v) - max(v[0], v[-1])
            for definition, value in (("chord", chord), ("mean_endpoints", mean_end), ("worse_endpoint", worse)):
                out.append({"eval_set": eval_set, "metric": metric, "definition": definition, "value": float(value)})
    return out


def synthetic_sweep(seeds=SEEDS, *, lams=None, scale: dict | None = None, accuracy: dict | None = None,
                    pair_types=None, rng_seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """table -> task_id -> rows. `lams`: sweep `finetune.lam` over these values (fine-tuning and its
    pairs carry the column, everything else leaves it null). `scale`: pair type -> factor on the
    loss bumps of its paths; `accuracy`: model -> eval set -> accuracy (overrides ACCURACY);
    `pair_types`: only these pairs (fewer figures, for tests that need few)."""
    rng = np.random.default_rng(rng_seed)
    acc_of = {m: {**v, **(accuracy or {}).get(m, {})} for m, v in ACCURACY.items()}
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    out: dict[str, dict[str, list[dict]]] = {t: {} for t in vocab.TABLES}
    count = [0]

    def task(task_id, kind, parents=(), **labels):
        start = t0 + dt.timedelta(seconds=10 * count[0])
        count[0] += 1
        out[vocab.TASKS][task_id] = [{"task_id": task_id, "kind": kind, "status": vocab.FINISHED, "parents": list(parents),
                                      "spec_hash": "abc123", "dataset": "digits", "model": "small_cnn",
                                      "started_at": start, "finished_at": start + dt.timedelta(seconds=7.5),
                                      "duration_s": 7.5, "device": "cpu", "git_rev": "deadbeef",
                                      "torch_version": "2.13.0", "cached": False, **labels}]

    def evaluate(task_id, kind, model, **labels):
        out[vocab.EVALUATIONS][task_id] = [
            {"kind": kind, "dataset": "digits", "model": "small_cnn", **labels, "eval_set": e,
             "loss": float(rng.uniform(0.1, 2)), "acc": float(np.clip(a + rng.normal(0, 0.02), 0, 1)), "n": 397}
            for e, a in acc_of[model].items()]

    lam_values = list(lams) if lams else [None]
    ids: dict[tuple, str] = {}
    for s in seeds:
        for model, p in (("cue", P), ("nocue", 0.0), ("cue_b", P), ("nocue_b", 0.0), ("cue_s", P), ("cue_r", P)):
            tid = ids[(model, s, None)] = f"pretrain-{model}-s{s}"
            task(tid, vocab.PRETRAIN, cue_proportion=p, seed=s)
            if model in ("cue", "nocue"):
                evaluate(tid, vocab.PRETRAIN, model, cue_proportion=p, seed=s)
            out[vocab.TRAIN_CURVES][tid] = [{"kind": vocab.PRETRAIN, "epoch": e, "split": "train", "loss": 2 / (e + 1),
                                             "acc": 1 - 1 / (e + 2), "lr": 0.05} for e in range(3)]
        for method in METHODS:
            for lam in lam_values:
                swept = {"finetune.lam": float(lam), "variant": f"finetune.lam={lam:g}"} if lam is not None else {}
                tid = ids[(method, s, lam)] = f"finetune-{method}-s{s}" + (f"-lam{lam:g}" if lam is not None else "")
                task(tid, vocab.FINETUNE, parents=[ids[("cue", s, None)]], cue_proportion=P, seed=s, method=method,
                     **swept)
                evaluate(tid, vocab.FINETUNE, method, cue_proportion=P, seed=s, method=method, **swept)
    for pair_type, kind, alignment, a, b, bump in PAIRS:
        if pair_types is not None and pair_type not in pair_types:
            continue
        bump *= (scale or {}).get(pair_type, 1.0)
        ft = pair_type.startswith(vocab.PRETRAINED_FT)
        for s in seeds:
            for lam in lam_values if ft else [None]:
                swept = {"finetune.lam": float(lam), "variant": f"finetune.lam={lam:g}"} if lam is not None else {}
                ea, eb = ids[(a, s, None)], ids[(b, s, lam if ft else None)]
                tid = f"path_eval-{pair_type}-{kind}-{alignment}-s{s}".replace("~", "_").replace(":", "_").replace("@", "-at") + (
                    f"-lam{lam:g}" if lam is not None else "")
                p = 0.0 if a.startswith("nocue") else P
                labels = {"pair_type": pair_type, "path_kind": kind, "alignment": alignment, "cue_proportion": p,
                          "seed": s, "endpoint_a": ea, "endpoint_b": eb, **swept}
                task(tid, vocab.PATH_EVAL, parents=[ea, eb], **labels)
                ra, rb = (acc_of[m if m in acc_of else m.rsplit("_", 1)[0]]["randimg"] - 0.1 for m in (a, b))
                rows = []
                for e in EVAL_SETS:
                    for alpha in ALPHAS:
                        h = bump * math.sin(math.pi * alpha) * (1 + 0.1 * rng.normal())
                        rows.append({**labels, "dataset": "digits", "model": "small_cnn", "alpha": alpha, "eval_set": e,
                                     "loss": 0.3 + h, "acc": float(np.clip(0.9 - 0.3 * h, 0, 1)),
                                     "agree_a": 1 - alpha * (1 - 0.3) - 0.1 * h * (0 < alpha < 1),
                                     "agree_b": 0.3 + alpha * (1 - 0.3) - 0.1 * h * (0 < alpha < 1),
                                     "reliance_randimg": (1 - alpha) * ra + alpha * rb, "reliance_randcue": 0.1 * (1 - alpha)})
                out[vocab.PATHS][tid] = rows
                out[vocab.BARRIERS][tid] = [{**labels, "dataset": "digits", "model": "small_cnn", **r}
                                            for r in barrier_rows(rows)]
    return out


def write_sweep(layout, data: dict[str, dict[str, list[dict]]], *, plan: bool = True, spec: str | None = SPEC,
                lams=None) -> None:
    """Write the rows as fragments, the done.json of every task its row says finished (as a run leaves it: a
    finished task without one has lost its outputs, and the report counts it as not run), the plan (every task
    of the tasks table) and spec.yaml."""
    for table, by_task in data.items():
        for task_id, rows in by_task.items():
            tables.write_fragment(layout, table, task_id, rows)
    for task_id, rows in data.get(vocab.TASKS, {}).items():
        if rows and rows[-1].get("status") == vocab.FINISHED:   # its last row: how it ended
            marker = {"version": outputs.MARKER_VERSION, "task_id": task_id, "kind": rows[0]["kind"], "files": {},
                      "tables": [], "metrics": {}, "meta": {}, "finished_at": 0.0}
            layout.storage.write_bytes(layout.marker_file(rows[0]["kind"], task_id), json.dumps(marker).encode())
    if plan:
        write_plan(layout, data[vocab.TASKS])
    if spec is not None:
        if lams:
            spec = spec.replace("axes: []", f"axes:\n- finetune.lam: {list(lams)}")
        layout.storage.write_bytes(layout.spec_file(), spec.encode())


def write_plan(layout, task_rows: dict[str, list[dict]]) -> None:
    """plan.parquet naming these tasks (task_id, kind, parents), as the plan module writes it."""
    rows = [r[0] for r in task_rows.values()]
    frame = pd.DataFrame({"task_id": [r["task_id"] for r in rows], "kind": [r["kind"] for r in rows],
                          "parents": [r["parents"] for r in rows]})
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    layout.storage.write_bytes(layout.plan_file(), buf.getvalue().to_pybytes())


def render(layout, jobs) -> list:
    """What a report does with its figures alone (`report/build.py`): `figures.draw_figures`, its files written
    together, the stale figures removed; the figures."""
    from orchestrator.report import figures

    drawn = figures.draw_figures(layout, jobs)
    layout.storage.write_files(drawn.files)
    figures.remove_stale(layout, drawn.stale)
    return drawn.figures
