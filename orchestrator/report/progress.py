"""How far a sweep got and what computed it, for the report: tasks per kind against the stored plan
(finished, failed, skipped, not run yet; a finished task whose outputs no longer verify counts as not
run, as for `mmc-sweep status`), and the provenance the tasks table records and the caller passes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from orchestrator import provenance, vocab
from orchestrator.machine import usable_cpus
from orchestrator.provenance import format_versions
from orchestrator.report import stats
from orchestrator.results import outputs


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


def progress_table(tasks: pd.DataFrame, plan: Mapping[str, Sequence[str]] | None,
                   damaged: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per task kind: planned (from the stored plan, when known), finished, failed, skipped, and
    how many have not run yet; a total row last. A `damaged` task (its outputs no longer verify) has not
    run yet, as for `mmc-sweep status` and the next run, which recomputes it."""
    latest = _latest(tasks)
    status = dict(zip(latest["task_id"], latest["status"])) if not latest.empty else {}
    for task_id in damaged or ():
        status.pop(task_id, None)
    known_plan = plan is not None
    if plan is None:
        plan = {}
        for task_id, kind in (zip(latest["task_id"], latest["kind"]) if not latest.empty else ()):
            plan.setdefault(kind, []).append(task_id)
    rows = []
    for kind in [k for k in vocab.TASK_KINDS if k in plan] + sorted(set(plan) - set(vocab.TASK_KINDS)):
        states = [status.get(t) for t in plan[kind]]
        counts = {s: sum(x == s for x in states) for s in vocab.TABLE_STATUSES}
        rows.append({"kind": kind, "planned": len(states) if known_plan else None, **counts,
                     "not run yet": len(states) - sum(counts.values())})
    df = pd.DataFrame(rows, columns=["kind", "planned", *vocab.TABLE_STATUSES, "not run yet"])
    if not df.empty:
        total = {c: (df[c].sum() if c != "kind" else "total") for c in df.columns}
        total["planned"] = int(df["planned"].sum()) if known_plan else None
        df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    return df


def _distinct(tasks: pd.DataFrame, column: str, sep: str = ", ") -> str:
    values = sorted({str(v) for v in tasks[column].dropna().unique()}) if column in tasks.columns else []
    return sep.join(values) if values else stats.MISSING


def damaged_tasks(layout, plan: pd.DataFrame | None, tasks: pd.DataFrame | None = None) -> dict[str, str]:
    """{task id: why} of the planned tasks that finished once but whose outputs no longer verify (the rule
    of `mmc-sweep status` and of a resumed run's cache check, `outputs.verify_many`): a damaged output, or a
    done marker gone (deleted with its task's directory) of a task the `tasks` table records as finished."""
    if plan is None or plan.empty:
        return {}
    verified = outputs.verify_many(layout, zip(plan["kind"], plan["task_id"]), processes=usable_cpus())
    recorded = set(tasks.loc[tasks["status"] == vocab.FINISHED, "task_id"]) if tasks is not None and not tasks.empty \
        else set()
    return {task_id: why if why != outputs.NOT_FINISHED else f"{why}: its outputs are gone since it finished"
            for task_id, (ok, why) in verified.items()
            if not ok and (why != outputs.NOT_FINISHED or task_id in recorded)}


def task_provenance(tasks: pd.DataFrame) -> dict[str, str]:
    """Provenance that the tasks table records: spec hashes, git revisions, versions, devices,
    hosts, compute time (sum of task durations) and wall time (first start to last finish)."""
    if tasks.empty:
        return {}
    done = tasks[tasks["status"] == vocab.FINISHED]
    devices = tasks["device"].dropna().value_counts().sort_index()
    out = {
        "spec hash": _distinct(tasks, "spec_hash"),
        "git revision": _distinct(tasks, "git_rev"),
        "torch version": _distinct(tasks, "torch_version"),
        "software (run)": _distinct(tasks, "versions", sep="; "),   # each value lists several packages
        "devices": ", ".join(f"{d} ({n} tasks)" for d, n in devices.items()) or stats.MISSING,
        "hosts": _distinct(tasks, "host"),
        "task compute time": f"{done['duration_s'].fillna(0).sum():.1f} s (sum over finished tasks)",
    }
    reused = tasks.get("cached")
    reused = int(reused.fillna(False).astype(bool).sum()) if reused is not None else 0
    if reused:
        out["cached tasks"] = f"{reused} (outputs of an earlier run, verified and reused)"
    starts, ends = tasks["started_at"].dropna(), tasks["finished_at"].dropna()
    if len(starts) and len(ends):
        out["wall time"] = f"{(ends.max() - starts.min()).total_seconds():.1f} s " \
                           f"({starts.min():%Y-%m-%d %H:%M:%S} to {ends.max():%Y-%m-%d %H:%M:%S} UTC)"
    return out


# Keys callers (sweep.run_sweep) pass, as the report names them. The invocation's own revision is not "git
# revision", the tasks table's: a rerun that reused every result must not credit them to its code.
_PROVENANCE_ALIASES = {"spec_hash": "spec hash", "git_rev": "git revision of this invocation", "torch": "torch version",
                       "wall_s": "wall time of this invocation"}


def caller_provenance(provenance: Mapping[str, object] | None) -> dict[str, str]:
    out = {}
    for key, value in (provenance or {}).items():
        if key == "wall_s" and isinstance(value, (int, float)):
            value = f"{value:.1f} s"
        out[_PROVENANCE_ALIASES.get(key, key)] = stats.MISSING if value is None else str(value)
    return out


def software_versions() -> dict[str, str]:
    """Python and the versions of the libraries of this process, which renders the report (the run's
    are in the `tasks` table's `versions`: "software (run)"), and the revision of its code: a stored
    report's verdicts are those of the code that wrote it."""
    return {"software (report)": format_versions(provenance.software_versions()),
            "code revision (report)": provenance.revision_label() or stats.MISSING}   # the rules that judged it


def failed_tasks(tasks: pd.DataFrame) -> pd.DataFrame:
    """The tasks whose latest row failed."""
    return _latest(tasks)[_latest(tasks)["status"] == vocab.FAILED] if not tasks.empty else tasks
