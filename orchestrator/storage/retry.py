"""An object store that cannot be reached for a while: its requests waited out, then one clear error.

The AWS SDK under pyarrow and boto3 tries a failed request `REQUEST_ATTEMPTS` times within a fraction of a
second. A store unreachable for longer (a dropped network, a restarted gateway or load balancer, a store
shedding load with 503 Slow Down) is waited out here: the whole operation (an upload, a read, a listing, a
conditional write of the lock) is tried again after 0.5 s, 1 s, 2 s, 4 s, then every 8 s (`FIRST_WAIT_S`
doubling up to `MAX_WAIT_S`) for up to `MMC_STORAGE_RETRY_S` seconds in all (`knobs.STORAGE_RETRY_S`,
default 120). The first failure logs one warning line (storage shown with its credentials redacted), the
recovery one more; a store still unreachable when the time is spent is a `StoreUnreachable` (an `OSError`
and an `MmcError`: one `error:` line) naming the storage and the fix.

Only failures that say the store was not reached, or was too busy to answer, are tried again: refused or
reset connections, timeouts, 500/502/503/504, Slow Down. An answer (not found, access denied, a failed
condition) is never retried. Trying a write again is safe: every write is one whole upload, which appears
whole or not at all (`orchestrator.storage.layout`), and the lock recognises its own token when a
conditional write that did land is tried again (`orchestrator.storage.lock`).
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable, TypeVar

from orchestrator import knobs
from orchestrator.messages import logger
from orchestrator.uris import UriError, redact

REQUEST_ATTEMPTS = 3      # tries of one request inside the AWS SDK (pyarrow, boto3), 50 and 100 ms apart
FIRST_WAIT_S = 0.5        # the first wait before an operation is tried again; doubled after each try ...
MAX_WAIT_S = 8.0          # ... up to this
_LOG = logger(__name__)
_NOT_REACHED = re.compile(
    r"AWS Error (NETWORK_CONNECTION|SLOW_DOWN|SERVICE_UNAVAILABLE|THROTTLING|INTERNAL_FAILURE|REQUEST_TIMEOUT)"
    r"|curlCode: (6|7|28|35|52|55|56)\b|Connection reset|Could(n't| not) connect|Connection refused|timed out")
_BUSY_CODES = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling")
_REASON_CHARS = 240
T = TypeVar("T")


class StoreUnreachable(UriError, OSError):
    """The object store did not answer for `MMC_STORAGE_RETRY_S` seconds."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the store was not reached or was too busy (worth trying again), not an answer."""
    if isinstance(exc, StoreUnreachable):
        return False
    try:
        from botocore import exceptions as boto
    except ImportError:
        boto = None
    if boto is not None:
        if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError)):
            return True
        if isinstance(exc, boto.ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return exc.response.get("Error", {}).get("Code") in _BUSY_CODES or status in (500, 502, 503, 504)
    return isinstance(exc, OSError) and bool(_NOT_REACHED.search(str(exc)))


class _Outage:
    """Whether this process has warned of an outage that has not yet ended (one warning for many calls)."""

    lock = threading.Lock()
    warned = False
    since = 0.0


def _reason(exc: BaseException) -> str:
    text = " ".join(redact(str(exc)).split())
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS - 3] + "..."


def retry_seconds() -> float:
    return float(knobs.read(knobs.STORAGE_RETRY_S))


def retrying(call: Callable[[], T], where: str, budget_s: float | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, tried again while the object store at `where` (a URI, redacted here) cannot be reached,
    for up to `budget_s` seconds (default `MMC_STORAGE_RETRY_S`); see the module docstring."""
    started, wait = None, FIRST_WAIT_S
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            now = time.monotonic()
            if started is None:
                started = now
                budget_s = retry_seconds() if budget_s is None else budget_s
                _warn(where, exc, budget_s)
            if now - started + wait > budget_s:
                _gave_up()
                raise StoreUnreachable(
                    f"storage {redact(where)}: the object store did not answer within {knobs.STORAGE_RETRY_S.name}"
                    f"={budget_s:g} s ({_reason(exc)}); nothing unfinished was recorded as done. Check the "
                    f"endpoint and the network, then rerun the same command (finished tasks are kept), or give "
                    f"{knobs.STORAGE_RETRY_S.name} more seconds") from None
            sleep(wait)
            wait = min(MAX_WAIT_S, wait * 2)
            continue
        if started is not None:
            _recovered(where, time.monotonic() - started)
        return result


def _warn(where: str, exc: BaseException, budget_s: float) -> None:
    with _Outage.lock:
        if _Outage.warned:
            return
        _Outage.warned, _Outage.since = True, time.monotonic()
    _LOG.warning(f"storage {redact(where)}: the object store cannot be reached ({_reason(exc)}); "
                 f"retrying with backoff for up to {budget_s:g} s ({knobs.STORAGE_RETRY_S.name})")


def _gave_up() -> None:
    """The outage ends for this process with the error that says so: a later one is warned of again."""
    with _Outage.lock:
        _Outage.warned = False


def _recovered(where: str, waited_s: float) -> None:
    with _Outage.lock:
        if not _Outage.warned:
            return
        _Outage.warned = False
        waited_s = time.monotonic() - _Outage.since
    _LOG.warning(f"storage {redact(where)}: the object store answers again (after {waited_s:.0f} s)")
