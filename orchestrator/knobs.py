"""Every environment variable mmc-sweep reads, declared once: name (with its unit), type, default,
allowed range and meaning. Code reads a variable only through `read` (a test checks that no other
module of `orchestrator/` or `tasks/` looks at `MMC_*`), which validates it: a value that is not a
number, or out of range (or, for a text variable, not of its form), is a `KnobError` (exit 2) naming
the variable and what is allowed. The CLI
and `run_sweep` check every variable before any work (`check_all`).

README's table of variables is `python -m orchestrator.knobs` (a test compares the two).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Mapping

from orchestrator.errors import MmcError


class KnobError(MmcError):
    """An environment variable whose value is not allowed; the message names it and what is allowed."""


@dataclass(frozen=True)
class Knob:
    name: str                  # MMC_..., the unit at the end (_S: seconds)
    type: type                 # int, float, or str (text of the form `pattern`)
    default: int | float | None
    minimum: int | float | None
    maximum: int | float | None
    meaning: str               # one sentence for the docs (Markdown)
    unset: str = ""            # what no value means, when `default` is None
    pattern: str | None = None   # str: the whole value matches this regular expression ...
    form: str = ""               # ... which this names (Markdown)

    def allowed(self) -> str:
        if self.type is str:
            return self.form
        what = "a whole number" if self.type is int else "a number"
        return f"{what} from {_show(self.minimum)} to {_show(self.maximum)}"


PROGRESS_INTERVAL_S = Knob(
    "MMC_PROGRESS_INTERVAL_S", float, 5.0, 0.01, 86_400,
    "seconds between progress lines of `mmc-sweep run` (a failed task prints one at once)")
CONNECT_TIMEOUT_S = Knob(
    "MMC_CONNECT_TIMEOUT_S", float, 10.0, 0.1, 3_600,
    "seconds an MLflow tracking server or a Ray address has to answer before `run` stops with exit 2")
VISIBILITY_TIMEOUT_S = Knob(
    "MMC_VISIBILITY_TIMEOUT_S", float, 60.0, 0.1, 86_400,
    "seconds every node of a multi-node cluster has to show that it sees `storage` and `data.root`")
MAX_BUNDLE = Knob(
    "MMC_MAX_BUNDLE", int, None, 1, 100_000,
    "at most this many short tasks (path evaluations, alignments) per Ray Tune trial", unset=(
        "8, and more (up to 64, about 2 s per trial) for a kind whose tasks take under 0.1 s"))
MAX_WORKER_FAILURES = Knob(
    "MMC_MAX_WORKER_FAILURES", int, 2, 0, 1_000,
    "times Ray Train replaces the worker group of a data-parallel task (`workers` > 1) before the task fails")
TASK_RESTARTS = Knob(
    "MMC_TASK_RESTARTS", int, 2, 0, 1_000,
    "times a task is started again after its trial crashed (its process or node died: a spot node taken back, "
    "a node the autoscaler removed; never a task that raised) before it fails, where the cluster's autoscaler can "
    "start a node for it (elsewhere it fails at once: a node that died stays dead)")
COMPACT_MIN_FRAGMENTS = Knob(
    "MMC_COMPACT_MIN_FRAGMENTS", int, 64, 1, 10_000_000,
    "a table's new per-task files a run must leave before it compacts them into part files when it ends (a "
    "finished run merges a table that has a part already into one, whatever the number)")
LOCK_LEASE_S = Knob(
    "MMC_LOCK_LEASE_S", float, 60.0, 0.1, 86_400,
    "seconds a sweep's `run.lock` stays valid without renewal (its driver renews it while it runs); another "
    "driver takes over a lock older than this")
STORAGE_RETRY_S = Knob(
    "MMC_STORAGE_RETRY_S", float, 120.0, 0, 86_400,
    "seconds a request to an object store that cannot be reached (connection refused or reset, timeouts, "
    "503 Slow Down) is tried again, waiting 0.5 s, 1 s, 2 s, ... (at most 8 s) in between, before it fails")
MLFLOW_TASK_RUNS = Knob(
    "MMC_MLFLOW_TASK_RUNS", int, 10_000, 0, 10_000_000,
    "sweeps of at most this many tasks get an MLflow child run per task; larger ones one per task kind, with "
    "the per-task numbers in the result tables (MLflow's search and UI slow down past ~10^4 runs)")
REPORT_WORKERS = Knob(
    "MMC_REPORT_WORKERS", int, 4, 1, 1_024,
    "processes drawing the report's figures, this one included (1: no worker processes; never more than "
    "the CPUs this process may use)")
SOURCE_REVISION = Knob(
    "MMC_SOURCE_REVISION", str, None, None, None,
    "the source revision of the code a sweep runs, recorded in the `tasks` table's `git_rev` and the report; "
    "`cluster/submit.sh` sets it from the submitting checkout (a job's copy has no `.git`)",
    unset="the git checkout the package runs from, else unknown",
    pattern=r"[0-9a-f]{7,64}(\+dirty\.[0-9a-f]{8,64})?",
    form="a git revision: `<commit>` or `<commit>+dirty.<sha256 of git diff HEAD>`, in hex")

KNOBS: dict[str, Knob] = {k.name: k for k in (PROGRESS_INTERVAL_S, CONNECT_TIMEOUT_S, VISIBILITY_TIMEOUT_S,
                                              MAX_BUNDLE, MAX_WORKER_FAILURES, TASK_RESTARTS, COMPACT_MIN_FRAGMENTS,
                                              LOCK_LEASE_S, STORAGE_RETRY_S, MLFLOW_TASK_RUNS, REPORT_WORKERS,
                                              SOURCE_REVISION)}


def read_number(kind: type, text: str):
    """`kind(text)` for text written as a spec writes numbers: ASCII digits, no `_` (Python's int() reads '1_0'
    as 10 and '١٢' as 12); ValueError otherwise. Environment knobs and the CLI's numeric flags read numbers so."""
    if not text.isascii() or "_" in text:
        raise ValueError(text)
    return kind(text)


def given(knob: Knob, environ: Mapping[str, str] | None = None) -> int | float | str | None:
    """The variable's value, validated, or None when it is unset (or empty)."""
    raw = (os.environ if environ is None else environ).get(knob.name)
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if knob.type is str:
        if not re.fullmatch(knob.pattern or ".*", text):
            raise KnobError(f"`{knob.name}`={raw[:80]!r} is not {knob.form}; give one, or unset it"
                            f"{_default_text(knob)}")
        return text
    try:
        value = read_number(knob.type, text)
    except ValueError:
        value = None
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise KnobError(f"`{knob.name}`={raw[:40]!r} is not {knob.allowed().split(' from ')[0]}; allowed: "
                        f"{knob.allowed()}{_default_text(knob)}")
    if not knob.minimum <= value <= knob.maximum:
        raise KnobError(f"`{knob.name}`={raw[:40]!r} is out of range; allowed: {knob.allowed()}{_default_text(knob)}")
    return value


def read(knob: Knob, environ: Mapping[str, str] | None = None) -> int | float | str | None:
    """The variable's value, validated, or its default when it is unset."""
    value = given(knob, environ)
    return knob.default if value is None else value


def check_all(environ: Mapping[str, str] | None = None) -> None:
    """Every declared variable, validated; one KnobError lists every bad one. A variable whose name is
    close to a declared one (`MMC_PROGRES_INTERVAL_S`) is a typo that would be ignored: said once, as a warning."""
    for warning in misspelled(environ):
        if warning not in _WARNED:
            _WARNED.add(warning)
            from orchestrator.messages import logger   # not at the top: provenance (cluster/submit.sh) needs knobs alone
            logger(__name__).warning(warning)
    problems = []
    for knob in KNOBS.values():
        try:
            given(knob, environ)
        except KnobError as exc:
            problems.append(str(exc))
    if problems:
        raise KnobError("; ".join(problems))


_WARNED: set[str] = set()


def misspelled(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each `MMC_*` variable that is not declared but close to a declared name."""
    import difflib

    env = os.environ if environ is None else environ
    out = []
    for name in sorted(n for n in env if n.startswith("MMC_") and n not in KNOBS):
        close = difflib.get_close_matches(name, list(KNOBS), n=1, cutoff=0.85)
        if close:
            out.append(f"${name} is not a variable mmc-sweep reads (it is ignored); did you mean {close[0]}?")
    return out


def _default_text(knob: Knob) -> str:
    return f" (unset: {_default(knob)})"


def _default(knob: Knob) -> str:
    return knob.unset if knob.default is None else _show(knob.default)


def _range(knob: Knob) -> str:
    return knob.form if knob.type is str else f"{_show(knob.minimum)} to {_show(knob.maximum)}"


def _show(number: int | float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def markdown_table() -> str:
    """The table README shows (`python -m orchestrator.knobs`)."""
    rows = ["| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{k.name}` | {_default(k)} | {_range(k)} | {k.meaning} |"
             for k in KNOBS.values()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
