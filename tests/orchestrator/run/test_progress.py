"""`orchestrator.run.progress`: the epochs a training task plans, the `progress.json` it writes, its ETA,
and how the progress line shows a fraction and a duration (the same end to end through `mmc-sweep
status`: tests/orchestrator/test_status.py)."""
from __future__ import annotations

import json
import types

import pytest

from orchestrator.run import progress
from orchestrator.storage.layout import Storage, SweepLayout


@pytest.fixture
def layout(tmp_path):
    return SweepLayout(Storage(tmp_path), "sweep")


def _task(kind: str, method: str | None = None, **settings):
    """What `planned_epochs` reads of a `graph.dag.Task`: its kind, its method, its lineage's settings."""
    return types.SimpleNamespace(kind=kind, config={"method": method} if method else {},
                                 settings={k.replace("__", "."): v for k, v in settings.items()})


def _report(epoch: int, loss: float = 0.25, acc: float = 0.75, lr: float = 0.01, duration_s: float = 3.5):
    return types.SimpleNamespace(epoch=epoch, loss=loss, acc=acc, lr=lr, duration_s=duration_s)


@pytest.mark.parametrize("task, epochs", [
    (_task("pretrain", pretrain__epochs=20), 20),
    (_task("midpoint", midpoint__epochs=7), 7),
    (_task("finetune", "naive", finetune__epochs=3, finetune__llrt_epochs=2), 3),
    (_task("finetune", "cbft", finetune__epochs=3, finetune__llrt_epochs=2), 3),
    (_task("finetune", "llrt", finetune__epochs=3, finetune__llrt_epochs=2), 2),   # its head epochs only
    (_task("finetune", "lpft", finetune__epochs=3, finetune__llrt_epochs=2), 5),   # head epochs, then the others
    (_task("path_eval"), None), (_task("align"), None),
])
def test_a_training_task_plans_its_kinds_epochs_and_llrt_and_lpft_their_head_epochs(task, epochs):
    assert progress.planned_epochs(task) == epochs


def test_a_task_that_reports_an_epoch_before_starting_starts_there(layout, monkeypatch):
    """A writer told of epoch 4 first (no `start`) records an attempt that started at epoch 4 when the report
    came, 1 epoch done; each field from its own part of the report."""
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(time=lambda: 1000.0))
    writer = progress.ProgressWriter(layout, "pretrain", "pretrain-x", 10)
    writer.epoch(_report(4, loss=0.5, acc=0.875, lr=0.125, duration_s=2.25))
    assert progress.read_progress(layout, "pretrain", "pretrain-x") == {
        "version": progress.PROGRESS_VERSION, "task_id": "pretrain-x", "kind": "pretrain", "epochs": 10,
        "epoch": 5, "start_epoch": 4, "started_at": 1000.0, "updated_at": 1000.0,
        "loss": 0.5, "acc": 0.875, "epoch_s": 2.25}


def test_a_progress_write_that_fails_never_fails_the_task(layout, monkeypatch):
    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(layout.storage, "write_bytes", full)
    writer = progress.ProgressWriter(layout, "finetune", "finetune-x", 3)
    writer.start(0)
    writer.epoch(_report(0))
    assert writer.record["epoch"] == 1


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'"text"',
                                     json.dumps({"version": progress.PROGRESS_VERSION + 1, "epoch": 3}).encode()])
def test_a_progress_record_that_is_garbled_or_of_another_version_is_none(layout, content):
    layout.storage.write_bytes(layout.progress_file("pretrain", "pretrain-x"), content)
    assert progress.read_progress(layout, "pretrain", "pretrain-x") is None
    assert progress.read_progress(layout, "pretrain", "pretrain-missing") is None


def test_the_eta_of_a_resumed_attempt_uses_only_the_epochs_it_ran():
    """Resumed at epoch 4, 2 epochs in 20 s since: 10 s an epoch, 4 epochs of 10 left = 40 s from the last
    epoch's end, 5 s ago: 35 s."""
    record = {"epochs": 10, "epoch": 6, "start_epoch": 4, "started_at": 1000.0, "updated_at": 1020.0}
    assert progress.eta_s(record, now=1025.0) == pytest.approx(35.0)
    assert progress.eta_s(record, now=1100.0) == 0.0                      # overdue: not negative


def test_an_attempt_without_a_finished_epoch_or_planned_epochs_has_no_eta():
    started = {"epochs": 10, "epoch": 4, "start_epoch": 4, "started_at": 1000.0, "updated_at": 1000.0}
    assert progress.eta_s(started, now=1010.0) is None
    assert progress.eta_s({**started, "epoch": 6, "epochs": None}, now=1010.0) is None


@pytest.mark.parametrize("fraction, width, shown", [
    (0.25, 20, "[#####...............]"), (0.0, 4, "[....]"), (1.0, 4, "[####]"),
    (0.99, 10, "[#########.]"),          # full only once everything is done
    (1.5, 4, "[####]"), (-0.5, 4, "[....]"),   # out of range: clamped, never longer or shorter than the width
])
def test_a_bar_fills_the_finished_fraction_of_its_width(fraction, width, shown):
    assert progress.bar(fraction, width) == shown


@pytest.mark.parametrize("seconds, shown", [
    (None, "?"), (0.4, "0s"), (41, "41s"), (59.6, "1m00s"), (60, "1m00s"), (185, "3m05s"), (229, "3m49s"),
    (3599, "59m59s"), (3600, "1h00m"), (7500, "2h05m"), (90061, "25h01m"),
])
def test_a_duration_is_shown_to_the_nearest_second_in_seconds_minutes_or_hours(seconds, shown):
    assert progress.duration(seconds) == shown


def test_a_line_that_fits_is_shown_whole_and_a_longer_one_keeps_its_start_and_end():
    assert progress._fit("0123456789", 10) == "0123456789"
    cut = progress._fit("0123456789abcdefghij", 10)
    assert len(cut) == 10 and cut.startswith("0123") and cut.endswith("ij") and "…" in cut


class _Stream:
    """A stream that keeps what is written and how often it was flushed; `tty` says whether it is a terminal."""

    def __init__(self, tty: bool):
        self.tty, self.text, self.flushes = tty, "", 0

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        self.flushes += 1


def test_on_a_terminal_the_line_is_redrawn_in_place_with_a_bar_of_20_and_a_final_one_ends_it(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((200, 24)))
    stream = _Stream(tty=True)
    line = progress.TerminalLine(stream)
    line.show("3/4 finished", 0.5)
    assert stream.text == "\r\x1b[2K[##########..........] 3/4 finished" and stream.flushes >= 1
    stream.text = ""
    line.show("4/4 finished", 1.0, final=True)
    assert stream.text == "\r\x1b[2K[####################] 4/4 finished\n"


def test_on_a_narrow_terminal_the_line_keeps_at_least_40_characters(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((10, 24)))
    stream = _Stream(tty=True)
    progress.TerminalLine(stream).show("x" * 100, 0.0)
    assert len(stream.text) == len("\r\x1b[2K") + 40


def test_elsewhere_each_line_is_printed_on_its_own_and_flushed_at_once():
    """A log file or `ray job logs` gets each line whole, without a bar, as soon as it is printed."""
    stream = _Stream(tty=False)
    line = progress.TerminalLine(stream)
    line.show("1/4 finished", 0.25)
    line.show("2/4 finished", 0.5, final=True)
    assert stream.text == "1/4 finished\n2/4 finished\n" and stream.flushes >= 2


def test_an_attempt_that_starts_again_forgets_the_last_epochs_numbers(layout):
    """`loss`, `acc`, `epoch_s` are the last epoch's *of this attempt*: none yet right after a (re)start."""
    writer = progress.ProgressWriter(layout, "pretrain", "pretrain-x", 10)
    writer.start(0)
    writer.epoch(_report(0))
    writer.start(1)
    record = progress.read_progress(layout, "pretrain", "pretrain-x")
    assert (record["epoch"], record["start_epoch"], record["loss"], record["acc"], record["epoch_s"]) == (1, 1, None,
                                                                                                           None, None)
