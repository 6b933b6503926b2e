"""`mmc-sweep status` from hand-made sweep directories (a plan, a few `tasks` rows, `progress.json` records
and `done.json` markers written directly, no run): which tasks count as finished, failed, skipped,
running or remaining, what the failed tasks' reasons and the snapshot's fields say, and the printed text."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from orchestrator import status, vocab
from orchestrator.results import outputs, tables
from orchestrator.run import progress as progress_lib
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.storage.lock import sweep_lock
from tests.support.report_data import write_plan

NOW = 1_767_225_600.0            # 2026-01-01 00:00:00 UTC


def _layout(tmp_path) -> SweepLayout:
    return SweepLayout(Storage(str(tmp_path / "runs")), "hand")


def _plan(layout, tasks: dict[str, str]) -> None:
    """plan.parquet naming `tasks` (task_id -> kind), in this order."""
    write_plan(layout, {t: [{"task_id": t, "kind": k, "parents": []}] for t, k in tasks.items()})


def _row(task_id, kind, state, *, error=None, finished_at=None, duration_s=None, started_at=None) -> dict:
    ts = lambda s: None if s is None else pd.Timestamp(s, unit="s", tz="UTC")   # noqa: E731
    return {"task_id": task_id, "kind": kind, "status": state, "parents": [], "error": error,
            "finished_at": ts(finished_at), "started_at": ts(started_at), "duration_s": duration_s, "cached": False}


def _progress(layout, kind, task_id, **fields) -> None:
    record = {"version": progress_lib.PROGRESS_VERSION, "task_id": task_id, "kind": kind, **fields}
    layout.storage.write_bytes(layout.progress_file(kind, task_id), json.dumps(record).encode())


def _finish(layout, kind, task_id) -> None:
    """A done.json listing no files: the task verifies as finished."""
    marker = {"version": outputs.MARKER_VERSION, "task_id": task_id, "kind": kind, "files": {}, "tables": [],
              "metrics": {}, "meta": {}, "finished_at": time.time()}
    layout.storage.write_bytes(layout.marker_file(kind, task_id), json.dumps(marker).encode())


def test_a_failed_tasks_reason_is_the_first_line_of_its_error_with_credentials_hidden():
    """The status lists a failed task with "its one-line reason" (the module's docstring: the error's first
    line); a URI's credentials are never printed; a missing error reads "unknown error"."""
    error = "RuntimeError: cannot write s3://KEY:SECRET@bucket/x\nTraceback (most recent call last):\n  File 'w.py'"
    assert status._first_line(error) == "RuntimeError: cannot write s3://***@bucket/x"
    assert status._first_line("\n  OSError: disk full\nmore") == "OSError: disk full"
    assert status._first_line(None) == status._first_line(float("nan")) == "unknown error"


def test_each_unfinished_task_counts_by_its_latest_row_or_its_newer_progress(tmp_path):
    """Per kind: a task with a done.json is finished; a failed or skipped latest row counts as such (the
    failure listed with its error's first line); a training task whose progress.json was updated after its
    last row ended runs again (remaining, listed with its epochs); a task without row is remaining."""
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN, "p1": vocab.PRETRAIN, "p2": vocab.PRETRAIN, "f0": vocab.FINETUNE,
                   "f1": vocab.FINETUNE, "e0": vocab.PATH_EVAL})
    _finish(layout, vocab.PRETRAIN, "p0")
    tables.write_fragment(layout, vocab.TASKS, "p1", [_row("p1", vocab.PRETRAIN, vocab.FAILED, error="boom",
                                                           finished_at=NOW - 100)])
    _progress(layout, vocab.PRETRAIN, "p1", epochs=None, epoch=2, start_epoch=0, started_at=NOW - 60,
              updated_at=NOW - 10, loss=0.5, acc=0.8)                       # retried after it failed: running
    tables.write_fragment(layout, vocab.TASKS, "p2", [_row("p2", vocab.PRETRAIN, vocab.FAILED, error="old",
                                                           finished_at=NOW - 50)])
    _progress(layout, vocab.PRETRAIN, "p2", epochs=4, epoch=1, start_epoch=0, started_at=NOW - 90,
              updated_at=NOW - 80, loss=0.9, acc=0.5)                       # the failed attempt's record
    tables.write_fragment(layout, vocab.TASKS, "f0", [
        _row("f0", vocab.FINETUNE, vocab.SKIPPED, finished_at=NOW - 40),
        _row("f0", vocab.FINETUNE, vocab.FAILED, error="ValueError: lr too large\nTraceback ...", finished_at=NOW - 30)])
    tables.write_fragment(layout, vocab.TASKS, "f1", [_row("f1", vocab.FINETUNE, vocab.SKIPPED, finished_at=NOW - 20)])
    with sweep_lock(layout):            # its run is going on
        snap = status.status_snapshot(layout, now=NOW)
    c = snap["counts"]
    assert c[vocab.PRETRAIN] == {"planned": 3, vocab.FINISHED: 1, vocab.FAILED: 1, vocab.SKIPPED: 0, "remaining": 1}
    assert c[vocab.FINETUNE] == {"planned": 2, vocab.FINISHED: 0, vocab.FAILED: 1, vocab.SKIPPED: 1, "remaining": 0}
    assert c[vocab.PATH_EVAL] == {"planned": 1, vocab.FINISHED: 0, vocab.FAILED: 0, vocab.SKIPPED: 0, "remaining": 1}
    assert snap["total"] == {"planned": 6, vocab.FINISHED: 1, vocab.FAILED: 2, vocab.SKIPPED: 1, "remaining": 2}
    assert snap["finished_fraction"] == pytest.approx(1 / 6)
    assert [r["task_id"] for r in snap["running"]] == ["p1"] and snap["running"][0]["epochs"] is None
    assert snap["failed"] == [{"task_id": "p2", "kind": vocab.PRETRAIN, "error": "old"},
                              {"task_id": "f0", "kind": vocab.FINETUNE, "error": "ValueError: lr too large"}]
    assert snap["damaged"] == {} and snap["note"] == ""
    assert snap["at"] == "2026-01-01T00:00:00+00:00" and snap["sweep"] == "hand"
    text = status.format_status(snap)
    assert "  p1  epoch 2/?" in text and "failed (2; 1 skipped because of them):" in text
    assert "17% finished" in text and "ETA" not in text.split("\n\n")[0]     # no finished row with a duration: unknown
    assert status._sweep_eta(None, [], []) == 0.0


def test_the_snapshot_never_prints_the_credentials_of_the_sweeps_directory(monkeypatch):
    """`directory` is the sweep's root as `redact` shows it: an object store URI's key and secret hidden
    (a sweep on S3 whose every task verified: its plan and its markers stood in for)."""
    from types import SimpleNamespace

    layout = SimpleNamespace(sweep="hand", root="s3://KEY:SECRET@bucket/runs/hand")
    plan = pd.DataFrame({"task_id": ["p0"], "kind": [vocab.PRETRAIN]})
    monkeypatch.setattr(status, "plan_of", lambda layout, columns=None: (plan, False))
    monkeypatch.setattr(status.outputs, "verify_many", lambda layout, tasks, hashes=None, processes=1:
                        {task_id: (True, "") for _, task_id in tasks})
    snap = status.status_snapshot(layout, now=NOW)
    assert snap["directory"] == "s3://***@bucket/runs/hand" and snap["counts"][vocab.PRETRAIN][vocab.FINISHED] == 1
    assert snap["eta_s"] == 0.0 and snap["finished_fraction"] == 1.0
    assert "SECRET" not in json.dumps(snap)


def test_damaged_tasks_are_only_those_whose_finished_outputs_no_longer_verify(tmp_path):
    """A task without done.json has never finished: it is remaining, not damaged; one whose done.json is
    garbled is damaged (named with its reason) and counts as remaining."""
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN, "p1": vocab.PRETRAIN})
    layout.storage.write_bytes(layout.marker_file(vocab.PRETRAIN, "p1"), b"{not json")
    snap = status.status_snapshot(layout, now=NOW)
    assert list(snap["damaged"]) == ["p1"] and snap["counts"][vocab.PRETRAIN]["remaining"] == 2


def test_the_printed_status_shows_the_note_the_damaged_tasks_and_exits_by_failures(tmp_path, monkeypatch):
    """`print_status`: the plan's note when the plan was rebuilt, the damaged tasks' list, exit 1 with a
    failed task and 0 without. Without `--watch` it prints once and never waits, whatever is left to run."""
    import io

    def never(seconds):
        raise AssertionError(f"status without --watch waited {seconds} s to refresh")

    monkeypatch.setattr(status.time, "sleep", never)
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN, "p1": vocab.PRETRAIN})
    layout.storage.write_bytes(layout.marker_file(vocab.PRETRAIN, "p1"), b"{not json")
    out = io.StringIO()
    with sweep_lock(layout):            # a run is going on and p1 is left to do: still printed once
        assert status.print_status(layout, stream=out) == 0
    text = out.getvalue()
    assert "1 finished task(s) no longer verify" in text and "  - p1: " in text
    assert "plan.parquet" not in text                       # the stored plan: no note
    tables.write_fragment(layout, vocab.TASKS, "p0", [_row("p0", vocab.PRETRAIN, vocab.FAILED, error="boom")])
    out = io.StringIO()
    assert status.print_status(layout, stream=out) == 1 and "  p0  boom" in out.getvalue()


def test_a_lock_freed_between_the_two_looks_holds_nothing(tmp_path, monkeypatch):
    """`run.lock` there when looked for, gone when read (the run ended in between): no run holds the sweep; an
    unreadable lock (another OSError) still counts as held."""
    layout = _layout(tmp_path)
    layout.storage.write_bytes(layout.lock_file(), json.dumps({"pid": 1, "host": "elsewhere"}).encode())
    read = layout.storage.read_bytes

    def freed(path, *args, **kwargs):
        if path == layout.lock_file():
            raise FileNotFoundError(path)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(layout.storage, "read_bytes", freed)
    assert status.run_holds(layout) is False
    monkeypatch.setattr(layout.storage, "read_bytes", lambda path, *a, **k: (_ for _ in ()).throw(OSError("EIO")))
    assert status.run_holds(layout) is True


def test_a_running_sweeps_training_tasks_are_running_not_interrupted(tmp_path):
    """While a run holds the sweep, a training task with a newer progress.json is running (with its elapsed time
    and ETA); `interrupted` is for a stopped sweep only, and the text names no task as interrupted."""
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN})
    _progress(layout, vocab.PRETRAIN, "p0", epochs=4, epoch=1, start_epoch=0, started_at=NOW - 60,
              updated_at=NOW - 10, loss=0.5, acc=0.8)
    with sweep_lock(layout):
        snap = status.status_snapshot(layout, now=NOW)
    assert [r["task_id"] for r in snap["running"]] == ["p0"] and not snap["stopped"]
    assert snap["interrupted"] == [] and "interrupted" not in status.format_status(snap)


def test_the_last_progress_is_the_latest_row_of_the_tasks_table(tmp_path):
    """`last_progress_s_ago`: since the sweep last moved, i.e. the latest `tasks` row's end (20 s ago), not the
    earliest (100 s ago)."""
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN, "p1": vocab.PRETRAIN, "p2": vocab.PRETRAIN})
    tables.write_fragment(layout, vocab.TASKS, "p0", [_row("p0", vocab.PRETRAIN, vocab.FAILED, error="a",
                                                           finished_at=NOW - 100)])
    tables.write_fragment(layout, vocab.TASKS, "p1", [_row("p1", vocab.PRETRAIN, vocab.FAILED, error="b",
                                                           finished_at=NOW - 20)])
    snap = status.status_snapshot(layout, now=NOW)
    assert snap["stopped"] and snap["last_progress_s_ago"] == 20.0


def test_a_running_tasks_loss_of_zero_is_shown():
    """A loss of exactly 0 (a model sure of every training sample) is a loss: printed, not left out."""
    snap = {"counts": {}, "total": dict.fromkeys(status.COLUMNS, 0) | {"planned": 1, "remaining": 1},
            "finished_fraction": 0.0, "eta_s": None, "failed": [],
            "running": [{"task_id": "p0", "kind": vocab.PRETRAIN, "epoch": 3, "epochs": 4, "elapsed_s": 30.0,
                         "eta_s": 10.0, "loss": 0.0, "acc": 1.0, "updated_s_ago": 1.0}]}
    assert "  loss 0.000" in status.format_status(snap)


def test_a_stopped_sweep_without_started_training_tasks_still_says_it_stopped(tmp_path):
    """No run holds the sweep and tasks remain: the stopped line is shown, whether or not a training task had
    started (here nothing has: no task is interrupted)."""
    layout = _layout(tmp_path)
    _plan(layout, {"e0": vocab.PATH_EVAL})
    snap = status.status_snapshot(layout, now=NOW)
    assert snap["stopped"] and snap["interrupted"] == []
    assert "stopped: no run holds this sweep" in status.format_status(snap)


def test_the_stopped_line_counts_the_remaining_tasks_not_the_failed_ones():
    snap = {"last_progress_s_ago": None,
            "total": {"planned": 5, vocab.FINISHED: 2, vocab.FAILED: 1, vocab.SKIPPED: 0, "remaining": 2}}
    assert status.format_stopped(snap).endswith("(2 task(s) remaining)")


def test_status_without_watch_never_clears_the_terminal(tmp_path):
    """The screen is cleared before each refresh of `--watch` only: a plain `status` on a terminal keeps what the
    terminal showed before it."""
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN})
    _finish(layout, vocab.PRETRAIN, "p0")
    out = Terminal()
    assert status.print_status(layout, stream=out) == 0
    assert "\x1b[2J" not in out.getvalue() and "100% finished" in out.getvalue()


def test_a_running_tasks_accuracy_is_its_records_accuracy():
    record = {"epoch": 2, "epochs": 4, "start_epoch": 0, "started_at": 940.0, "updated_at": 995.0, "loss": 0.5, "acc": 0.9}
    run = status._running(record, "t", vocab.PRETRAIN, now=1000.0)
    assert (run["loss"], run["acc"]) == (0.5, 0.9)


def test_a_stopped_sweeps_interrupted_tasks_carry_no_elapsed_time_nor_eta(tmp_path):
    """No run holds the sweep: a training task with a progress.json is interrupted, shown with where it stopped
    (epoch, loss, last epoch's age) but without the elapsed time and ETA that would keep changing for a task
    nothing runs (also in `--json`)."""
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN})
    _progress(layout, vocab.PRETRAIN, "p0", epochs=4, epoch=1, start_epoch=0, started_at=NOW - 60,
              updated_at=NOW - 10, loss=0.5, acc=0.8)
    snap = status.status_snapshot(layout, now=NOW)
    assert snap["stopped"] and snap["running"] == [] and snap["eta_s"] is None
    [entry] = snap["interrupted"]
    assert entry["task_id"] == "p0" and (entry["epoch"], entry["epochs"], entry["updated_s_ago"]) == (1, 4, 10.0)
    assert "eta_s" not in entry and "elapsed_s" not in entry


def test_a_task_skipped_after_it_was_set_aside_counts_as_skipped_not_set_aside(tmp_path):
    """A finished task set aside because its parent runs again, then skipped as that parent failed: its latest
    `tasks` row (skipped) is what status counts; the set-aside marker left behind does not name it among the
    finished tasks set aside."""
    layout = _layout(tmp_path)
    _plan(layout, {"p0": vocab.PRETRAIN, "f0": vocab.FINETUNE})
    tables.write_fragment(layout, vocab.TASKS, "p0", [_row("p0", vocab.PRETRAIN, vocab.FAILED, error="boom",
                                                           finished_at=NOW - 20)])
    tables.write_fragment(layout, vocab.TASKS, "f0", [_row("f0", vocab.FINETUNE, vocab.SKIPPED, finished_at=NOW - 10)])
    _finish(layout, vocab.FINETUNE, "f0")
    outputs.set_aside(layout, vocab.FINETUNE, "f0")
    assert layout.storage.is_file(layout.set_aside_marker_file(vocab.FINETUNE, "f0"))
    snap = status.status_snapshot(layout, now=NOW)
    assert snap["set_aside"] == []
    assert snap["counts"][vocab.FINETUNE][vocab.SKIPPED] == 1 and snap["counts"][vocab.FINETUNE]["remaining"] == 0


@pytest.mark.parametrize("pid", ["4242", 4.5, True, 0, -4242, 2 ** 31])
def test_a_lock_whose_pid_the_lock_refuses_counts_as_held_even_with_an_expired_lease(tmp_path, pid):
    """A `run.lock` without a pid as the lock reads one (a whole number of a pid_t, not a bool) is no lock status can
    judge (garbled): a run refuses it (`not a lock file of mmc-sweep`) rather than take it over, so status never calls
    the sweep stopped (and says to rerun) on it, whatever lease it seems to carry."""
    from orchestrator.storage.lock import LockError

    layout = _layout(tmp_path)
    _plan(layout, {"e0": vocab.PATH_EVAL})
    lock = {"pid": pid, "host": "elsewhere", "started_at": NOW - 7200, "lease_s": 60.0, "renewed_at": time.time() - 3600}
    layout.storage.write_bytes(layout.lock_file(), json.dumps(lock).encode())
    with pytest.raises(LockError, match="not a lock file of mmc-sweep"):    # what a run makes of it
        with sweep_lock(layout):
            pass
    assert status.run_holds(layout) is True
    snap = status.status_snapshot(layout, now=NOW)
    assert snap["live_run"] is True and snap["stopped"] is False


def test_the_failed_line_counts_skipped_tasks_only_where_there_are_some():
    """`failed (2; 3 skipped because of them):` names the skipped dependents; with none skipped it is `failed (1):`."""
    def snap(failed: int, skipped: int) -> dict:
        total = dict.fromkeys(status.COLUMNS, 0) | {"planned": failed + skipped, vocab.FAILED: failed,
                                                    vocab.SKIPPED: skipped}
        return {"counts": {vocab.PRETRAIN: dict(total)}, "total": total, "finished_fraction": 0.0, "eta_s": None,
                "running": [], "failed": [{"task_id": f"p{i}", "kind": vocab.PRETRAIN, "error": "RuntimeError: boom"}
                                          for i in range(failed)]}

    lines = status.format_status(snap(1, 0)).splitlines()
    assert "failed (1):" in lines and not any("skipped because" in line for line in lines)
    assert "failed (2; 3 skipped because of them):" in status.format_status(snap(2, 3)).splitlines()
