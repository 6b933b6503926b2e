"""The sweep report: the claims with their controls, summary tables, figures and one self-contained
report.html, written to `layout.report_dir()` from the result tables of the sweep's stored plan
(rows of tasks the plan does not name, e.g. of an earlier spec version, are never mixed in). Works
on a partial sweep (missing cells "—"). Figures: `figures`; the page: `report_html`; the claims:
`claims`; statistics: `stats`. Without `plan.parquet` the plan is rebuilt from the stored spec.yaml, or
the report is refused (`plan.plan_of`): it never pools the rows of two spec versions.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.messages import logger
from orchestrator.report import claims as claims_lib
from orchestrator import vocab
from orchestrator.report import figures, html as report_html, learnt, mechanism_map, progress as progress_lib, stats
from orchestrator.report.verdicts import PP
from tasks.settings.data import EVAL_SETS
from tasks.settings.finetune import FINETUNE_METHOD_NAMES
from orchestrator.results import tables
from orchestrator.results.plan import plan_of, rebuilt_note
from orchestrator.results.schemas import SCHEMAS, SETTINGS_COLUMNS
from orchestrator.spec.claim_rules import ClaimRules
from orchestrator.spec.schema import top_key
from orchestrator.spec.validation import read_settings
from orchestrator.spec.yaml_io import YamlError, parse_yaml
from tasks.settings import as_dict

_LOG = logger(__name__)

MAX_SPEC_BYTES = 2_000_000


@dataclass(frozen=True)
class Report:
    """Paths (storage paths) of what `write_report` wrote. `os.fspath(report)` is the HTML page."""

    html: str
    figures: tuple[str, ...] = ()
    summary: str | None = None
    files: tuple[str, ...] = field(default=())   # every file written or kept, figures and html included
    text: str = ""                               # the terminal summary (`summary_text`'s text)
    summary_table: pd.DataFrame | None = field(default=None, compare=False)   # summary.parquet's rows (None: empty)
    clusters: str | None = None                  # clusters.parquet (the mechanism maps' models), where there are maps
    note: str = ""                               # e.g. plan.parquet was missing: the plan came from spec.yaml

    def __fspath__(self) -> str:
        return self.html


# ----------------------------------------------------------------------------------------------
# Reading a sweep
# ----------------------------------------------------------------------------------------------

def read_results(layout, plan: pd.DataFrame | None = None, swept: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Every result table as a DataFrame, restricted to the tasks of the sweep's plan (rows a
    sweep's earlier versions left behind are never mixed in); empty ones where nothing was written.
    With `swept` (the sweep's swept settings), the settings columns of the others are not read: the
    report and the claims group and facet by the swept ones only (`report_columns`)."""
    planned = None if plan is None else plan["task_id"].tolist()
    return {table: tables.read_table(layout, table, None if swept is None else report_columns(table, swept), planned)
            for table in vocab.TABLES}


def verified_results(layout, plan: pd.DataFrame | None, swept: Sequence[str] | None = None
                     ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """`read_results`, less the rows of the planned tasks that finished once but no longer verify
    (`progress.damaged_tasks`: a file changed or gone since), and those tasks: the report counts them as not
    run, so no number of theirs reaches a table, figure or verdict (their `tasks` rows stay, for progress)."""
    results = read_results(layout, plan, swept)
    damaged = progress_lib.damaged_tasks(layout, plan, results[vocab.TASKS])
    if damaged:
        results = {table: rows if table == vocab.TASKS else rows[~rows["task_id"].isin(list(damaged))]
                   for table, rows in results.items()}
    return results, damaged


def report_columns(table: str, swept: Sequence[str]) -> list[str]:
    """The columns of `table` the report reads: all but the `<section>.<field>` settings columns that
    are not swept (a 10^5-task sweep's `paths` table: 25 of 68 columns)."""
    keep = set(swept)
    return [name for name in SCHEMAS[table].names if name not in SETTINGS_COLUMNS or name in keep]


def read_spec_text(layout) -> str | None:
    try:
        path = layout.spec_file()
        if layout.storage.exists(path):
            return layout.storage.read_bytes(path, max_bytes=MAX_SPEC_BYTES).decode("utf-8", errors="replace")
    except Exception as exc:  # noqa: BLE001 - the report must not fail on a missing spec
        _LOG.warning(f"could not read the spec for the report: {exc}")
    return None


@lru_cache(maxsize=4)
def _parsed_spec(spec_text: str | None) -> tuple[dict | None, str]:
    """(the stored spec.yaml as a mapping, "") or (None, why it gives none): its rules, its axes and the
    report's banner read it, parsed once. Read only: the mapping is shared."""
    if spec_text is None:
        return None, "the sweep's spec.yaml is missing or unreadable"
    try:
        spec = parse_yaml(spec_text)
    except YamlError as e:
        return None, f"the sweep's spec.yaml is not valid YAML ({e})"
    return (spec, "") if isinstance(spec, dict) else (None, "the sweep's spec.yaml is not a mapping")


def stored_rules(layout, spec_text: str | None = None) -> tuple[ClaimRules, dict]:
    """The claims' decision rules of the sweep's resolved spec.yaml (its `claims:` section; the defaults
    for a spec written before the section existed) and that section as the spec states it."""
    text = spec_text if spec_text is not None else read_spec_text(layout)
    spec, unread = _parsed_spec(text)
    if unread:
        _LOG.warning(f"{unread}: the claims are judged by the default rules, not those the sweep declared")
    raw = spec.get("claims") if spec is not None else None
    problems: list[str] = []
    rules = read_settings(top_key("claims"), {"claims": raw if isinstance(raw, dict) else {}}, "claims", problems)
    if rules is None:
        _LOG.warning(f"the stored spec's `claims:` section is not valid ({'; '.join(problems)}); the claims are "
                     "judged by the default rules")
        rules = ClaimRules()
    return rules, json.loads(json.dumps(as_dict(rules)))


def swept_keys(layout, spec_text: str | None = None) -> tuple[str, ...]:
    """The swept settings (`<section>.<field>`) of the sweep: the `axes` of its resolved spec.yaml."""
    spec = _parsed_spec(spec_text if spec_text is not None else read_spec_text(layout))[0]
    axes = spec.get("axes") if spec is not None else None
    keys = [key for group in axes if isinstance(group, dict) for key in group] if isinstance(axes, list) else []
    return tuple(dict.fromkeys(k for k in keys if isinstance(k, str)))


# ----------------------------------------------------------------------------------------------
# Summaries for the terminal
# ----------------------------------------------------------------------------------------------

def barrier_pivot(summary: pd.DataFrame, metric: str = "loss", definition: str = "chord",
                  digits: int = 3) -> pd.DataFrame:
    """Rows pair type × path (controls after their pair; model/cue proportion where they vary), an
    `n` column (pairs), one column per eval set: "mean [95% t-interval]" (the mean alone at n = 1)."""
    sel = summary[(summary["metric"] == metric) & (summary["definition"] == definition)]
    if sel.empty:
        return pd.DataFrame()
    sel = sel.assign(path=stats.path_variants(sel))
    extra = stats.varying_labels(sel)
    sets = stats.order_values(sel["eval_set"], EVAL_SETS)
    rows = []
    for key, group in sel.groupby(["pair_type", "path", *extra], sort=False, dropna=False):
        cells = dict(zip(["pair type", "path", *extra], key))
        cells["n"] = "/".join(str(n) for n in sorted({int(n) for n in group["n"]}))   # 9/10, not 10/9
        by_set = group.set_index("eval_set")
        for eval_set in sets:
            r = by_set.loc[eval_set] if eval_set in by_set.index else None
            cells[eval_set] = stats.MISSING if r is None or pd.isna(r["mean"]) else f"{r['mean']:.{digits}f}" + (
                "" if pd.isna(r["ci_low"]) else f" [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]")
        rows.append(cells)
    out = pd.DataFrame(rows)
    order = [stats.pair_sort_key(p, FINETUNE_METHOD_NAMES) + stats.variant_sort_key(v)
             for p, v in zip(out["pair type"], out["path"])]
    return out.assign(_o=order).sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)


def summary_text(layout) -> tuple[pd.DataFrame | None, str]:
    """The barrier summary of the sweep's plan and the terminal text of its key tables: loss barriers
    and Table 1 (one per combination of swept values), then the claims' verdicts. (`write_report`
    returns the same text as `Report.text`, without reading the tables a second time.)"""
    spec_text = read_spec_text(layout)
    swept = swept_keys(layout, spec_text)
    results = verified_results(layout, plan_of(layout)[0], swept)[0]
    summary = stats.summarize(results[vocab.BARRIERS], swept=swept)
    rules = stored_rules(layout, spec_text)[0]
    return (summary if not summary.empty else None), _text(results, swept, summary, claims_lib.judge(
        results, swept, rules), unlearnt_warning(results, rules, spec_text),
        drift_note(stats.endpoint_drift(results[vocab.PATHS], results[vocab.EVALUATIONS], swept)))


def unlearnt_warning(results: dict[str, pd.DataFrame], rules: ClaimRules, spec_text: str | None) -> str:
    """The `warning:` line naming trained models at the chance floor on every set ("" for none), with the
    settings that trained them (the stored spec's, or their swept columns)."""
    ev = results[vocab.EVALUATIONS]
    chance = stats.chance(ev["dataset"], results.get(vocab.PATHS)) if "dataset" in ev else None
    found = learnt.unlearnt(ev, chance, rules.floor_acc, _parsed_spec(spec_text)[0], results.get(vocab.TRAIN_CURVES),
                            results.get(vocab.PATHS))
    return learnt.warning_text(found, chance or 0.0, rules.floor_acc)


def _text(results: dict[str, pd.DataFrame], swept, summary: pd.DataFrame, verdicts, warning: str = "",
          note: str = "") -> str:
    if results[vocab.BARRIERS].empty and results[vocab.EVALUATIONS].empty:
        return ""
    lines = []
    for combo in stats.swept_combos([summary], swept) if not summary.empty else []:
        where = f" ({stats.facet_label(combo)})" if combo else ""
        lines += ["", f"loss barrier (chord), mean over n pairs [95% t-interval]{where}:",
                  stats.format_table(barrier_pivot(stats.facet(summary, combo)))]
    ev, tasks = results[vocab.EVALUATIONS], results[vocab.TASKS]
    for combo in stats.swept_combos([ev], stats.by_model([ev], swept)) if not ev.empty else []:
        table = stats.finetune_table(stats.facet(ev, combo), stats.facet(tasks, combo))
        where = f" ({stats.facet_label(combo)})" if combo else ""
        lines += ["", f"accuracy (%) on the counterfactual test sets, mean ± std over the n models "
                  f"(one per seed; the pretrained rows pool every model of their kind){where}:",
                  stats.format_table(table.text)]
    if note:
        lines += ["", note]
    if warning:
        lines += ["", warning]
    if verdicts:
        lines += ["", "claims (details: report.html, or `mmc-sweep claims <storage>/<sweep>`):",
                  claims_lib.claims_text(verdicts, detail=False).rstrip()]
    return "\n".join(lines)


DRIFT_NOTED = 0.10     # an endpoint this far (accuracy, a fraction) from its trained model's is said in the summary


def drift_note(drift: pd.DataFrame) -> str:
    """One `note:` line where a path's endpoint, its BatchNorm re-estimated on `paths.bn_data`, scores at least
    DRIFT_NOTED away from the trained model's accuracy that Table 1 shows (`stats.endpoint_drift`): the paths'
    numbers and Table 1's then differ for the same model, and the claims on paths read the paths' own. "" else."""
    if drift.empty or not drift["acc_drift"].notna().any():
        return ""
    worst = drift.loc[drift["acc_drift"].abs().idxmax()]
    if abs(worst["acc_drift"]) < DRIFT_NOTED:
        return ""
    return (f"note: the paths' endpoints (BatchNorm re-estimated on `paths.bn_data`) score up to "
            f"{PP * abs(worst['acc_drift']):.0f} pp away from the accuracy above of the same models "
            f"({worst['pair_type']} {worst['path']}, endpoint {worst['endpoint']}, {worst['eval_set']}: "
            f"{PP * worst['acc_drift']:+.1f} pp, {_over(int(worst['n']))}); the claims on paths read the "
            "paths' own numbers (the report's endpoint_drift.parquet and docs/SCIENCE.md say more).")


def _over(n: int) -> str:
    return "one pair" if n == 1 else f"mean over {n} pairs"


def print_claims(layout, log=print) -> list:
    """Judge the claims (a)–(d) on a sweep's results (its plan's tasks only) and print them with
    their controls. What `mmc-sweep claims` prints after running the sweep."""
    spec_text = read_spec_text(layout)
    swept = swept_keys(layout, spec_text)
    results = verified_results(layout, plan_of(layout)[0], swept)[0]
    rules = stored_rules(layout, spec_text)[0]
    verdicts = claims_lib.judge(results, swept, rules)
    warning = unlearnt_warning(results, rules, spec_text)
    log((warning + "\n\n" if warning else "") + (claims_lib.claims_text(verdicts) if verdicts else
        "no claim can be judged yet: the sweep has no results (or its dataset's class count is unknown)"))
    return verdicts


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------

def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False), buf)
    return buf.getvalue()


def write_report(layout, provenance: Mapping[str, object] | None = None, title: str | None = None) -> Report:
    """Write summary.parquet/.md, finetune_table.parquet/.md, the figures and report.html into
    `layout.report_dir()` from the result tables of the sweep's plan. Returns a `Report`."""
    started = time.perf_counter()
    storage = layout.storage
    plan_df, rebuilt = plan_of(layout)
    spec_text = read_spec_text(layout)
    swept = swept_keys(layout, spec_text)
    results, damaged = verified_results(layout, plan_df, swept)
    summary = stats.summarize(results[vocab.BARRIERS], swept=swept)
    ev, tasks = results[vocab.EVALUATIONS], results[vocab.TASKS]
    frames = [ev, tasks[tasks["kind"] == vocab.FINETUNE]] if not tasks.empty else [ev]
    combos = stats.swept_combos(frames, stats.by_model([ev], swept))
    table1 = [(combo, stats.finetune_table(stats.facet(ev, combo), stats.facet(tasks, combo))) for combo in combos]
    rules, rules_dict = stored_rules(layout, spec_text)
    spec_unread = _parsed_spec(spec_text)[1]     # "": its rules judged the claims
    maps = mechanism_map.maps(results, swept, rules)
    verdicts = claims_lib.judge(results, swept, rules, maps=maps)
    warning = unlearnt_warning(results, rules, spec_text)
    drift = stats.endpoint_drift(results[vocab.PATHS], results[vocab.EVALUATIONS], swept)
    drawn = time.perf_counter()
    pictures = figures.draw_figures(layout, figures.figure_jobs(results, swept, maps))
    figs = pictures.figures
    drawn = time.perf_counter() - drawn

    files = dict(pictures.files)     # written together at the end (`Storage.write_files`): all or none

    def put(name: str, data: bytes) -> str:
        path = layout.report_file(name)
        files[path] = data
        return path

    summary_path = put("summary.parquet", _parquet_bytes(summary))
    put("summary.md", (stats.format_markdown(summary) + "\n").encode())
    long = pd.concat([t.long.assign(**{k: v for k, v in combo.items()}) for combo, t in table1], ignore_index=True)
    put("finetune_table.parquet", _parquet_bytes(long))
    put("finetune_table.md", "\n\n".join((f"**{stats.facet_label(combo)}**\n\n" if combo else "")
                                         + stats.format_markdown(t.text) for combo, t in table1).encode() + b"\n")
    put("claims.md", ((warning + "\n\n") if warning else "").encode()    # as `mmc-sweep claims` prints it
        + (claims_lib.claims_text(verdicts).encode() if verdicts else b"no claim can be judged yet\n"))
    put("endpoint_drift.parquet", _parquet_bytes(drift))
    clusters = put("clusters.parquet", _parquet_bytes(mechanism_map.clusters_table(maps))) if maps else None
    figure_paths = tuple(layout.report_file(f.name) for f in figs)

    plan = progress_lib.planned_by_kind(plan_df)
    if damaged:
        _LOG.warning(f"{len(damaged)} finished task(s) no longer verify (their files changed since): the report "
                     "counts them as not run, the next run recomputes them; `mmc-sweep status` names them")
    progress = progress_lib.progress_table(tasks, plan, damaged)
    reused = sum(f.reused for f in figs)
    prov = {"sweep": str(getattr(layout, "root", "")), **progress_lib.task_provenance(tasks),
            **progress_lib.caller_provenance(provenance), **progress_lib.software_versions(),
            "report rendered in": f"{time.perf_counter() - started:.1f} s ({len(figs)} figures, {reused} of them "
                                  f"unchanged and reused; drawing {drawn:.1f} s)"}
    page = report_html.render_page(
        title=title or f"mmc-sweep report: {getattr(layout, 'sweep', '')}".rstrip(": "),
        progress=progress, planned=sum(map(len, plan.values())) if plan else None, claims=verdicts,
        summary=summary, swept=swept, table1=table1, figures=figs, provenance=prov, spec_text=spec_text,
        mechanism=stats.mechanism_table(results[vocab.PATHS], swept=swept),
        agreement_set=stats.order_values(results[vocab.PATHS]["eval_set"], EVAL_SETS)[0]
        if not results[vocab.PATHS].empty else "",
        failed=progress_lib.failed_tasks(tasks),
        rules=rules_dict, drift=drift, maps=maps, damaged=damaged, spec_unread=spec_unread, unlearnt=warning)
    html_path = put("report.html", page.encode("utf-8"))
    storage.write_files(files)
    figures.remove_stale(layout, pictures.stale)
    return Report(html=html_path, figures=figure_paths, summary=summary_path,
                  files=tuple(dict.fromkeys([*files, *figure_paths, layout.report_file(figures.MANIFEST)])),
                  text=_text(results, swept, summary, verdicts, warning, drift_note(drift)),
                  summary_table=summary if not summary.empty else None, clusters=clusters,
                  note=rebuilt_note(layout, plan_df) if rebuilt else "")


def local_paths(layout, paths, into: str | os.PathLike | None = None) -> list[str]:
    """Local filesystem paths of storage paths (for MLflow artifacts, which are uploaded from local files).
    A path on an object store is copied into the directory `into` under its own name when given (the files
    of a report on S3 reach MLflow too), else skipped; a missing one is skipped."""
    out = []
    for path in paths:
        local = layout.storage.local_path(path)
        if local is not None:
            out.append(os.fspath(local))
        elif into is not None and layout.storage.is_file(path):
            copy = os.path.join(into, path.rsplit("/", 1)[-1])
            with open(copy, "wb") as f:
                f.write(layout.storage.read_bytes(path))
            out.append(copy)
    return out


def table_files(layout, into: str | None = None) -> dict[str, list[str]]:
    """Each result table's Parquet files as local files (for MLflow, which uploads local files): as they are on
    local storage; on an object store copied into `into/tables/<table>/` (`local_paths`), none without it."""
    out: dict[str, list[str]] = {}
    for table in vocab.TABLES:
        files = sorted(info.path for info in layout.storage.list_infos(layout.table_dir(table))
                       if info.type == pafs.FileType.File and info.path.endswith(".parquet"))
        target = None
        if into is not None and files and layout.storage.local_path(files[0]) is None:
            target = os.path.join(into, "tables", table)
            os.makedirs(target, exist_ok=True)
        out[table] = local_paths(layout, files, target)
    return out
