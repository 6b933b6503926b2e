"""Per-epoch resume state of a training task, shared by both ways a task runs.

After every epoch the training state (model, optimiser, epoch) and the curve rows so far become
two checkpoint files (`tasks.checkpoint`: safetensors + JSON, never a pickle). A task running in a
Tune trial keeps them under `layout.resume_dir` (`attach_storage_resume`); a Ray Train task hands
them to `ray.train.report` (`orchestrator.run.distributed`). Either way, a restarted task continues after
the last finished epoch with exactly the weights of an uninterrupted run and keeps the curve rows of
the epochs before the restart.
"""
from __future__ import annotations

from orchestrator.run.progress import ProgressWriter
from orchestrator.storage.layout import SweepLayout
from tasks.checkpoint import CorruptCheckpointError, checkpoint_files, read_checkpoint
from tasks.train import TrainState, train_state_from_tensors, train_state_tensors


class ResumeLog:
    """The curve rows of finished epochs, and the (de)serialisation of a training state with them.

    `split_of(epoch)` names the curve split of an epoch (fine-tuning's LP-FT has two)."""

    def __init__(self, split_of):
        self.split_of = split_of
        self.curve: list[dict] = []

    def files(self, report) -> dict[str, bytes]:
        """Record `report` (a `tasks.train.EpochReport`) and return the state's checkpoint files."""
        self.curve = [row for row in self.curve if row["epoch"] < report.epoch]
        self.curve.append({"epoch": report.epoch, "split": self.split_of(report.epoch),
                           "loss": report.loss, "acc": report.acc, "lr": report.lr, "duration_s": report.duration_s})
        tensors, meta = train_state_tensors(report.state())
        meta["curve"] = list(self.curve)
        return checkpoint_files(tensors, meta)

    def state(self, files: dict[str, bytes]) -> TrainState | None:
        """The training state in `files` (and its curve rows); None when they are torn or corrupt."""
        try:
            tensors, meta = read_checkpoint(files)
            if not isinstance(meta, dict):     # its hash covers the tensors only: meta.json may be damaged
                return None
            state = train_state_from_tensors(tensors, meta)
        except (CorruptCheckpointError, AttributeError, KeyError, TypeError, ValueError):
            return None
        curve = meta.get("curve", [])
        self.curve = [row for row in curve if _is_row(row)] if isinstance(curve, list) else []
        return state

    def full_curve(self, resumed: TrainState | None, rows: list[dict]) -> list[dict]:
        """A task's curve: the saved rows of the epochs before `resumed`, then the `rows` it trained,
        each with the wall time of its epoch (`duration_s`, as recorded after the epoch)."""
        before = [] if resumed is None else [row for row in self.curve if row["epoch"] < resumed.epoch]
        took = {row["epoch"]: row.get("duration_s") for row in self.curve}
        return before + [{**row, "duration_s": row.get("duration_s", took.get(row["epoch"]))} for row in rows]


def _is_row(row) -> bool:
    """A curve row as `ResumeLog.files` saves it: a whole epoch number >= 0, a split name, numbers (or null)
    for the rest. Anything else in a saved curve (a hand-edited or damaged meta.json) is left out, so that
    neither the next epoch's save nor the task's `train_curves` rows fail on it."""
    def number(value) -> bool:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    return (isinstance(row, dict) and isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool)
            and row["epoch"] >= 0 and isinstance(row.get("split"), str)
            and all(number(row.get(k)) for k in ("loss", "acc", "lr", "duration_s")))


def attach_storage_resume(env, layout: SweepLayout, kind: str, task_id: str, log: ResumeLog,
                          epochs: int | None = None) -> None:
    """Make `env` (a `work.TaskEnv`) save its state to `layout.resume_files` after every epoch and
    start from the saved state when there is one; rank 0 also keeps the task's `progress.json`
    (`orchestrator.run.progress`; `epochs`: the epochs it plans) up to date."""
    storage, paths = layout.storage, layout.resume_files(kind, task_id)
    progress = ProgressWriter(layout, kind, task_id, epochs)

    def save(report) -> None:
        for name, blob in log.files(report).items():
            storage.write_bytes(paths[name], blob)
        progress.epoch(report)

    def load() -> TrainState | None:
        state = _load()
        if env.rank == 0:
            progress.start(state.epoch if state is not None else 0)
        return state

    def _load() -> TrainState | None:
        try:
            if not all(storage.is_file(p) for p in paths.values()):
                return None
            return log.state({name: storage.read_bytes(p) for name, p in paths.items()})
        except OSError:
            return None   # unreadable: start the task over

    env.on_epoch, env.resume_state = save, load
