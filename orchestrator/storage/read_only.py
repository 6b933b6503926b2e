"""Storage that refuses every write (a read-only mount, a snapshot, a directory without write
permission): the commands that must write say so in one line, naming the storage; those that only
read (`status`, `status --json`, `plan`, the Python API) never write and work as usual.

On a local file system the refusal is `EROFS` (read-only file system) or `EACCES`/`EPERM` (no
permission); pyarrow's `OSError`s carry the errno only in their text (`[errno 30]`), so both are read.
A full disk (`ENOSPC`) or a file in the way is not a refusal of this kind: the caller reports those
as they are.
"""
from __future__ import annotations

import errno
import re

from orchestrator.errors import SweepError

_REASONS = {errno.EROFS: "read-only", errno.EACCES: "not writable (permission denied)",
            errno.EPERM: "not writable (operation not permitted)"}
_ERRNO_IN_TEXT = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)
FIX = ("make it writable (remount it read-write), or copy the sweep directory to writable storage and run the "
       "command there; `mmc-sweep status` reads a read-only sweep")


def write_refusal(exc: BaseException) -> str | None:
    """'read-only' or 'not writable (...)' when `exc` says the storage refuses writes as such; None for
    any other failure."""
    codes = [getattr(exc, "errno", None), *(int(n) for n in _ERRNO_IN_TEXT.findall(str(exc)))]
    for code in codes:
        if code in _REASONS:
            return _REASONS[code]
    return "read-only" if "read-only file system" in str(exc).lower() else None


def refused(shown: str, exc: BaseException, writes: str) -> SweepError | None:
    """The one-line error for storage `shown` (as messages show it) that refused a write with `exc`, where
    `writes` says what the command writes there; None when `exc` is another failure."""
    reason = write_refusal(exc)
    if reason is None:
        return None
    return SweepError(f"the storage `{shown}` is {reason}: {writes}, and nothing was written; {FIX}")
