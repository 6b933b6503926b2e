"""A single-process training task stopped after an epoch resumes from its saved state (in-process,
the way a Tune trial runs it: `work.run_here`).

Resume is shown, not assumed: the rerun must *start* from the saved epoch (the state it was handed,
and the epochs it trains), and end with weights and a curve equal to an uninterrupted run. A restart
from scratch also produces every epoch's curve row and, being deterministic, the same weights, so
only the epochs actually trained tell a resume from a restart. Ray Train's path: test_distributed.py.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from orchestrator import vocab
from orchestrator.results import outputs, tables
from orchestrator.run import work
from orchestrator.run.progress import read_progress
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from tests.conftest import write_spec


class Stopped(Exception):
    pass


class Observed:
    """Wraps `work.attach_storage_resume`, as `run_here` calls it: records the state each attempt
    resumes from and the epochs it trains, and stops an attempt right after `stop_after` is saved."""

    def __init__(self, monkeypatch):
        self.resumed: list[int | None] = []
        self.trained: list[list[int]] = []
        self.stop_after: int | None = None
        real = work.attach_storage_resume

        def attach(env, layout, kind, task_id, log, **kwargs):
            real(env, layout, kind, task_id, log, **kwargs)
            save, load = env.on_epoch, env.resume_state
            epochs, stop = [], self.stop_after
            self.trained.append(epochs)

            def resume_state():
                state = load()
                self.resumed.append(None if state is None else state.epoch)
                return state

            def on_epoch(report):
                save(report)
                epochs.append(report.epoch)
                if report.epoch == stop:
                    raise Stopped(f"stopped after epoch {report.epoch}")

            env.on_epoch, env.resume_state = on_epoch, resume_state

        monkeypatch.setattr(work, "attach_storage_resume", attach)


def run(task, graph, layout) -> work.TaskResult:
    return work.run_here(task, layout, "real", None, {p: graph.tasks[p].kind for p in task.parents})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny spec whose tasks train a few epochs, and a directory where its pretrained models are
    finished (copied by the tests that need them as parents)."""
    tmp = tmp_path_factory.mktemp("resume")
    spec = load_spec(write_spec(tmp, "resumable", pretrain={"epochs": 4},
                                finetune={"methods": ["lpft", "cbft"], "epochs": 3, "llrt_epochs": 2},
                                midpoint={"epochs": 3}, paths={"kinds": ["quadratic"]}))
    graph = build_graph(spec)
    pretrained = tmp / "pretrained"
    for task in graph.tasks.values():
        if task.kind == "pretrain":
            assert run(task, graph, _layout(pretrained)).status == vocab.DONE
    return spec, graph, pretrained


def _layout(root: Path) -> SweepLayout:
    return SweepLayout(Storage(str(root)), "resumable")


def _role(graph, kind, method=None):
    return next(t for t in graph.tasks.values() if t.kind == kind and (method is None or t.config.get("method") == method)
                and (kind != "pretrain" or t.labels["cue_proportion"] > 0))


def _weights(layout, task) -> dict[str, torch.Tensor]:
    return outputs.load_checkpoint(layout, task.kind, task.id)[0]


def _curve(layout, task) -> pd.DataFrame:
    df = tables.read_fragment(layout, vocab.TRAIN_CURVES, task.id).sort_values("epoch").reset_index(drop=True)
    return df[["epoch", "split", "loss", "acc"]]


@pytest.mark.parametrize("kind, method, stop, total", [
    ("pretrain", None, 1, 4),
    ("midpoint", None, 1, 3),
    ("finetune", "lpft", 1, 5),     # in the head phase (LP-FT: 2 head epochs, then 3 full ones)
    ("finetune", "lpft", 3, 5),     # in the full fine-tuning phase
    ("finetune", "cbft", 0, 3),
])
def test_a_stopped_training_task_resumes_after_its_last_epoch(sweep, tmp_path, monkeypatch, kind, method, stop, total):
    spec, graph, pretrained = sweep
    task = _role(graph, kind, method)
    stopped, clean = _layout(tmp_path / "stopped"), _layout(tmp_path / "clean")
    if kind != "pretrain":
        for layout in (stopped, clean):
            shutil.copytree(pretrained, layout.storage.root)
    observed = Observed(monkeypatch)

    observed.stop_after = stop
    first = run(task, graph, stopped)
    assert first.status == vocab.FAILED and f"stopped after epoch {stop}" in first.error
    assert outputs.read_marker(stopped, task.kind, task.id) is None
    resume_dir = Path(stopped.storage.local_path(stopped.resume_dir(task.kind, task.id)))
    assert (resume_dir / "meta.json").is_file() and (resume_dir / "model.safetensors").is_file()
    progress = read_progress(stopped, task.kind, task.id)       # what `status` shows of the stopped task
    assert (progress["epochs"], progress["epoch"], progress["start_epoch"]) == (total, stop + 1, 0)

    observed.stop_after = None
    assert run(task, graph, stopped).status == vocab.DONE
    assert run(task, graph, clean).status == vocab.DONE             # never stopped
    assert observed.resumed == [None, stop + 1, None]               # the rerun was handed the saved state
    assert observed.trained == [list(range(stop + 1)), list(range(stop + 1, total)), list(range(total))]
    assert not resume_dir.exists()                                  # dropped once the task finished

    resumed, uninterrupted = _weights(stopped, task), _weights(clean, task)
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name
    pd.testing.assert_frame_equal(_curve(stopped, task), _curve(clean, task))
    assert list(_curve(stopped, task)["epoch"]) == list(range(total))   # the epochs before the stop are kept


def test_a_torn_resume_state_starts_the_task_over(sweep, tmp_path, monkeypatch):
    spec, graph, _ = sweep
    task = _role(graph, "pretrain")
    layout = _layout(tmp_path / "torn")
    observed = Observed(monkeypatch)
    observed.stop_after = 1
    assert run(task, graph, layout).status == vocab.FAILED
    tensors = Path(layout.storage.local_path(layout.resume_files(task.kind, task.id)["model.safetensors"]))
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])       # a write cut short
    observed.stop_after = None
    assert run(task, graph, layout).status == vocab.DONE
    assert observed.resumed == [None, None] and observed.trained[1] == [0, 1, 2, 3]
    assert list(_curve(layout, task)["epoch"]) == [0, 1, 2, 3]


# ----- the resume log and storage resume on their own (no training) ---------------------------------

def _report(model, optimizer, epoch: int, duration_s: float):
    from tasks.train import EpochReport

    return EpochReport(epoch=epoch, loss=1.0 / (epoch + 1), acc=0.1 * epoch, lr=0.05, duration_s=duration_s,
                       _model=model, _optimizer=optimizer)


def _env():
    from types import SimpleNamespace

    return SimpleNamespace(rank=0, on_epoch=None, resume_state=lambda: None)


def test_a_resumed_attempt_reports_its_start_epoch_and_keeps_every_epochs_wall_time(tmp_path):
    from orchestrator.run.resume import ResumeLog, attach_storage_resume

    layout = _layout(tmp_path)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first_env, first_log = _env(), ResumeLog(lambda epoch: "train")
    attach_storage_resume(first_env, layout, "pretrain", "pretrain-x", first_log, epochs=5)
    assert first_env.resume_state() is None
    for epoch, took in enumerate((0.5, 0.25, 2.0)):
        first_env.on_epoch(_report(model, optimizer, epoch, took))

    env, log = _env(), ResumeLog(lambda epoch: "train")
    attach_storage_resume(env, layout, "pretrain", "pretrain-x", log, epochs=5)
    state = env.resume_state()
    assert state.epoch == 3                                   # three epochs finished: the next is 3
    progress = read_progress(layout, "pretrain", "pretrain-x")
    assert (progress["start_epoch"], progress["epoch"], progress["epochs"]) == (3, 3, 5)
    env.on_epoch(_report(model, optimizer, 3, 4.0))
    assert read_progress(layout, "pretrain", "pretrain-x")["epoch"] == 4
    trained = [{"epoch": 3, "split": "train", "loss": 0.25, "acc": 0.3, "lr": 0.05}]    # as `fit` returns it
    curve = log.full_curve(state, trained)
    assert [(r["epoch"], r["duration_s"]) for r in curve] == [(0, 0.5), (1, 0.25), (2, 2.0), (3, 4.0)]


def test_an_epoch_reported_again_replaces_its_row_and_drops_the_later_ones():
    from orchestrator.run.resume import ResumeLog

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    log = ResumeLog(lambda epoch: "llrt" if epoch < 1 else "train")
    for epoch in (0, 1, 2):
        log.files(_report(model, optimizer, epoch, 1.0))
    assert [(r["epoch"], r["split"]) for r in log.curve] == [(0, "llrt"), (1, "train"), (2, "train")]
    files = log.files(_report(model, optimizer, 1, 9.0))       # epoch 1 run again (from the state after epoch 0)
    assert [(r["epoch"], r["duration_s"]) for r in log.curve] == [(0, 1.0), (1, 9.0)]
    again = ResumeLog(lambda epoch: "train")
    assert again.state(files).epoch == 2
    assert [r["epoch"] for r in again.curve] == [0, 1]


def test_a_task_that_was_not_resumed_keeps_exactly_the_rows_it_trained():
    """`full_curve(None, rows)`: nothing saved comes before a fresh start's rows, even though the log holds the
    rows it recorded after each epoch of that start; each row gets its epoch's wall time."""
    from orchestrator.run.resume import ResumeLog

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    log = ResumeLog(lambda epoch: "train")
    for epoch, took in ((0, 1.5), (1, 2.5)):
        log.files(_report(model, optimizer, epoch, took))
    trained = [{"epoch": 0, "split": "train", "loss": 1.0, "acc": 0.0}, {"epoch": 1, "split": "train", "loss": 0.5, "acc": 0.1}]
    assert [(r["epoch"], r["duration_s"]) for r in log.full_curve(None, trained)] == [(0, 1.5), (1, 2.5)]


def test_only_rank_zero_writes_the_progress_of_a_task(tmp_path):
    """attach_storage_resume: rank 0 keeps `progress.json`; the other ranks of a Ray Train task read the state only."""
    from types import SimpleNamespace

    from orchestrator.run.resume import ResumeLog, attach_storage_resume

    layout = _layout(tmp_path)
    env = SimpleNamespace(rank=1, on_epoch=None, resume_state=lambda: None)
    attach_storage_resume(env, layout, "pretrain", "pretrain-x", ResumeLog(lambda epoch: "train"), epochs=5)
    assert env.resume_state() is None
    assert read_progress(layout, "pretrain", "pretrain-x") is None


def test_a_saved_curve_with_rows_that_are_not_rows_keeps_only_its_rows():
    """A resume state whose curve holds something other than rows (a hand-edited or damaged meta.json) still
    resumes; its curve keeps the rows only (a whole epoch >= 0, a split, numbers or null: a row without its epoch
    failed the next epoch's save), and a curve that is not a list counts as none."""
    import json as json_lib

    from orchestrator.run.resume import ResumeLog

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    files = ResumeLog(lambda epoch: "train").files(_report(model, optimizer, 0, 1.0))
    row = {"epoch": 0, "split": "train", "loss": 1.0, "acc": 0.5, "lr": 0.05, "duration_s": None}
    broken = [{"split": "train"}, {**row, "epoch": "0"}, {**row, "epoch": True}, {**row, "epoch": -1},
              {**row, "split": None}, {**row, "loss": "1.0"}, {**row, "acc": [0.5]}]
    for curve, kept in (([7, "x", row], [0]), ({"epoch": 0}, []), ([*broken, {**row, "epoch": 1}, row], [1, 0])):
        meta = json_lib.loads(files["meta.json"])
        meta["meta"]["curve"] = curve          # the caller's meta inside the checkpoint record
        log = ResumeLog(lambda epoch: "train")
        assert log.state({**files, "meta.json": json_lib.dumps(meta).encode()}).epoch == 1
        assert [r["epoch"] for r in log.curve] == kept
        log.files(_report(model, optimizer, 1, 0.5))      # the next epoch saves, and the task's curve is whole
        assert [r["epoch"] for r in log.full_curve(log.state(files), [{"epoch": 1}])] == [0, 1]


def test_a_resume_state_that_cannot_be_read_starts_the_task_over(tmp_path, monkeypatch):
    """A saved state whose files exist but cannot be read (permission denied, an object store that fails the read)
    is no state: the task starts from epoch 0 instead of failing on it."""
    from orchestrator.run.resume import ResumeLog, attach_storage_resume

    layout = _layout(tmp_path)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    first = _env()
    attach_storage_resume(first, layout, "pretrain", "pretrain-x", ResumeLog(lambda epoch: "train"), epochs=3)
    first.on_epoch(_report(model, optimizer, 0, 1.0))

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(layout.storage, "read_bytes", denied)
    env = _env()
    attach_storage_resume(env, layout, "pretrain", "pretrain-x", ResumeLog(lambda epoch: "train"), epochs=3)
    assert env.resume_state() is None


def test_a_saved_row_whose_wall_time_is_not_a_number_is_left_out():
    """A saved curve row whose `duration_s` is neither a number nor null (a damaged meta.json) is no row: it is
    left out like one with a bad loss, so the task's curve never carries text where its wall time goes."""
    import json as json_lib

    from orchestrator.run.resume import ResumeLog

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    files = ResumeLog(lambda epoch: "train").files(_report(model, optimizer, 0, 1.0))
    row = {"epoch": 0, "split": "train", "loss": 1.0, "acc": 0.5, "lr": 0.05, "duration_s": None}
    meta = json_lib.loads(files["meta.json"])
    meta["meta"]["curve"] = [{**row, "duration_s": "slow"}, {**row, "epoch": 1, "duration_s": 2.5}]
    log = ResumeLog(lambda epoch: "train")
    assert log.state({**files, "meta.json": json_lib.dumps(meta).encode()}) is not None
    assert [(r["epoch"], r["duration_s"]) for r in log.curve] == [(1, 2.5)]


@pytest.mark.parametrize("tensor, epoch", [("model/weight", "three"), ("bogus/weight", 1)])
def test_a_resume_state_that_verifies_but_does_not_make_a_training_state_starts_the_task_over(tensor, epoch):
    """Checkpoint files whose hashes match but whose content is no training state (an epoch that is not a
    number, a tensor that belongs to neither the model nor the optimiser) are no state: `state` is None and
    the task starts over, instead of the task failing on its own resume state."""
    from orchestrator.run.resume import ResumeLog
    from tasks.checkpoint import checkpoint_files

    files = checkpoint_files({tensor: torch.zeros(2)}, {"epoch": epoch, "param_groups": [], "curve": []})
    assert ResumeLog(lambda epoch: "train").state(files) is None


@pytest.mark.parametrize("meta", [[], {"epoch": 1, "param_groups": [], "optimizer_scalars": []}])
def test_a_resume_state_whose_meta_is_not_a_mapping_starts_the_task_over(meta):
    """The sha256 in meta.json covers the tensors only: a damaged or hand-edited meta.json that is still a valid
    record (here its `meta`, or the optimiser's scalars in it, a list) is no training state, and `state` is None
    (the task starts over), as for every other corrupt resume state."""
    import json as json_lib

    from orchestrator.run.resume import ResumeLog
    from tasks.checkpoint import checkpoint_files

    files = checkpoint_files({"model/weight": torch.zeros(2)}, {"epoch": 1, "param_groups": [], "curve": []})
    record = json_lib.loads(files["meta.json"])
    record["meta"] = meta
    assert ResumeLog(lambda epoch: "train").state({**files, "meta.json": json_lib.dumps(record).encode()}) is None
