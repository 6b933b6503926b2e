"""Progress of running training tasks, for `mmc-sweep status`: a training task writes `progress.json`
next to its checkpoint (`SweepLayout.progress_file`) when it starts or resumes and after every epoch;
status reads it for every task that has not finished.

```
{"version": 1, "task_id": "pretrain-…", "kind": "pretrain", "epochs": 20,     planned epochs (null: unknown)
 "epoch": 7,                     epochs finished, resumed ones included
 "start_epoch": 5,               where this attempt started (a resumed task: its saved epoch)
 "started_at": 1735732800.0,     when this attempt started (unix seconds)
 "updated_at": 1735732841.2,     when the last epoch ended (or the attempt started)
 "loss": 0.53, "acc": 0.87, "epoch_s": 8.1}    the last epoch's training loss, accuracy, wall time
```
A task that finished has its `done.json` too, and status ignores its progress; one whose driver died
keeps its last record (its `updated_at` shows how old it is).
"""
from __future__ import annotations

import json
import shutil
import time
from typing import TYPE_CHECKING

from orchestrator import vocab
from orchestrator.storage.layout import SweepLayout

if TYPE_CHECKING:      # the graph (and torch behind it) is not imported by readers of progress (`status`)
    from orchestrator.graph.dag import Task

PROGRESS_VERSION = 1
MAX_PROGRESS_BYTES = 64_000


def planned_epochs(task: Task) -> int | None:
    """The epochs a training task runs: `<kind>.epochs`; fine-tuning by LLRT its head epochs, by LP-FT
    its head epochs and then its others. None for other kinds."""
    if task.kind not in vocab.TRAINING_KINDS:
        return None
    epochs = int(task.settings.get(f"{task.kind}.epochs") or 0)
    if task.kind == vocab.FINETUNE:
        head = int(task.settings.get("finetune.llrt_epochs") or 0)
        epochs = {"llrt": head, "lpft": head + epochs}.get(task.config.get("method"), epochs)
    return epochs


class ProgressWriter:
    """Writes one task's `progress.json`: `start(epoch)` when it starts or resumes, `epoch(report)` after
    each epoch (a `tasks.train.EpochReport`). A write that fails is ignored: progress is for people
    watching, never a reason for a task to fail."""

    def __init__(self, layout: SweepLayout, kind: str, task_id: str, epochs: int | None):
        self.layout, self.path = layout, layout.progress_file(kind, task_id)
        self.record: dict = {"version": PROGRESS_VERSION, "task_id": task_id, "kind": kind, "epochs": epochs}

    def start(self, epoch: int) -> None:
        now = time.time()
        self.record.update(epoch=epoch, start_epoch=epoch, started_at=now, updated_at=now, loss=None, acc=None,
                           epoch_s=None)
        self._write()

    def epoch(self, report) -> None:
        if "started_at" not in self.record:
            self.start(report.epoch)
        self.record.update(epoch=report.epoch + 1, updated_at=time.time(), loss=report.loss, acc=report.acc,
                           epoch_s=report.duration_s)
        self._write()

    def _write(self) -> None:
        try:
            self.layout.storage.write_bytes(self.path, json.dumps(self.record).encode())
        except OSError:
            pass


def read_progress(layout: SweepLayout, kind: str, task_id: str) -> dict | None:
    """A task's progress record; None when it has none or it cannot be read."""
    path = layout.progress_file(kind, task_id)
    try:
        if not layout.storage.is_file(path):
            return None
        record = json.loads(layout.storage.read_bytes(path, max_bytes=MAX_PROGRESS_BYTES, replaced=True))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("version") == PROGRESS_VERSION else None


def eta_s(record: dict, now: float | None = None) -> float | None:
    """Seconds until the task's last epoch ends, at the mean epoch time of this attempt so far."""
    done = record.get("epoch", 0) - record.get("start_epoch", 0)
    epochs = record.get("epochs")
    if not epochs or done <= 0:
        return None
    per_epoch = (record["updated_at"] - record["started_at"]) / done
    left = max(0, epochs - record["epoch"]) * per_epoch
    return max(0.0, left - ((now or time.time()) - record["updated_at"]))


def bar(fraction: float, width: int = 30) -> str:
    """`[#########.....................]`: `fraction` (0..1) of `width` filled."""
    filled = int(width * min(1.0, max(0.0, fraction)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def duration(seconds: float | None) -> str:
    """`41s`, `3m49s`, `2h05m`; `?` for None."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class TerminalLine:
    """The run's progress line: on a terminal, one line redrawn in place with a bar in front; elsewhere
    (a log file, `ray job logs`, a pipe) a new line each time, as before."""

    def __init__(self, stream):
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.interactive = bool(isatty and isatty())

    def show(self, text: str, fraction: float, final: bool = False) -> None:
        """Draw `text` (with the bar of `fraction` on a terminal); `final` ends the line, so that what is
        printed next starts on its own."""
        if not self.interactive:
            print(text, file=self.stream, flush=True)
            return
        line = _fit(f"{bar(fraction, 20)} {text}", max(40, shutil.get_terminal_size().columns - 1))
        self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        self.stream.flush()


def _fit(line: str, width: int) -> str:
    """`line` cut in the middle to `width` characters, so that its start (the bar, the counts) and its end
    (the ETA) stay visible."""
    if len(line) <= width:
        return line
    head = (width - 1) * 2 // 3
    return line[:head] + "…" + line[len(line) - (width - 1 - head):]
