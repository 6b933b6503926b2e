"""The sweep report: summary tables, figures and one self-contained report.html, written to
`layout.report_dir()` from the result tables. Works on a partial sweep (missing cells "—")."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import plots, stats, tables, vocab
from orchestrator.plan import read_plan

REPORT_WORKERS_ENV_VAR = "MMC_REPORT_WORKERS"   # processes drawing figures; 1 draws in-process
DEFAULT_REPORT_WORKERS = 4
MIN_FIGURES_PER_WORKER = 6                      # a worker costs about one figure to start


@dataclass(frozen=True)
class Report:
    """Paths (storage paths) of what `write_report` wrote. `os.fspath(report)` is the HTML page."""

    html: str
    figures: tuple[str, ...] = ()
    summary: str | None = None
    files: tuple[str, ...] = field(default=())   # every file written, figures and html included

    def __fspath__(self) -> str:
        return self.html


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


def _path_figure_name(pair_type: str, path_kind: str, alignment) -> str:
    parts = ["paths", plots.slug(pair_type), plots.slug(path_kind)]
    if isinstance(alignment, str):
        parts.append(plots.slug(alignment))
    return "_".join(parts) + ".png"


def _path_combos(paths: pd.DataFrame) -> list[tuple[str, str, str | None]]:
    if paths.empty:
        return []
    combos = paths[["pair_type", "path_kind", "alignment"]].drop_duplicates()
    out = [(p, k, a if isinstance(a, str) else None) for p, k, a in combos.itertuples(index=False)]
    pair_rank = {p: i for i, p in enumerate(stats.order_values(paths["pair_type"], plots.PAIR_ORDER))}
    kind_rank = {k: i for i, k in enumerate(plots.PATH_KIND_ORDER)}
    return sorted(out, key=lambda c: (pair_rank[c[0]], kind_rank.get(c[1], 99), c[1], c[2] or ""))


@dataclass(frozen=True)
class ReportFigure:
    """One rendered figure: file name, section of the page, title, caption, PNG bytes."""

    name: str
    section: str
    title: str
    caption: str
    png: bytes


_BAND_NOTE = ("Line: mean over pairs (one pair per seed); band: min–max over pairs; dashed: the "
              "straight line between the mean endpoints (the chord barrier is the largest gap to "
              "it, annotated as mean ± std over pairs). Loss axes are shared by every path kind "
              "of this pair type.")


def _draw(job: tuple) -> bytes:
    """Render one figure job to PNG (module level, so a worker process can run it)."""
    what, args = job[0], job[1:]
    if what == "path":
        paths, pair_type, path_kind, alignment, limits = args
        return plots.figure_png(plots.plot_path(paths, pair_type, path_kind, alignment,
                                                loss_limits=limits))
    if what == "barriers":
        return plots.figure_png(plots.plot_barriers(args[0], ("loss", "acc")))
    if what == "finetune":
        return plots.figure_png(plots.plot_finetune(*args))
    raise ValueError(f"unknown figure job {what!r}; known: path, barriers, finetune")


def report_workers(n_jobs: int) -> int:
    """Worker processes for rendering `n_jobs` figures: `$MMC_REPORT_WORKERS` (default 4), at
    most one per CPU available to this process and one per MIN_FIGURES_PER_WORKER figures."""
    try:
        wanted = int(os.environ.get(REPORT_WORKERS_ENV_VAR, DEFAULT_REPORT_WORKERS))
    except ValueError:
        raise ValueError(f"`{REPORT_WORKERS_ENV_VAR}`: {os.environ[REPORT_WORKERS_ENV_VAR]!r} is "
                         "not an integer; use e.g. 1 (no worker processes) or 4") from None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(wanted, cpus or 1, n_jobs // MIN_FIGURES_PER_WORKER))


_WORKER_CODE = "from orchestrator.report import serve_draw_jobs; serve_draw_jobs()"
WORKER_TIMEOUT_S = 600


def _encode(value):
    """JSON-able form of a figure job's argument (DataFrames travel as Parquet; no pickle)."""
    import base64

    if isinstance(value, pd.DataFrame):
        buf = io.BytesIO()
        value.to_parquet(buf, index=False)
        return {"__parquet__": base64.b64encode(buf.getvalue()).decode()}
    if isinstance(value, (list, tuple)):
        return {"__tuple__": [_encode(v) for v in value]} if isinstance(value, tuple) else [_encode(v) for v in value]
    return value


def _decode(value):
    import base64

    if isinstance(value, dict) and "__parquet__" in value:
        return pd.read_parquet(io.BytesIO(base64.b64decode(value["__parquet__"])))
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def serve_draw_jobs(argv: Sequence[str] | None = None) -> None:
    """Worker entry point: `python -c ... JOBS.json OUT.json` draws the jobs into OUT (base64 PNGs)."""
    import base64
    import sys

    jobs_path, out_path = (argv or sys.argv[1:])[:2]
    with open(jobs_path) as f:
        jobs = _decode(json.load(f))
    pngs = [base64.b64encode(_draw(job)).decode() for job in jobs]
    with open(out_path + ".tmp", "w") as f:
        json.dump(pngs, f)
    os.replace(out_path + ".tmp", out_path)


def _draw_in_workers(jobs: list[tuple], workers: int) -> list[bytes]:
    """Draw `jobs` in `workers` fresh Python processes (`python -c`, so nothing re-runs the
    caller's main module, and no fork of a threaded driver); raises if any worker fails."""
    import base64
    import subprocess
    import sys
    import tempfile

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           REPORT_WORKERS_ENV_VAR: "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    shares = [list(range(w, len(jobs), workers)) for w in range(workers)]
    with tempfile.TemporaryDirectory(prefix="mmc-report-") as tmp:
        procs = []
        for w, share in enumerate(shares):
            jobs_path, out_path = os.path.join(tmp, f"jobs{w}.json"), os.path.join(tmp, f"out{w}.json")
            with open(jobs_path, "w") as f:
                json.dump(_encode([jobs[i] for i in share]), f)
            log = open(os.path.join(tmp, f"log{w}.txt"), "wb")  # noqa: SIM115 - closed below
            procs.append((subprocess.Popen([sys.executable, "-c", _WORKER_CODE, jobs_path, out_path],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           env=env), log, out_path))
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        try:
            for proc, log, _ in procs:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            for proc, log, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
        pngs: list[bytes | None] = [None] * len(jobs)
        for w, (proc, log, out_path) in enumerate(procs):
            if proc.returncode != 0 or not os.path.exists(out_path):
                with open(log.name, "rb") as f:
                    tail = f.read().decode(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"figure worker {w} exited with {proc.returncode}: "
                                   + " | ".join(tail))
            with open(out_path) as f:
                for i, png in zip(shares[w], json.load(f)):
                    pngs[i] = base64.b64decode(png)
    return pngs  # type: ignore[return-value]


def _draw_all(jobs: list[tuple]) -> list[bytes]:
    """PNG bytes of every job, in order: in worker processes when there are enough figures and
    CPUs (matplotlib draws on one core), else in this process; if the workers fail, here."""
    workers = report_workers(len(jobs))
    if workers > 1:
        try:
            return _draw_in_workers(jobs, workers)
        except Exception as exc:  # noqa: BLE001 - drawing here is always possible
            warnings.warn(f"report: drawing figures in {workers} processes failed ({exc}); "
                          "drawing them in this process", RuntimeWarning, stacklevel=2)
    return [_draw(job) for job in jobs]


def _render_figures(results: dict[str, pd.DataFrame]) -> list[ReportFigure]:
    """Every figure the data allows: paths per pair type and path kind (loss axes shared within a
    pair type), barrier distributions, fine-tuning bars."""
    meta: list[tuple[str, str, str, str]] = []    # name, section, title, caption
    jobs: list[tuple] = []
    paths = results["paths"]
    by_pair = dict(tuple(paths.groupby("pair_type"))) if not paths.empty else {}
    limits = {pair_type: plots.path_loss_limits(rows) for pair_type, rows in by_pair.items()}
    for pair_type, path_kind, alignment in _path_combos(paths):
        start, end = plots.endpoint_names(pair_type)
        meta.append((_path_figure_name(pair_type, path_kind, alignment), f"paths:{pair_type}",
                     plots.path_title(pair_type, path_kind, alignment),
                     f"α = 0 is the {start}, α = 1 the {end}. " + _BAND_NOTE))
        jobs.append(("path", by_pair[pair_type], pair_type, path_kind, alignment, limits[pair_type]))
    barriers = results["barriers"]
    if not barriers[barriers["definition"] == "chord"].empty:
        meta.append((
            "barriers.png", "barriers", "Barrier distributions",
            "Chord barriers of every pair (points; one pair per seed) and their mean (black bars), "
            "per pair type (x), path kind (colour) and evaluation set (rows): loss barrier (left) "
            "and accuracy drop in percentage points (right). Linear connectivity means a barrier "
            "near 0."))
        jobs.append(("barriers", barriers))
    if not stats.finetune_long(results["evaluations"], results["tasks"]).empty:
        meta.append((
            "finetune.png", "finetune", "Fine-tuning comparison",
            "Accuracy on each counterfactual test set (bars: mean over seeds, whiskers: std) of "
            "the pretrained models (left of the grey line, reference) and each fine-tuning "
            "method. A model without cue reliance scores high on nocue and randcue and about "
            "chance (dotted) on randimg."))
        jobs.append(("finetune", results["evaluations"], results["tasks"]))
    return [ReportFigure(*m, png) for m, png in zip(meta, _draw_all(jobs))]


# ----------------------------------------------------------------------------------------------
# Plan, progress and provenance
# ----------------------------------------------------------------------------------------------

def planned_by_kind(plan: pd.DataFrame | None) -> dict[str, list[str]] | None:
    """Task ids per kind of the sweep's stored plan; None without a plan."""
    if plan is None:
        return None
    out: dict[str, list[str]] = {}
    for task_id, kind in zip(plan["task_id"], plan["kind"]):
        out.setdefault(kind, []).append(task_id)
    return out


def _latest(tasks: pd.DataFrame) -> pd.DataFrame:
    return tasks.drop_duplicates("task_id", keep="last") if not tasks.empty else tasks


def progress_table(tasks: pd.DataFrame, plan: Mapping[str, Sequence[str]] | None) -> pd.DataFrame:
    """Per task kind: planned (from the spec's graph, when known), finished, failed, skipped, and
    how many have not run yet; a total row last."""
    latest = _latest(tasks)
    status = dict(zip(latest["task_id"], latest["status"])) if not latest.empty else {}
    kind_of = dict(zip(latest["task_id"], latest["kind"])) if not latest.empty else {}
    if plan is None:
        plan = {}
        for task_id, kind in kind_of.items():
            plan.setdefault(kind, []).append(task_id)
        known_plan = False
    else:
        known_plan = True
    rows = []
    for kind in [k for k in vocab.TASK_KINDS if k in plan] + sorted(set(plan) - set(vocab.TASK_KINDS)):
        ids = plan[kind]
        states = [status.get(t) for t in ids]
        finished = sum(s in (vocab.FINISHED,) for s in states)
        failed = sum(s == "failed" for s in states)
        skipped = sum(s == "skipped" for s in states)
        rows.append({"kind": kind, "planned": len(ids) if known_plan else None,
                     "finished": finished, "failed": failed, "skipped": skipped,
                     "not run yet": len(ids) - finished - failed - skipped})
    df = pd.DataFrame(rows, columns=["kind", "planned", "finished", "failed", "skipped",
                                     "not run yet"])
    if not df.empty:
        total = {c: (df[c].sum() if c != "kind" else "total") for c in df.columns}
        total["planned"] = int(df["planned"].sum()) if known_plan else None
        df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    return df


def _distinct(tasks: pd.DataFrame, column: str) -> str:
    if column not in tasks.columns:
        return stats.MISSING
    values = sorted({str(v) for v in tasks[column].dropna()})
    return ", ".join(values) if values else stats.MISSING


def task_provenance(tasks: pd.DataFrame) -> dict[str, str]:
    """Provenance that the tasks table records: spec hashes, git revisions, versions, devices,
    hosts, compute time (sum of task durations) and wall time (first start to last finish)."""
    if tasks.empty:
        return {}
    done = tasks[tasks["status"].isin((vocab.FINISHED,))]
    out = {
        "spec hash": _distinct(tasks, "spec_hash"),
        "git revision": _distinct(tasks, "git_rev"),
        "torch version": _distinct(tasks, "torch_version"),
        "devices": ", ".join(f"{d} ({n} tasks)" for d, n in
                             tasks["device"].dropna().value_counts().sort_index().items())
        or stats.MISSING,
        "hosts": _distinct(tasks, "host"),
        "task compute time": f"{done['duration_s'].fillna(0).sum():.1f} s (sum over finished tasks)",
    }
    if "cached" in tasks.columns:
        cached = int(tasks["cached"].fillna(False).astype(bool).sum())
        if cached:
            out["cached tasks"] = f"{cached} (outputs of an earlier run, verified and reused)"
    starts, ends = tasks["started_at"].dropna(), tasks["finished_at"].dropna()
    if len(starts) and len(ends):
        out["wall time"] = f"{(ends.max() - starts.min()).total_seconds():.1f} s " \
                           f"({starts.min():%Y-%m-%d %H:%M:%S} to {ends.max():%Y-%m-%d %H:%M:%S} UTC)"
    return out


# Keys callers (sweep.run_sweep) pass, as the report names them.
_PROVENANCE_ALIASES = {"spec_hash": "spec hash", "git_rev": "git revision", "torch": "torch version",
                       "wall_s": "wall time of this invocation"}


def _caller_provenance(provenance: Mapping[str, object] | None) -> dict[str, str]:
    out = {}
    for key, value in (provenance or {}).items():
        name = _PROVENANCE_ALIASES.get(key, key)
        if key == "wall_s" and isinstance(value, (int, float)):
            value = f"{value:.1f} s"
        out[name] = stats.MISSING if value is None else str(value)
    return out


def software_versions() -> dict[str, str]:
    """Python and the versions of the libraries that produced and rendered the results."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("torch", "ray", "mlflow", "numpy", "pandas", "pyarrow", "matplotlib"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"software": ", ".join(f"{k} {v}" for k, v in out.items())}


def status_counts(tasks: pd.DataFrame) -> dict[str, int]:
    if tasks.empty:
        return {}
    latest = _latest(tasks)
    return {str(k): int(v) for k, v in latest["status"].value_counts().sort_index().items()}


def _finished_count(tasks: pd.DataFrame) -> int:
    if tasks.empty:
        return 0
    return int(_latest(tasks)["status"].isin((vocab.FINISHED,)).sum())


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1240px; padding: 0 1em; color: #1d1d1f; line-height: 1.4; }
h1 { margin-bottom: .1em; }
h2 { border-bottom: 2px solid #e3e3e3; padding-bottom: .2em; margin-top: 1.8em; }
h3 { margin: 1.4em 0 .4em; }
nav { font-size: .9em; margin: .6em 0 1em; }
nav a { margin-right: 1.1em; }
.muted { color: #666; font-size: .9em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .85em;
        font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d0d0; padding: 3px 9px; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child, th.row, td.row { text-align: left; }
th.group { text-align: center; border-bottom: 2px solid #bbb; }
td.missing { color: #b0b0b0; text-align: center; }
.banner { border: 1px solid; border-radius: 6px; padding: .7em 1em; margin: 1em 0; }
.banner.partial { background: #fff4d6; border-color: #e0a800; }
.banner.partial strong:first-child { color: #8a5a00; }
.banner.failed { background: #fde8e8; border-color: #d9534f; }
.banner.ok { background: #e9f6ec; border-color: #6cbf84; }
.banner table { margin: .5em 0 0; background: white; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .88em; color: #444; max-width: 1100px; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .82em; }
details { margin: .5em 0 1em; }
summary { cursor: pointer; color: #0b5cad; }
"""

# Under `report.html#selftest` (what the browser test opens) the page records, for every figure,
# whether it decoded and whether its pixels vary, in <pre id="selftest"> as JSON. Inert otherwise.
_SELFTEST_JS = """
window.addEventListener("load", function () {
  if (location.hash !== "#selftest") return;
  var out = [];
  document.querySelectorAll("img").forEach(function (img) {
    var rec = {name: img.dataset.name || img.alt, complete: img.complete,
               width: img.naturalWidth, height: img.naturalHeight, distinct: 0, dark: 0};
    try {
      var c = document.createElement("canvas");
      c.width = Math.min(img.naturalWidth, 400);
      c.height = Math.max(1, Math.round(c.width * img.naturalHeight / Math.max(1, img.naturalWidth)));
      var g = c.getContext("2d");
      g.drawImage(img, 0, 0, c.width, c.height);
      var d = g.getImageData(0, 0, c.width, c.height).data, seen = {};
      for (var i = 0; i < d.length; i += 4) {
        var v = (d[i] >> 4) + "," + (d[i + 1] >> 4) + "," + (d[i + 2] >> 4);
        if (!(v in seen)) { seen[v] = 1; rec.distinct++; }
        if (d[i] + d[i + 1] + d[i + 2] < 600) rec.dark++;
      }
      rec.pixels = d.length / 4;
    } catch (e) { rec.error = String(e); }
    out.push(rec);
  });
  var pre = document.createElement("pre");
  pre.id = "selftest";
  pre.textContent = JSON.stringify({images: out, tables: document.querySelectorAll("table").length});
  document.body.appendChild(pre);
});
"""


def _cell_text(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return stats.MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _html_table(df: pd.DataFrame, digits: int = 4) -> str:
    if df.empty:
        return "<p><em>No rows yet.</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for value in row:
            text = _cell_text(value, digits)
            cls = ' class="missing"' if text == stats.MISSING else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv_table(items: Mapping[str, object]) -> str:
    if not items:
        return "<p><em>None recorded.</em></p>"
    rows = "".join(f'<tr><th class="row">{html.escape(str(k))}</th>'
                   f'<td class="row">{html.escape(str(v))}</td></tr>' for k, v in items.items())
    return f"<table>{rows}</table>"


def _shade(fraction: float, rgb: tuple[int, int, int] = (66, 133, 244)) -> str:
    """A background colour whose strength grows with `fraction` in [0, 1]."""
    f = min(1.0, max(0.0, fraction))
    return f"background: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {0.05 + 0.35 * f:.2f})"


def _banner(progress: pd.DataFrame, finished: int, planned: int | None) -> str:
    """Progress: green when every planned task finished, amber for a partial sweep, red when
    some tasks failed or were skipped (their results are missing)."""
    total = progress.iloc[-1] if not progress.empty else None
    failed = int(total["failed"] + total["skipped"]) if total is not None else 0
    if planned is None:
        text = f"<strong>{finished} tasks finished</strong> (the number planned is unknown)."
        cls = "failed" if failed else "ok"
    elif finished >= planned and not failed:
        text = f"<strong>{finished} of {planned} tasks finished</strong>: the sweep is complete."
        cls = "ok"
    else:
        missing = planned - finished
        text = (f"<strong>⚠ This is a partial sweep</strong>: <strong>{finished} of {planned} "
                f"tasks finished</strong>, {missing} have no results yet"
                + (f" ({failed} failed or skipped)" if failed else "")
                + ". Tables show “—” for missing cells; figures and statistics cover finished "
                  "tasks only. Rerun <code>mmc-sweep report DIR</code> to refresh.")
        cls = "failed" if failed else "partial"
    table = _html_table(progress.astype(object)) if not progress.empty else ""
    return f'<div class="banner {cls}" id="progress">{text}{table}</div>'


def _failed_table(tasks: pd.DataFrame) -> str:
    if tasks.empty:
        return ""
    failed = _latest(tasks)
    failed = failed[failed["status"] == "failed"]
    if failed.empty:
        return ""
    shown = failed[["task_id", "kind", "error"]].copy()
    shown["error"] = shown["error"].fillna("").map(lambda e: e.strip().splitlines()[-1][:300]
                                                   if e.strip() else "")
    return ('<h2 id="failed">Failed tasks</h2><p class="muted">Last line of each error; the full '
            "traceback is in the task's log and its MLflow run.</p>" + _html_table(shown))


def _variant(row) -> str:
    return f"{row.path_kind} ({row.alignment})" if isinstance(row.alignment, str) else row.path_kind


def barrier_grid(summary: pd.DataFrame, metric: str = "loss", definition: str = "chord",
                 digits: int = 3) -> str:
    """The headline table: rows = pair type × path (and dataset/model/cue proportion where the
    sweep has several), columns = eval sets, cells "mean [95% CI]" shaded by the mean."""
    if summary.empty:
        return "<p><em>No barriers yet.</em></p>"
    sel = summary[(summary["metric"] == metric) & (summary["definition"] == definition)]
    if sel.empty:
        return "<p><em>No barriers yet.</em></p>"
    sel = sel.assign(variant=[_variant(r) for r in sel.itertuples(index=False)])
    extra = [k for k in ("dataset", "model", "cue_proportion")
             if k in sel.columns and sel[k].nunique(dropna=True) > 1]
    keys = ["pair_type", "variant", *extra]
    sets = stats.order_values(sel["eval_set"], stats.EVAL_SET_ORDER)
    pair_rank = {p: i for i, p in enumerate(stats.order_values(sel["pair_type"], plots.PAIR_ORDER))}
    variant_rank = {v: i for i, v in enumerate(
        ["linear", "quadratic", "aligned (activation)", "aligned (weight)"])}
    rows = sel[keys].drop_duplicates()
    rows = rows.assign(_p=rows["pair_type"].map(pair_rank),
                       _v=rows["variant"].map(lambda v: variant_rank.get(v, 99)))
    rows = rows.sort_values(["_p", "_v", *extra]).drop(columns=["_p", "_v"])
    lookup = {tuple(r[k] for k in keys) + (r["eval_set"],): r for _, r in sel.iterrows()}
    top = max(float(sel["mean"].abs().max()), 1e-12)
    head = "".join(f'<th class="row">{html.escape(k.replace("_", " "))}</th>'
                   for k in ("pair type", "path", *extra))
    head += "".join(f"<th>{html.escape(plots.EVAL_SET_TITLES.get(e, e))}</th>" for e in sets)
    body = []
    previous = None
    for key in rows.itertuples(index=False):
        key = tuple(key)
        label = key[0] if key[0] != previous else ""
        previous = key[0]
        cells = [f'<td class="row"><strong>{html.escape(str(label))}</strong></td>']
        cells += [f'<td class="row">{html.escape(str(v))}</td>' for v in key[1:]]
        for eval_set in sets:
            hit = lookup.get(key + (eval_set,))
            if hit is None or pd.isna(hit["mean"]):
                cells.append(f'<td class="missing">{stats.MISSING}</td>')
                continue
            ci = "" if hit["n"] <= 1 else \
                f' <span class="muted">[{hit["ci_low"]:.{digits}f}, {hit["ci_high"]:.{digits}f}]</span>'
            cells.append(f'<td style="{_shade(abs(hit["mean"]) / top, (229, 57, 53))}" '
                         f'title="n = {int(hit["n"])}, std = {hit["std"]:.{digits}f}">'
                         f'{hit["mean"]:.{digits}f}{ci}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def finetune_grid(text: pd.DataFrame, long: pd.DataFrame) -> str:
    """Table 1 of the paper: rows = models (pretrained references, then fine-tuning methods),
    one column group per cue proportion with one column per eval set; "mean ± std" accuracy (%)
    over seeds, shaded by the mean; "—" where missing."""
    if text.empty:
        return "<p><em>No pretrained or fine-tuned models evaluated yet.</em></p>"
    columns = [c for c in text.columns if c != "method"]
    groups: dict[str, list[tuple[str, str]]] = {}
    for col in columns:
        prop, _, eval_set = col.partition(" ")
        groups.setdefault(prop, []).append((col, eval_set))
    means = {(r.row, f"{r.cue_proportion:.0%}", r.eval_set): r.mean for r in long.itertuples()} \
        if not long.empty else {}
    top = ('<tr><th class="row" rowspan="2">model / fine-tuning method</th>'
           + "".join(f'<th class="group" colspan="{len(cols)}">cue proportion {html.escape(p)}</th>'
                     for p, cols in groups.items()) + "</tr>")
    sub = "<tr>" + "".join(f"<th>{html.escape(plots.EVAL_SET_TITLES.get(e, e))}</th>"
                           for cols in groups.values() for _, e in cols) + "</tr>"
    body = []
    for row in text.itertuples(index=False):
        values = dict(zip(text.columns, row))
        name = values["method"]
        cells = [f'<td class="row">{html.escape(str(name))}</td>']
        for prop, cols in groups.items():
            for col, eval_set in cols:
                value = values[col]
                mean = means.get((name, prop, eval_set))
                if value == stats.MISSING or mean is None:
                    cells.append(f'<td class="missing">{stats.MISSING}</td>')
                else:
                    cells.append(f'<td style="{_shade(mean)}">{html.escape(str(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead>{top}{sub}</thead><tbody>{''.join(body)}</tbody></table>"


def _figure_html(fig: ReportFigure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="fig-{html.escape(fig.name[:-4])}"><img data-name="{html.escape(fig.name)}" '
            f'alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><strong>{html.escape(fig.title)}.</strong> {html.escape(fig.caption)} "
            f'<a href="{html.escape(fig.name)}">{html.escape(fig.name)}</a></figcaption></figure>')


def _figures_html(figures: Sequence[ReportFigure]) -> tuple[str, str, str]:
    """(path figures grouped by pair type, barrier figure, fine-tuning figure) as HTML."""
    path_parts, current = [], None
    barrier, finetune = "", ""
    for fig in figures:
        if fig.section.startswith("paths:"):
            pair_type = fig.section.split(":", 1)[1]
            if pair_type != current:
                start, end = plots.endpoint_names(pair_type)
                path_parts.append(f"<h3>{html.escape(pair_type)} "
                                  f'<span class="muted">({html.escape(start)} → '
                                  f"{html.escape(end)})</span></h3>")
                current = pair_type
            path_parts.append(_figure_html(fig))
        elif fig.section == "barriers":
            barrier = _figure_html(fig)
        elif fig.section == "finetune":
            finetune = _figure_html(fig)
    return "".join(path_parts), barrier, finetune


def render_html(*, title: str, banner: str, summary: pd.DataFrame, finetune: stats.FinetuneTable,
                figures: Sequence[ReportFigure], provenance: Mapping[str, object],
                spec_text: str | None, failed: str) -> str:
    """One self-contained page: tables inline, figures as base64 data URIs (the PNG files next to
    the page are linked too)."""
    path_figs, barrier_fig, finetune_fig = _figures_html(figures)
    spec = (f"<pre>{html.escape(spec_text)}</pre>" if spec_text
            else "<p><em>No spec recorded.</em></p>")
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    seeds = sorted({int(n) for n in finetune.long["n"]}) if not finetune.long.empty else []
    seed_note = (f"n = {seeds[0]}" if len(seeds) == 1 else f"n = {seeds[0]}–{seeds[-1]}") \
        if seeds else "no seeds yet"
    failed_link = '<a href="#failed">Failed tasks</a>' if failed else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{html.escape(title)}</title>
<style>{_CSS}</style><script>{_SELFTEST_JS}</script></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">Generated {generated} by <code>mmc-sweep report</code>.</p>
<nav><a href="#barriers">Barriers</a><a href="#finetune">Fine-tuning (Table 1)</a>
<a href="#paths">Paths</a>{failed_link}<a href="#provenance">Provenance</a><a href="#spec">Spec</a></nav>
{banner}
<h2 id="barriers">Connectivity barriers</h2>
<p>Loss barrier (chord definition: the largest excess of the loss over the straight line between
the endpoint losses) per pair type and path, on each counterfactual test set: mean over pairs
with the 95% percentile-bootstrap interval of the mean in brackets (hover for n and std). A barrier
near 0 means the two models are linearly (or, for the quadratic path, quadratically) connected.</p>
{barrier_grid(summary)}
<details><summary>Accuracy drop (chord), in the same layout</summary>
{barrier_grid(summary, metric="acc")}
</details>
<details><summary>Every barrier statistic (loss and accuracy; chord and mean-endpoint
definitions), as in <code>summary.parquet</code></summary>
{_html_table(summary)}
</details>
{barrier_fig}
<h2 id="finetune">Fine-tuning: accuracy (%) on the counterfactual test sets</h2>
<p>The layout of the paper's Table 1: mean ± std over seeds ({seed_note} per cell). ↑ / ↓: the
direction a model without cue reliance moves (clean accuracy up, accuracy on images whose cue
points to their label but whose content is random down, to about chance). The no-cue model is
repeated under every cue proportion as a reference.</p>
{finetune_grid(finetune.text, finetune.long)}
{finetune_fig}
<h2 id="paths">Loss and accuracy along paths</h2>
<p>One figure per pair type and path kind: columns are the counterfactual test sets, rows loss
and accuracy.</p>
{path_figs or "<p><em>No path evaluations yet.</em></p>"}
{failed}
<h2 id="provenance">Provenance</h2>
{_kv_table(provenance)}
<h2 id="spec">Spec</h2>
{spec}
</body></html>
"""


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------

def read_results(layout, plan: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Every result table as a DataFrame, restricted to the tasks of the sweep's plan (rows a
    sweep's earlier versions left behind are never mixed in); empty ones where nothing was written."""
    out = {table: tables.read_table(layout, table) for table in vocab.TABLES}
    if plan is not None:
        planned = set(plan["task_id"])
        out = {table: df[df["task_id"].isin(planned)].reset_index(drop=True) for table, df in out.items()}
    return out


def _read_spec(layout) -> str | None:
    try:
        path = layout.spec_file()
        if layout.storage.exists(path):
            return layout.storage.read_bytes(path, max_bytes=2_000_000).decode("utf-8", errors="replace")
    except Exception as exc:  # noqa: BLE001 - the report must not fail on a missing spec
        warnings.warn(f"could not read the spec for the report: {exc}", RuntimeWarning, stacklevel=2)
    return None


def summary_text(layout) -> tuple[pd.DataFrame | None, str]:
    """The barrier summary of the sweep's plan and the terminal text of its two key tables."""
    results = read_results(layout, read_plan(layout))
    if results[vocab.BARRIERS].empty:
        return None, ""
    summary = stats.summarize(results[vocab.BARRIERS])
    loss = summary[(summary["metric"] == "loss") & (summary["definition"] == "chord")]
    lines = ["", "loss barrier (chord), mean over pairs [95% t-interval]:", stats.format_table(loss)]
    if not results[vocab.EVALUATIONS].empty:
        table = stats.finetune_table(results[vocab.EVALUATIONS], results[vocab.TASKS])
        lines += ["", "accuracy on the counterfactual test sets (mean ± std over seeds):", stats.format_table(table.text)]
    return summary, "\n".join(lines)


def write_report(layout, provenance: Mapping[str, object] | None = None, title: str | None = None) -> Report:
    """Write summary.parquet/.md, finetune_table.parquet/.md, figures and report.html into
    `layout.report_dir()` from the result tables of the sweep's plan. Returns a `Report`."""
    started = time.perf_counter()
    storage = layout.storage
    plan_df = read_plan(layout)
    results = read_results(layout, plan_df)
    summary = stats.summarize(results[vocab.BARRIERS])
    finetune = stats.finetune_table(results[vocab.EVALUATIONS], results[vocab.TASKS])
    figures = _render_figures(results)

    written: list[str] = []

    def put(name: str, data: bytes) -> str:
        path = layout.report_file(name)
        storage.write_bytes(path, data)
        written.append(path)
        return path

    summary_path = put("summary.parquet", _parquet_bytes(summary))
    put("summary.md", (stats.format_markdown(summary) + "\n").encode())
    put("finetune_table.parquet", _parquet_bytes(finetune.long))
    put("finetune_table.md", (stats.format_markdown(finetune.text) + "\n").encode())
    figure_paths = tuple(put(fig.name, fig.png) for fig in figures)

    plan = planned_by_kind(plan_df)
    planned = sum(map(len, plan.values())) if plan else None
    tasks = results[vocab.TASKS]
    progress = progress_table(tasks, plan)
    finished = int(progress.iloc[-1]["finished"]) if plan is not None and not progress.empty \
        else _finished_count(tasks)
    prov = {"sweep": str(getattr(layout, "root", "")), **task_provenance(tasks),
            **_caller_provenance(provenance), **software_versions(),
            "report rendered in": f"{time.perf_counter() - started:.1f} s "
                                  f"({len(figures)} figures)"}
    page = render_html(
        title=title or f"mmc-sweep report: {getattr(layout, 'sweep', '')}".rstrip(": "),
        banner=_banner(progress, finished, planned),
        summary=summary, finetune=finetune, figures=figures, provenance=prov,
        spec_text=_read_spec(layout), failed=_failed_table(tasks))
    html_path = put("report.html", page.encode("utf-8"))
    return Report(html=html_path, figures=figure_paths, summary=summary_path, files=tuple(written))


def local_paths(layout, paths) -> list[str]:
    """Local filesystem paths of storage paths (for MLflow artifacts); skips non-local ones."""
    out = []
    for path in paths:
        local = layout.storage.local_path(path)
        if local is not None:
            out.append(os.fspath(local))
    return out
