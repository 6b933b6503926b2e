"""The report's figures: which to draw (jobs), drawing them (in this process and a few worker
processes), and not drawing again what has not changed.

A job names its figure and carries the rows it needs and JSON options (orders and chance resolved
here from the `tasks/` registries). Its key is a hash of those inputs and of the plotting code; a
figure whose key matches the one recorded in `report/figures.json` (and whose PNG still has the
recorded hash) is reused, not redrawn. Workers are fresh `python -c` processes (no fork of a
threaded driver) that import matplotlib and pandas but not torch; jobs travel to them as JSON lines
with the rows as base64 Parquet, PNGs come back the same way. Never pickle.

Why one module: which figures to draw, their cache keys and the worker pool that draws them are one
pipeline; the drawing itself is in `plots`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from orchestrator import knobs, vocab
from orchestrator.machine import usable_cpus
from orchestrator.messages import logger
from orchestrator.report import plots, stats, training
from tasks.settings.data import EVAL_SETS
from tasks.settings.finetune import FINETUNE_METHOD_NAMES

_LOG = logger(__name__)

MIN_JOBS_PER_WORKER = 3                         # a worker costs about one figure to start
WORKER_TIMEOUT_S = 600
MANIFEST = "figures.json"
PATHS_SECTION, BARRIERS_SECTION, TABLE1_SECTION = "paths", "barriers", "table1"   # where a figure goes on the page
MAP_SECTION = "map"
MAX_PNG_BYTES = 64_000_000
_WORKER_CODE = "from orchestrator.report.figures import serve; serve()"


def code_version() -> str:
    """Hash of the code that draws (this module, plots, stats) and matplotlib's version."""
    import matplotlib

    digest = hashlib.sha256(matplotlib.__version__.encode())
    here = Path(__file__).resolve().parent
    for name in ("figures.py", "plots.py", "stats.py", "mechanism_map.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class FigureJob:
    """One figure: file name, where it goes on the page (section, heading), title, caption, and
    what draws it (`kind` in DRAW, `frames` of rows, JSON `options`)."""

    name: str
    section: str
    heading: str
    title: str
    caption: str
    kind: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def key(self, version: str) -> str:
        """A hash of everything the PNG depends on."""
        digest = hashlib.sha256(json.dumps([version, self.kind, self.options], sort_keys=True, default=str).encode())
        for name in sorted(self.frames):
            frame = self.frames[name]
            digest.update(json.dumps([name, list(map(str, frame.columns)), list(map(str, frame.dtypes))]).encode())
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class Figure:
    """A rendered figure of the report (its PNG bytes); `reused` when its inputs had not changed."""

    name: str
    section: str
    heading: str
    title: str
    caption: str
    png: bytes
    reused: bool = False


# ----------------------------------------------------------------------------------------------
# Which figures: one per pair type (and facet), barrier distributions, fine-tuning bars
# ----------------------------------------------------------------------------------------------

PATH_COLUMNS = ("task_id", "pair_type", "path_kind", "alignment", "alpha", "eval_set", "loss", "acc", "agree_a",
                "agree_b", "reliance_randimg", "reliance_randcue", *plots.CONTEXT_KEYS)
BARRIER_COLUMNS = ("task_id", "pair_type", "path_kind", "alignment", "eval_set", "metric", "definition", "value",
                   *plots.CONTEXT_KEYS)
PATH_CAPTION = ("α = 0 is A, the {start}; α = 1 is B, the {end}; one colour per path kind. Lines: mean over "
                "pairs; bands: min–max over pairs; thin dashed: the straight line between the endpoints (the numbers "
                "are the chord barrier, mean ± std over pairs: the largest excess of loss, or drop of accuracy, over "
                "that line). Agreement: the fraction of test predictions equal to A's (solid) and B's (dashed). Cue "
                "reliance of the model at α: acc(randimg) − chance (0: ignores the cue) and acc(nocue) − "
                "acc(randcue) (what a wrong cue costs). Loss axes are shared by every figure of this pair type.")
BARRIER_CAPTION = ("Chord barriers of every pair (points) and their mean (black bars), per pair type (x, with n "
                   "pairs; controls next to their pair), path kind (colour) and evaluation set (rows): loss barrier "
                   "(left) and accuracy drop in percentage points (right). Linear connectivity means a barrier near "
                   "0, or near the noise floor (X~X:self) where the sweep has one.")
MAP_CAPTION = ("Every model of the population against every other: the {metric} barrier ({definition}) of the {path} "
               "path between them on {eval_set} (darker: higher). Rows and columns follow the average-linkage "
               "dendrogram (left); the tree is cut at the dashed line, {threshold}, and each cluster is outlined "
               "and numbered [n]. Left of the rows: each model's cue proportion and its reliance on the cue "
               "(acc(randimg) − chance). Models that share a mechanism should sit in one outlined block.")
TRAINING_CAPTION = ("Training loss (log scale) and training accuracy per epoch of the models of each row of Table 1 "
                    "(lines: mean over models; bands: lowest to highest), one colour per cue proportion. Dotted: the "
                    "loss of a constant guess (ln of the class count) and chance; shaded: epochs that train the head "
                    "alone (LLRT, LP-FT's first phase). A model at chance on every test set shows why here: a loss "
                    "above the constant guess's (steps that overshoot), flat at it (nothing learnt), or falling while "
                    "its test accuracy stays at chance (what it fit, its test sets lack). CBFT's loss adds λ × its "
                    "invariance term.")
TABLE1_CAPTION = ("Accuracy on each counterfactual test set (bars: mean over the models of a row, one per "
                  "seed, the pretrained rows pooling every model of their kind; whiskers: std; n in each panel's "
                  "title) of the pretrained models (left of the grey line) and each fine-tuning method. A "
                  "model without cue reliance scores high on nocue and randcue and about chance (dotted) on randimg.")


def _columns(df: pd.DataFrame, wanted) -> pd.DataFrame:
    return df[[c for c in wanted if c in df.columns]].reset_index(drop=True)


def _facets(rows: pd.DataFrame, swept) -> list[tuple[str, dict, pd.DataFrame]]:
    """(label, combination, rows) per model, cue proportion and combination of swept values that
    vary in `rows`; rows a swept axis does not affect (null) belong to every value."""
    keys = [k for k in ("model", "cue_proportion") if k in rows.columns and rows[k].nunique() > 1]
    out = []
    for combo in stats.swept_combos([rows], swept):
        part = stats.facet(rows, combo)
        for key, sub in part.groupby(keys, sort=True) if keys else [((), part)]:
            context = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            label = ", ".join([f"{k} = {stats.proportion_text(v)}" if k == "cue_proportion" else f"{k} = {v}"
                               for k, v in context.items()] + ([stats.facet_label(combo)] if combo else []))
            out.append((label, {**context, **combo}, sub))
    return out


def _suffix(combo: dict) -> str:
    return "".join(f"_{plots.slug(k)}-{plots.slug(v)}" for k, v in combo.items())


def _titled(title: str, label: str) -> str:
    return title + (f" ({label})" if label else "")


def map_jobs(found) -> list[FigureJob]:
    """One figure per mechanism map (`mechanism_map.maps`)."""
    from orchestrator.report.mechanism_map import model_label

    jobs = []
    for m in found:
        models = m.models.assign(label=[model_label(r) for _, r in m.models.iterrows()])
        models = models[["label", "cue_proportion", "method", "reliance_randimg", "cluster"]].astype(
            {"cue_proportion": float, "reliance_randimg": float, "cluster": int})
        matrix = pd.DataFrame(m.matrix, columns=[str(i) for i in range(m.k)])
        tree = pd.DataFrame(m.linkage if m.linkage is not None else [], columns=["a", "b", "height", "size"])
        unit = f"{m.metric} barrier" if m.metric == "loss" else "accuracy drop"
        name = f"map_{plots.slug(m.eval_set)}_{plots.slug(m.path)}{_suffix(m.context)}.png"
        label = m.label()
        jobs.append(FigureJob(
            name, MAP_SECTION, m.context_label(), f"Mechanism map: {label} ({m.k} models)",
            MAP_CAPTION.format(metric=m.metric, definition=m.definition, path=m.path, eval_set=m.eval_set,
                               threshold=m.threshold.text()),
            "map", {"models": models.reset_index(drop=True), "matrix": matrix, "linkage": tree},
            {"threshold": m.threshold.value, "title": f"Mechanism map · {label} · {m.k} models", "unit": unit,
             "chance": m.chance, "cut": m.cut}))
    return jobs


def figure_jobs(results: dict[str, pd.DataFrame], swept: tuple[str, ...] = (), maps=()) -> list[FigureJob]:
    """Every figure the data allow, with the orders and chance resolved from the `tasks/` registries:
    one per pair type (and model, cue proportion, combination of swept values where they vary; the
    population's pairs are drawn by its maps instead), the barrier distributions and the fine-tuning
    bars (per combination of swept values), one per mechanism map (`maps`)."""
    sets, methods = list(EVAL_SETS), list(FINETUNE_METHOD_NAMES)
    paths, barriers = results[vocab.PATHS], results[vocab.BARRIERS]
    if not paths.empty and "pair_type" in paths:
        paths = paths[paths["pair_type"] != vocab.POPULATION]
    if not barriers.empty and "pair_type" in barriers:
        barriers = barriers[barriers["pair_type"] != vocab.POPULATION]
    evaluations, tasks = results[vocab.EVALUATIONS], results[vocab.TASKS]
    chance = stats.chance(pd.concat([paths.get("dataset", pd.Series(dtype=object)),
                                     evaluations.get("dataset", pd.Series(dtype=object))]))
    jobs = []
    for pair_type in stats.order_pairs(paths["pair_type"], methods) if not paths.empty else []:
        rows = paths[paths["pair_type"] == pair_type]
        limits = {k: list(v) for k, v in plots.path_loss_limits(rows).items()}   # shared by the facets
        start, end = plots.endpoint_names(pair_type)
        for label, combo, sub in _facets(rows, swept):
            jobs.append(FigureJob(
                f"paths_{plots.slug(pair_type)}{_suffix(combo)}.png", PATHS_SECTION, pair_type,
                _titled(f"{pair_type}: loss, accuracy, agreement and cue reliance along every path", label),
                PATH_CAPTION.format(start=start, end=end), "path", {"paths": _columns(sub, PATH_COLUMNS)},
                {"pair_type": pair_type, "eval_sets": sets, "chance": chance, "subtitle": label,
                 "loss_limits": limits}))
    chord = barriers[barriers["definition"] == "chord"] if not barriers.empty else barriers
    for combo in stats.swept_combos([chord], stats.by_model([chord], swept)) if not chord.empty else []:
        label = stats.facet_label(combo)
        jobs.append(FigureJob(
            f"barriers{_suffix(combo)}.png", BARRIERS_SECTION, label, _titled("Barrier distributions", label),
            BARRIER_CAPTION, "barriers", {"barriers": _columns(stats.facet(chord, combo), BARRIER_COLUMNS)},
            {"metric": list(vocab.METRICS), "eval_sets": sets, "method_order": methods, "subtitle": label}))
    for combo in stats.swept_combos([evaluations], stats.by_model([evaluations], swept)) if not evaluations.empty else []:
        long = stats.finetune_long(stats.facet(evaluations, combo), stats.facet(tasks, combo))
        if not long.empty:
            label = stats.facet_label(combo)
            jobs.append(FigureJob(
                f"finetuning{_suffix(combo)}.png", TABLE1_SECTION, label, _titled("Fine-tuning comparison", label),
                TABLE1_CAPTION, "table1", {"long": long}, {"eval_sets": sets, "chance": chance, "subtitle": label}))
    curves = results.get(vocab.TRAIN_CURVES)
    for combo in stats.swept_combos([curves], stats.by_model([curves], swept)) if curves is not None and not curves.empty else []:
        epochs = training.curves_long(stats.facet(curves, combo), stats.facet(tasks, combo))
        if not epochs.empty:
            label = stats.facet_label(combo)
            jobs.append(FigureJob(
                f"training{_suffix(combo)}.png", TABLE1_SECTION, label, _titled("Training curves", label),
                TRAINING_CAPTION, "training", {"long": epochs}, {"chance": chance, "subtitle": label}))
    return jobs + map_jobs(maps)


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------

DRAW = {
    "path": lambda f, o: plots.plot_path(f["paths"], **o),
    "barriers": lambda f, o: plots.plot_barriers(f["barriers"], **o),
    "table1": lambda f, o: plots.plot_finetune(f["long"], **o),
    "training": lambda f, o: plots.plot_training(f["long"], **o),
    "map": lambda f, o: plots.plot_mechanism_map(f["models"], f["matrix"], f["linkage"], **o),
}


def draw(kind: str, frames: dict[str, pd.DataFrame], options: dict) -> bytes:
    if kind not in DRAW:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(DRAW)}")
    return plots.figure_png(DRAW[kind](frames, options))


def encode(job: FigureJob) -> str:
    """One JSON line: kind, options, frames as base64 Parquet."""
    frames = {}
    for name, frame in job.frames.items():
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        frames[name] = base64.b64encode(buf.getvalue()).decode()
    return json.dumps({"kind": job.kind, "options": job.options, "frames": frames})


def decode(line: str) -> tuple[str, dict[str, pd.DataFrame], dict]:
    msg = json.loads(line)
    frames = {name: pd.read_parquet(io.BytesIO(base64.b64decode(data))) for name, data in msg["frames"].items()}
    return msg["kind"], frames, msg["options"]


def serve(stdin=None, stdout=None) -> None:
    """Worker loop: one JSON job per line in, one JSON line out ({"png": base64} or {"error": text})
    until end of input. Anything else the libraries print goes to stderr."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    sys.stdout = sys.stderr
    for line in stdin:
        try:
            out = {"png": base64.b64encode(draw(*decode(line))).decode()}
        except Exception:  # noqa: BLE001 - reported to the parent, which draws it itself
            out = {"error": traceback.format_exc(limit=3)}
        stdout.write(json.dumps(out) + "\n")
        stdout.flush()


def report_workers(n_jobs: int) -> int:
    """Processes drawing `n_jobs` figures, this one included: `$MMC_REPORT_WORKERS` (`knobs.REPORT_WORKERS`, default 4), at
    most one per CPU available to this process and one per MIN_JOBS_PER_WORKER figures."""
    wanted = knobs.read(knobs.REPORT_WORKERS)
    return max(1, min(wanted, usable_cpus(), n_jobs // MIN_JOBS_PER_WORKER))


class _Worker:
    """One worker process and the thread in this process that feeds it jobs from a shared queue."""

    def __init__(self, jobs: "queue.Queue[int]", lines: list[str], results: dict, log_dir: str, index: int):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               knobs.REPORT_WORKERS.name: "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
        self.log = open(os.path.join(log_dir, f"worker{index}.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, text=True)
        self.jobs, self.lines, self.results = jobs, lines, results
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        while True:
            try:
                i = self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                self.proc.stdin.write(self.lines[i] + "\n")
                self.proc.stdin.flush()
                reply = json.loads(self.proc.stdout.readline() or '{"error": "worker exited"}')
            except (OSError, ValueError) as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            if "png" not in reply:
                self.results[i] = None       # drawn again in the parent, which reports the error
                return
            self.results[i] = base64.b64decode(reply["png"])

    def stop(self, deadline: float) -> None:
        self.thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _draw_here(job: FigureJob) -> bytes | None:
    try:
        return draw(job.kind, job.frames, job.options)
    except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the report
        _LOG.warning(f"report: figure {job.name} could not be drawn ({type(exc).__name__}: {exc})")
        return None


def draw_all(jobs: list[FigureJob], processes: int | None = None) -> list[bytes | None]:
    """PNG bytes of every job, in order (None where drawing failed, with a warning). With several
    processes, workers take jobs from a shared queue while this process draws from it too."""
    processes = report_workers(len(jobs)) if processes is None else processes
    if processes <= 1 or len(jobs) < 2:
        return [_draw_here(job) for job in jobs]
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(jobs)):
        todo.put(i)
    results: dict[int, bytes | None] = {}
    lines = [encode(job) for job in jobs]
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    with tempfile.TemporaryDirectory(prefix="mmc-report-") as tmp:
        workers = []
        try:
            workers = [_Worker(todo, lines, results, tmp, w) for w in range(processes - 1)]
        except OSError as exc:
            _LOG.warning(f"report: no figure workers ({exc}); drawing in this process")
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                break
            results[i] = _draw_here(jobs[i])
        for worker in workers:
            worker.stop(deadline)
    return [results[i] if results.get(i) is not None else _draw_here(jobs[i]) for i in range(len(jobs))]


# ----------------------------------------------------------------------------------------------
# Reuse: figures whose inputs did not change are read back, not drawn
# ----------------------------------------------------------------------------------------------

def _read_manifest(layout) -> dict:
    path = layout.report_file(MANIFEST)
    try:
        if layout.storage.exists(path):
            data = json.loads(layout.storage.read_bytes(path, max_bytes=10_000_000, replaced=True))
            return data if isinstance(data, dict) and isinstance(data.get("figures"), dict) else {}
    except (OSError, ValueError):
        pass
    return {}


def _reuse(layout, entry, key: str) -> bytes | None:
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    path = layout.report_file(entry.get("file", ""))
    try:
        png = layout.storage.read_bytes(path, max_bytes=MAX_PNG_BYTES)
    except (OSError, ValueError):
        return None
    return png if hashlib.sha256(png).hexdigest() == entry.get("sha256") else None


@dataclass(frozen=True)
class Drawn:
    """`draw_figures`' result: the figures, what to write for them and which earlier figures to remove."""

    figures: list[Figure]
    files: dict[str, bytes]      # report path -> bytes: the figures drawn now, and `figures.json` last
    stale: list[str]             # report paths of an earlier report's figures that this one no longer has


def draw_figures(layout, jobs: list[FigureJob]) -> Drawn:
    """Every job's figure: reused from `report/` when its key is unchanged (nothing to write), else drawn;
    `report/figures.json` records the keys. Writes nothing: the report writes these files with its others
    (`Storage.write_files`), then removes the stale ones."""
    version = code_version()
    old = _read_manifest(layout).get("figures", {})
    keys = [job.key(version) for job in jobs]
    pngs = [_reuse(layout, old.get(job.name), key) for job, key in zip(jobs, keys)]
    todo = [i for i, png in enumerate(pngs) if png is None]
    for i, png in zip(todo, draw_all([jobs[i] for i in todo])):
        pngs[i] = png
    figures, manifest, files = [], {}, {}
    for i, (job, key, png) in enumerate(zip(jobs, keys, pngs)):
        if png is None:
            continue
        if i in todo:
            files[layout.report_file(job.name)] = png
        manifest[job.name] = {"file": job.name, "key": key, "sha256": hashlib.sha256(png).hexdigest()}
        figures.append(Figure(job.name, job.section, job.heading, job.title, job.caption, png, reused=i not in todo))
    stale = []
    for name in set(old) - set(manifest):
        try:       # a damaged manifest's name that is no file name of `report/` (`../x.png`) is left alone
            if isinstance(name, str) and name.endswith(".png"):
                stale.append(layout.report_file(name))
        except ValueError:
            pass
    files[layout.report_file(MANIFEST)] = json.dumps({"version": version, "figures": manifest}, indent=1).encode()
    return Drawn(figures, files, stale)


def remove_stale(layout, paths: list[str]) -> None:
    """Delete an earlier report's figures (`Drawn.stale`); one that cannot be deleted is left."""
    for path in paths:
        try:
            if layout.storage.exists(path):
                layout.storage.delete(path)
        except OSError:
            pass
