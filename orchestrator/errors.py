"""The errors users see as one `error: <message>` line: every one is an `MmcError`, which carries the
exit status the CLI ends with (2: bad input, found before any work, nothing written).

The CLI catches this one type (`orchestrator.cli`); each layer defines the subclasses it raises:
`SpecError`, `YamlError` (spec), `UriError` and `LayoutError` (words, storage), `SweepError` and its
`LockError`, `CompactionError` (run, storage, results), `KnobError` (`orchestrator.knobs`),
`UsageError` (the CLI's arguments). Errors of `tasks/` (pure PyTorch, which imports nothing of
orchestrator's) reach users through these: a failed task's row keeps its exception's class name in
the `tasks` table's `error_type` column.
"""
from __future__ import annotations


class MmcError(Exception):
    """A problem the user can fix, stated in one line (the message names the key and the fix)."""

    exit_code = 2


class SweepError(MmcError, RuntimeError):
    """A problem found before any task ran: storage, data, lock, cluster, endpoints, a changed spec."""


class UsageError(MmcError, ValueError):
    """A bad command-line argument (exit 2)."""
