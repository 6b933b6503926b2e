"""Runners of your own: a runner named by an import path `package.module:function` or by an entry point
of the group `RUNNER_GROUP` (tests and benchmarks bring theirs: `tests/support/runners.py`), checked and
loaded without importing the science (the driver checks `--runner` before any work, and imports no torch).
The science's runner, `vocab.REAL_RUNNER`, is `orchestrator.run.work.RUNNERS`' one entry."""
from __future__ import annotations

from typing import Callable, Iterable

from orchestrator import vocab
from orchestrator.errors import MmcError
from tasks.plugins import name_problem, resolve

RUNNER_GROUP = "mmc_sweep.runners"   # entry points naming runners of installed packages


class RunnerError(MmcError):
    """A runner name that names no runner; the message says what is allowed."""


def plugin_runner(name: str, built_in: Iterable[str] = (vocab.REAL_RUNNER,)) -> Callable:
    """The function `(task, env) -> TaskOutput` an import path or entry point names; a RunnerError (exit 2)
    names what is allowed (`built_in`: the names of `work.RUNNERS`)."""
    problem = name_problem(name, tuple(built_in), RUNNER_GROUP, "runner", "package.module:function")
    runner = None if problem else resolve(name, RUNNER_GROUP)
    if problem or not callable(runner):
        raise RunnerError(f"`--runner`: {problem or f'{name!r} is not a function `(task, env) -> TaskOutput`'}")
    return runner
