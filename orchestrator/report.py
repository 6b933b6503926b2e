"""The sweep report: summary tables, figures and one self-contained report.html, written to
`layout.report_dir()` from the result tables. Works on a partial sweep (missing cells "—")."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import plots, sinks, stats

TABLES = ("tasks", "evaluations", "train_curves", "paths", "barriers")


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
    return sorted(out, key=lambda c: (c[0], c[1], c[2] or ""))


def _render_figures(results: dict[str, pd.DataFrame]) -> dict[str, tuple[str, bytes]]:
    """name -> (caption, PNG bytes) for every figure the data allows."""
    figures: dict[str, tuple[str, bytes]] = {}
    for pair_type, path_kind, alignment in _path_combos(results["paths"]):
        fig = plots.plot_path(results["paths"], pair_type, path_kind, alignment)
        figures[_path_figure_name(pair_type, path_kind, alignment)] = (
            plots.path_title(pair_type, path_kind, alignment), plots.figure_png(fig))
    barriers = results["barriers"]
    if not barriers[(barriers["metric"] == "loss") & (barriers["definition"] == "chord")].empty:
        figures["barriers.png"] = ("Loss barrier (chord) per pair type and path",
                                   plots.figure_png(plots.plot_barriers(barriers)))
    if not stats.finetune_long(results["evaluations"], results["tasks"]).empty:
        figures["finetune.png"] = ("Accuracy on counterfactual sets, pretrained and fine-tuned",
                                   plots.figure_png(plots.plot_finetune(results["evaluations"],
                                                                        results["tasks"])))
    return figures


# ----------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------

def _distinct(tasks: pd.DataFrame, column: str) -> str:
    if column not in tasks.columns:
        return stats.MISSING
    values = sorted({str(v) for v in tasks[column].dropna()})
    return ", ".join(values) if values else stats.MISSING


def task_provenance(tasks: pd.DataFrame) -> dict[str, str]:
    """Provenance that the tasks table records: spec hashes, git revisions, versions, devices,
    compute time (sum of task durations) and wall time (first start to last finish)."""
    if tasks.empty:
        return {}
    done = tasks[tasks["status"].isin(sinks.FINISHED_STATUSES)]
    out = {
        "spec hash": _distinct(tasks, "spec_hash"),
        "git revision": _distinct(tasks, "git_rev"),
        "torch version": _distinct(tasks, "torch_version"),
        "devices": ", ".join(f"{d} ({n} tasks)" for d, n in
                             tasks["device"].dropna().value_counts().sort_index().items())
        or stats.MISSING,
        "task compute time": f"{done['duration_s'].fillna(0).sum():.1f} s",
    }
    starts, ends = tasks["started_at"].dropna(), tasks["finished_at"].dropna()
    if len(starts) and len(ends):
        out["wall time"] = f"{(ends.max() - starts.min()).total_seconds():.1f} s " \
                           f"({starts.min():%Y-%m-%d %H:%M:%S} to {ends.max():%Y-%m-%d %H:%M:%S} UTC)"
    return out


def status_counts(tasks: pd.DataFrame) -> dict[str, int]:
    if tasks.empty:
        return {}
    latest = tasks.drop_duplicates("task_id", keep="last")
    return {str(k): int(v) for k, v in latest["status"].value_counts().sort_index().items()}


def _finished_count(tasks: pd.DataFrame) -> int:
    if tasks.empty:
        return 0
    latest = tasks.drop_duplicates("task_id", keep="last")
    return int(latest["status"].isin(sinks.FINISHED_STATUSES).sum())


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: .6em 1em; }
.ok { background: #e8f5e9; border-color: #8bc34a; }
figure { margin: 1.5em 0; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def _html_table(df: pd.DataFrame, digits: int = 4) -> str:
    if df.empty:
        return "<p><em>No rows yet.</em></p>"
    shown = df.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = [stats.MISSING if pd.isna(v) else f"{v:.{digits}f}" for v in shown[col]]
        else:
            shown[col] = [stats.MISSING if v is None or (isinstance(v, float) and pd.isna(v))
                          else v for v in shown[col]]
    return shown.to_html(index=False, escape=True, border=0)


def _kv_table(items: Mapping[str, object]) -> str:
    if not items:
        return "<p><em>None recorded.</em></p>"
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in items.items())
    return f"<table>{rows}</table>"


def _banner(finished: int, planned: int | None, counts: dict[str, int]) -> str:
    detail = ", ".join(f"{k}: {v}" for k, v in counts.items()) or "no tasks recorded"
    if planned is None:
        return f'<p class="banner ok">{finished} tasks finished ({html.escape(detail)}).</p>'
    cls = "banner ok" if finished >= planned else "banner"
    note = "" if finished >= planned else " This is a partial sweep: missing cells show “—”."
    return (f'<p class="{cls}"><strong>{finished} of {planned} tasks finished</strong> '
            f"({html.escape(detail)}).{note}</p>")


def _failed_table(tasks: pd.DataFrame) -> str:
    if tasks.empty:
        return ""
    failed = tasks[tasks["status"] == "failed"]
    if failed.empty:
        return ""
    shown = failed[["task_id", "kind", "error"]].copy()
    shown["error"] = shown["error"].fillna("").map(lambda e: e.strip().splitlines()[-1][:300]
                                                   if e.strip() else "")
    return "<h2>Failed tasks</h2>" + _html_table(shown)


def _headline(summary: pd.DataFrame) -> pd.DataFrame:
    if summary.empty:
        return summary
    keep = (summary["metric"] == "loss") & (summary["definition"] == "chord")
    return summary[keep].drop(columns=["metric", "definition"])


def render_html(*, title: str, banner: str, summary: pd.DataFrame, finetune_text: pd.DataFrame,
                figures: Mapping[str, tuple[str, bytes]], provenance: Mapping[str, object],
                spec_text: str | None, failed: str) -> str:
    """One self-contained page: tables inline, figures as base64 data URIs."""
    figs = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{html.escape(caption)} '
        f"(<code>{html.escape(name)}</code>)</figcaption></figure>"
        for name, (caption, png) in figures.items())
    spec = (f"<pre>{html.escape(spec_text)}</pre>" if spec_text
            else "<p><em>No spec recorded.</em></p>")
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {generated}.</p>
{banner}
<h2>Connectivity barriers</h2>
<p>Loss barrier (chord definition): mean over pairs with a 95% percentile-bootstrap interval of the
mean; std is 0 for a single pair.</p>
{_html_table(_headline(summary))}
<details><summary>Every barrier (loss and accuracy drop; chord and mean-endpoint definitions)</summary>
{_html_table(summary)}
</details>
<h2>Fine-tuning (accuracy %, mean ± std over seeds)</h2>
{_html_table(finetune_text)}
<h2>Figures</h2>
{figs or "<p><em>No figures yet.</em></p>"}
{failed}
<h2>Provenance</h2>
{_kv_table(provenance)}
<h2>Spec</h2>
{spec}
</body></html>
"""


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------

def read_results(layout) -> dict[str, pd.DataFrame]:
    """Every result table as a DataFrame (empty ones where nothing was written yet)."""
    return {table: sinks.read_table(layout, table) for table in TABLES}


def _read_spec(layout) -> str | None:
    try:
        path = layout.spec_file()
        if layout.storage.exists(path):
            return layout.storage.read_bytes(path).decode("utf-8", errors="replace")
    except Exception as exc:  # noqa: BLE001 - the report must not fail on a missing spec
        warnings.warn(f"could not read the spec for the report: {exc}", RuntimeWarning, stacklevel=2)
    return None


def write_report(layout, spec_text: str | None = None, provenance: Mapping[str, object] | None = None,
                 planned: int | None = None, title: str | None = None, seed: int = 0,
                 n_boot: int = 1000) -> Report:
    """Write summary.parquet/.md, finetune_table.parquet/.md, figures and report.html into
    `layout.report_dir()`. `planned` (number of tasks in the graph) adds an "N of M finished"
    banner. `spec_text` defaults to the sweep's stored spec.yaml. Returns a `Report`."""
    storage = layout.storage
    results = read_results(layout)
    summary = stats.summarize(results["barriers"], seed=seed, n_boot=n_boot)
    finetune = stats.finetune_table(results["evaluations"], results["tasks"])
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
    figure_paths = tuple(put(name, png) for name, (_caption, png) in figures.items())

    tasks = results["tasks"]
    prov = {**task_provenance(tasks), **dict(provenance or {})}
    page = render_html(
        title=title or f"mmc-sweep report: {getattr(layout, 'sweep', '')}".rstrip(": "),
        banner=_banner(_finished_count(tasks), planned, status_counts(tasks)),
        summary=summary, finetune_text=finetune.text, figures=figures, provenance=prov,
        spec_text=spec_text if spec_text is not None else _read_spec(layout),
        failed=_failed_table(tasks))
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
