"""`orchestrator.storage.retry` without a store: an unreachable object store is tried again after 0.5 s,
1 s, 2 s, 4 s, then every 8 s, for up to `MMC_STORAGE_RETRY_S` seconds in all; answers are never tried
again; one warning per outage and one when it ends; the final error redacted and short. A fake clock
stands for the time (the same behaviour against a real store behind a flaky proxy:
tests/orchestrator/storage/test_s3.py)."""
from __future__ import annotations

import logging
import types

import pytest

from orchestrator import knobs
from orchestrator.storage import retry
from orchestrator.storage.retry import StoreUnreachable
from tests.support.clock import FakeClock

SECRET = "wJalrXUtnFEMI-not-a-real-secret"
DOWN = "AWS Error NETWORK_CONNECTION during PutObject operation: curlCode: 7, Couldn't connect to server"


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock(max_waits=100)   # a runaway retry loop fails
    monkeypatch.setattr(retry, "time", types.SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep))
    monkeypatch.setattr(retry._Outage, "warned", False)
    monkeypatch.setattr(retry._Outage, "since", 0.0)
    return clock


@pytest.fixture
def said():
    """The lines the module logs (its own handler: the console set-up of other tests does not matter)."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    retry._LOG.addHandler(handler)
    yield lines
    retry._LOG.removeHandler(handler)


def failing(times: int | None, error: BaseException | None = None, result="ok"):
    """A call that raises `error` (a store not reached) `times` times (None: always), then returns `result`."""
    calls, error = [], OSError(DOWN) if error is None else error

    def call():
        calls.append(1)
        if times is None or len(calls) <= times:
            raise error
        return result
    call.calls = calls
    return call


def test_an_unreachable_store_is_tried_again_after_half_a_second_then_doubling_waits_of_at_most_eight(clock):
    """Budget 40 s: tries at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 23.5, 31.5, 39.5 s; the next (47.5 s) would be
    past the budget, so the error comes instead of a ninth wait."""
    call = failing(None)
    with pytest.raises(StoreUnreachable):
        retry.retrying(call, "s3://bucket/runs", budget_s=40, sleep=clock.sleep)
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert len(call.calls) == 9 and sum(clock.slept) <= 40


def test_a_try_that_falls_exactly_at_the_end_of_the_budget_is_still_made(clock):
    """0.5 + 1 + 2 + 4 + 8 = 15.5: with a budget of 15.5 s the sixth try, at 15.5 s, is within it."""
    call = failing(None)
    with pytest.raises(StoreUnreachable):
        retry.retrying(call, "s3://bucket/runs", budget_s=15.5, sleep=clock.sleep)
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0] and len(call.calls) == 6


def test_the_budget_defaults_to_the_storage_retry_setting(clock, monkeypatch):
    """MMC_STORAGE_RETRY_S=3: tries at 0, 0.5 and 1.5 s; the next at 3.5 s would be past 3 s."""
    monkeypatch.setenv(knobs.STORAGE_RETRY_S.name, "3")
    call = failing(None)
    with pytest.raises(StoreUnreachable, match=r"did not answer within MMC_STORAGE_RETRY_S=3 s"):
        retry.retrying(call, "s3://bucket/runs", sleep=clock.sleep)
    assert clock.slept == [0.5, 1.0] and len(call.calls) == 3


def test_a_store_that_answers_again_gives_the_result_with_one_warning_and_one_recovery_line(clock, said):
    call = failing(3, result=42)
    assert retry.retrying(call, f"s3://KEY:{SECRET}@bucket/runs", budget_s=60, sleep=clock.sleep) == 42
    assert clock.slept == [0.5, 1.0, 2.0] and len(call.calls) == 4
    assert len(said) == 2 and SECRET not in "".join(said)
    assert said[0].startswith("storage s3://***@bucket/runs: the object store cannot be reached (")
    assert "retrying with backoff for up to 60 s (MMC_STORAGE_RETRY_S)" in said[0]
    assert said[1] == "storage s3://***@bucket/runs: the object store answers again (after 4 s)"   # 3.5 s


@pytest.mark.parametrize("answer", [
    PermissionError("AWS Error ACCESS_DENIED during HeadObject operation: No response body."),
    FileNotFoundError("Path does not exist 'bucket/runs/x'"),
    OSError("AWS Error UNKNOWN (HTTP status 412) during PutObject operation: PreconditionFailed"),
    ValueError("the call timed out"),          # not an I/O error: a bug or an answer, whatever it says
    StoreUnreachable("storage s3://bucket/runs: the object store did not answer ... (timed out)"),
])
def test_an_answer_of_the_store_is_raised_at_once_without_waiting_or_warning(clock, said, answer):
    """Not found, access denied, a failed condition, a non-I/O error, or an outage already waited out by an
    inner `retrying` (waiting again would multiply the budget): raised as it is, on the first try."""
    call = failing(None, error=answer)
    with pytest.raises(type(answer)) as raised:
        retry.retrying(call, "s3://bucket/runs", budget_s=60, sleep=clock.sleep)
    assert raised.value is answer and len(call.calls) == 1 and clock.slept == [] and said == []


@pytest.mark.parametrize("message", [
    DOWN,
    "AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate.",
    "AWS Error SERVICE_UNAVAILABLE during GetObject operation",
    "AWS Error THROTTLING during ListObjectsV2 operation",
    "AWS Error INTERNAL_FAILURE during HeadObject operation",
    "AWS Error REQUEST_TIMEOUT during PutObject operation",
    "curlCode: 6, Couldn't resolve host name",
    "curlCode: 28, Timeout was reached",
    "curlCode: 35, SSL connect error",
    "curlCode: 52, Server returned nothing",
    "curlCode: 55, Failed sending data to the peer",
    "curlCode: 56, Failure when receiving data from the peer",
    "[Errno 104] Connection reset by peer",
    "Could not connect to the endpoint URL",
    "[Errno 111] Connection refused",
    "the read operation timed out",
])
def test_a_store_not_reached_or_too_busy_is_worth_trying_again(message):
    assert retry.is_unreachable(OSError(message))


@pytest.mark.parametrize("message", [
    "AWS Error ACCESS_DENIED during HeadObject operation",
    "AWS Error NO_SUCH_BUCKET during ListObjectsV2 operation",
    "curlCode: 60, SSL peer certificate or SSH remote key was not OK",   # an answer about the certificate
    "curlCode: 77, Problem with the SSL CA cert",
    "[Errno 2] No such file or directory",
])
def test_an_answer_of_the_store_is_not_worth_trying_again(message):
    assert not retry.is_unreachable(OSError(message))


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


@pytest.mark.parametrize("code, status, again", [
    ("SlowDown", 503, True), ("SlowDown", 200, True), ("ServiceUnavailable", 200, True),
    ("InternalError", 200, True), ("RequestTimeout", 400, True), ("Throttling", 400, True),
    ("Whatever", 500, True), ("Whatever", 502, True), ("Whatever", 503, True), ("Whatever", 504, True),
    ("AccessDenied", 403, False), ("NoSuchKey", 404, False), ("PreconditionFailed", 412, False),
    ("Whatever", 501, False),
])
def test_boto3s_busy_answers_and_5xx_statuses_are_tried_again_and_its_other_answers_are_not(code, status, again):
    """The codes of a busy store and the statuses 500, 502, 503, 504 (module docstring); 501 Not Implemented
    and every 4xx are answers."""
    pytest.importorskip("botocore")
    assert retry.is_unreachable(_client_error(code, status)) is again


def test_boto3s_connection_failures_are_tried_again():
    exceptions = pytest.importorskip("botocore.exceptions")
    assert retry.is_unreachable(exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert retry.is_unreachable(exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))


def test_the_final_error_names_the_storage_redacted_and_a_reason_of_at_most_240_characters(clock):
    """The reason is the last failure on one line, credentials hidden, cut to 240 characters ending in `...`."""
    error = OSError(f"curlCode: 7,\n  Couldn't connect to http://u:{SECRET}@proxy " + "y" * 400)
    with pytest.raises(StoreUnreachable) as raised:
        retry.retrying(failing(None, error=error), f"s3://KEY:{SECRET}@bucket/runs", budget_s=1, sleep=clock.sleep)
    text = str(raised.value)
    assert SECRET not in text and text.startswith("storage s3://***@bucket/runs: the object store did not answer")
    shown = "curlCode: 7, Couldn't connect to http://***@proxy " + "y" * 400
    reason = shown[:237] + "..."
    assert len(reason) == 240 and f"({reason}); nothing unfinished was recorded as done" in text


def test_two_calls_waiting_out_one_outage_warn_once_and_say_once_that_it_ended(clock, said):
    """While call A waits, call B fails in the same outage and then succeeds: one warning (A's), one line
    that the store answers again (B's, the first to see it); A's later success says nothing more."""
    inner = failing(1, result="b")

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) == 1:
            assert retry.retrying(inner, "s3://bucket/runs", budget_s=60, sleep=clock.sleep) == "b"

    assert retry.retrying(failing(1, result="a"), "s3://bucket/runs", budget_s=60, sleep=sleep) == "a"
    assert [line.split(": ", 1)[1].split(" (")[0] for line in said] == [
        "the object store cannot be reached", "the object store answers again"]


def test_each_outage_is_warned_of_again_after_the_store_answered(clock, said):
    for _ in range(2):
        assert retry.retrying(failing(1), "s3://bucket/runs", budget_s=60, sleep=clock.sleep) == "ok"
    assert [("cannot be reached" in line, "answers again" in line) for line in said] == [
        (True, False), (False, True), (True, False), (False, True)]


def test_an_outage_that_ended_in_its_error_is_followed_by_a_warned_outage_timed_from_its_own_start(clock, said):
    """A process lives on after StoreUnreachable (a reused Ray worker; the driver's summary and report only
    warn of it). The next outage, much later, is warned of again, and its end says how long it lasted
    (1.5 s: waits of 0.5 and 1), not the time since the first one began."""
    with pytest.raises(StoreUnreachable):
        retry.retrying(failing(None), "s3://bucket/runs", budget_s=2, sleep=clock.sleep)
    clock.now = 1000.0
    assert retry.retrying(failing(2), "s3://bucket/runs", budget_s=60, sleep=clock.sleep) == "ok"
    assert [("cannot be reached" in line, "answers again" in line) for line in said] == [
        (True, False), (True, False), (False, True)]
    assert said[-1].endswith("(after 2 s)")



def test_a_store_that_answers_at_once_gives_its_result_without_waiting_or_a_line(clock, said):
    assert retry.retrying(lambda: 7, "s3://bucket/runs", budget_s=60, sleep=clock.sleep) == 7
    assert clock.slept == [] and said == []


def test_a_fractional_storage_retry_setting_is_kept_to_the_fraction(clock, monkeypatch):
    """MMC_STORAGE_RETRY_S=1.6 (a float setting): tries at 0, 0.5 and 1.5 s (within 1.6); with 1 s the third
    would not be made."""
    monkeypatch.setenv(knobs.STORAGE_RETRY_S.name, "1.6")
    call = failing(None)
    with pytest.raises(StoreUnreachable, match=r"within MMC_STORAGE_RETRY_S=1\.6 s"):
        retry.retrying(call, "s3://bucket/runs", sleep=clock.sleep)
    assert clock.slept == [0.5, 1.0] and len(call.calls) == 3


def test_the_end_of_an_outage_says_how_long_the_outage_lasted_not_how_long_the_last_call_waited(clock, said):
    """Call A meets the outage at 0 s and warns; call B meets it at 1.5 s (while A waits) and is the first to get
    an answer, at 2 s. The line that the store answers again times the outage from its first warning (2 s),
    not B's own half-second wait."""
    inner = failing(1, result="b")

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) == 2:            # A has waited 0.5 s and 1 s: now 1.5 s
            assert retry.retrying(inner, "s3://bucket/runs", budget_s=60, sleep=clock.sleep) == "b"

    assert retry.retrying(failing(2, result="a"), "s3://bucket/runs", budget_s=60, sleep=sleep) == "a"
    assert len(said) == 2 and said[1] == "storage s3://bucket/runs: the object store answers again (after 2 s)"
