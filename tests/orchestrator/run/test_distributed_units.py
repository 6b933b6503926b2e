"""Data-parallel training's plumbing without Ray Train: what `run_with_ray_train` asks of `TorchTrainer` and
makes of its answer, what each worker saves and reports per epoch, and the exception type a failed task
keeps. `TorchTrainer` and the worker's Ray Train context are stand-ins; the module docstring of
`orchestrator.run.distributed` is the reference."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator import knobs, vocab
from orchestrator.graph.dag import LABEL_KEYS, Resources, Task
from orchestrator.run import distributed as D
from orchestrator.run.task_result import TaskResult
from orchestrator.storage.layout import Storage, SweepLayout

LABELS = {k: None for k in LABEL_KEYS}


def _task(workers: int = 2, gpus: float = 0) -> Task:
    return Task("pretrain", {"name": "ddp"}, (), LABELS, Resources(cpus=1, gpus=gpus, workers=workers))


@pytest.fixture
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "runs")), "ddp")


# ----- the exception type of a failed task ------------------------------------------------------------

def test_the_error_type_is_the_workers_own_wherever_ray_train_wraps_it():
    """A worker's TaskFailedError is found as the cause, the context, or among `worker_failures` of what
    `fit` raised; without one, the type is that of the raised exception itself (not of its cause)."""
    inner = D.TaskFailedError("DivergenceError: loss is nan", "DivergenceError")
    try:
        raise RuntimeError("training failed") from inner
    except RuntimeError as exc:
        caused = exc
    wrapped = Exception("the worker group failed")
    wrapped.worker_failures = {1: inner}
    try:
        try:
            raise KeyError("x")
        except KeyError:
            raise ValueError("while handling")  # noqa: B904 - the context is the point
    except ValueError as exc:
        plain = exc
    assert D._error_type(caused) == "DivergenceError"
    assert D._error_type(wrapped) == "DivergenceError"
    assert D._error_type(plain) == "ValueError"


# ----- the driver's side ------------------------------------------------------------------------------

class FakeTrainer:
    """Records what `TorchTrainer` was given; `fit` returns `returned` or raises `raises`."""
    made: list = []

    def __init__(self, fn, *, train_loop_config, scaling_config, run_config):
        self.fn, self.config, self.scaling, self.run = fn, train_loop_config, scaling_config, run_config
        FakeTrainer.made.append(self)

    def fit(self):
        if FakeTrainer.raises is not None:
            raise FakeTrainer.raises
        return SimpleNamespace(return_value=FakeTrainer.returned)


@pytest.fixture
def trainer(monkeypatch):
    FakeTrainer.made, FakeTrainer.raises, FakeTrainer.returned = [], None, None
    clock = SimpleNamespace(now=1000.0)

    def time_():
        clock.now += 6.0            # every read of the clock: 6 s later
        return clock.now

    monkeypatch.setattr(D, "TorchTrainer", FakeTrainer)
    monkeypatch.setattr(D.time, "time", time_)
    return FakeTrainer


def test_a_task_runs_on_its_workers_with_their_resources_and_the_replacement_budget(trainer, layout, monkeypatch):
    """`workers` workers, each with the task's per-worker resources, GPUs only for a GPU task, and
    MMC_MAX_WORKER_FAILURES replacements of the worker group."""
    monkeypatch.setenv(knobs.MAX_WORKER_FAILURES.name, "5")
    trainer.returned = TaskResult(vocab.DONE, 1.0).to_dict()
    D.run_with_ray_train(_task(workers=3), layout, "real", None, {})
    D.run_with_ray_train(_task(workers=2, gpus=1), layout, "real", None, {})
    cpu, gpu = trainer.made
    assert (cpu.scaling.num_workers, cpu.scaling.use_gpu, cpu.scaling.resources_per_worker) == (3, False, {"CPU": 1})
    assert (gpu.scaling.num_workers, gpu.scaling.use_gpu, gpu.scaling.resources_per_worker) == (2, True, {"CPU": 1, "GPU": 1})
    assert cpu.run.failure_config.max_failures == 5


def test_a_finished_task_keeps_rank_zeros_result_with_the_drivers_duration_and_device(trainer, layout):
    """Rank 0's result (metrics, curves) is the task's; its duration is the driver's wall time around `fit`
    (start, then end: 6 s on the stand-in clock), its device `ray-train x<workers>`."""
    trainer.returned = TaskResult(vocab.DONE, 1.0, "cpu", {"acc": 0.75}, [["loss", 0, 0.5]]).to_dict()
    result = D.run_with_ray_train(_task(workers=2), layout, "real", None, {"p": "pretrain"})
    assert (result.status, result.metrics, result.steps) == (vocab.DONE, {"acc": 0.75}, [["loss", 0, 0.5]])
    assert (result.duration_s, result.device) == (6.0, "ray-train x2")
    assert trainer.made[0].config["parent_kinds"] == {"p": "pretrain"}


def test_a_failed_task_keeps_the_workers_error_type_and_never_raises(trainer, layout):
    try:
        raise RuntimeError("TrainingFailedError") from D.TaskFailedError("SettingsError: `lr`", "SettingsError")
    except RuntimeError as exc:
        trainer.raises = exc
    result = D.run_with_ray_train(_task(workers=2), layout, "real", None, {})
    assert (result.status, result.error_type, result.device) == (vocab.FAILED, "SettingsError", "ray-train x2")


# ----- a worker's side ----------------------------------------------------------------------------------

@pytest.fixture
def worker(monkeypatch, layout):
    """`_train_worker` of rank `rank` with a stand-in Ray Train context and task body (two epochs); returns
    a function `run(rank, status)` -> (saved epochs, reported metrics, the returned dict or the exception)."""
    def run(rank: int, status: str = vocab.DONE):
        saved, reported = [], []
        monkeypatch.setattr(D.ray.train, "get_context", lambda: SimpleNamespace(get_world_rank=lambda: rank))
        monkeypatch.setattr(D.ray.train, "report", reported.append)
        monkeypatch.setattr(D, "planned_epochs", lambda task: 2)

        def attach(env, layout_, kind, task_id, log, epochs):
            env.on_epoch = lambda report: saved.append(report.epoch)

        def execute(task, runner, env):
            for epoch in range(2):
                env.on_epoch(SimpleNamespace(epoch=epoch, loss=1.0 - epoch / 4, acc=0.5 + epoch / 8))
            return TaskResult(status, 2.0, error="DivergenceError: nan" if status == vocab.FAILED else None,
                              error_type="DivergenceError" if status == vocab.FAILED else None)

        monkeypatch.setattr(D, "attach_storage_resume", attach)
        monkeypatch.setattr(D.work, "execute", execute)
        config = {"task": _task(), "layout": layout, "runner": "real", "data_root": None, "parent_kinds": {}}
        try:
            out = D._train_worker(config)
        except D.TaskFailedError as exc:
            out = exc
        return saved, reported, out
    return run


def test_only_rank_zero_stores_the_epochs_state_and_every_rank_reports_each_epoch(worker):
    saved0, reported0, out0 = worker(0)
    saved1, reported1, out1 = worker(1)
    assert saved0 == [0, 1] and saved1 == []
    expected = [{"epoch": 0, "loss": 1.0, "acc": 0.5}, {"epoch": 1, "loss": 0.75, "acc": 0.625}]
    assert reported0 == reported1 == expected
    assert out0["status"] == vocab.DONE


def test_a_worker_whose_task_failed_raises_its_error_and_type(worker):
    _, _, out = worker(0, vocab.FAILED)
    assert isinstance(out, D.TaskFailedError)
    assert (str(out), out.error_type) == ("DivergenceError: nan", "DivergenceError")


# ----- more of the error type, the driver and the worker ---------------------------------------------------

def test_a_workers_error_found_through_rays_cause_attribute_gives_its_type_and_one_without_a_type_does_not():
    """Ray's task errors carry the original exception as `.cause` (not `__cause__`): the worker's TaskFailedError
    is found there too. A TaskFailedError that names no type is passed over: the raised exception's type stands."""
    ray_error = RuntimeError("RayTaskError: the worker raised")
    ray_error.cause = D.TaskFailedError("DataError: no files under data.root", "DataError")
    assert D._error_type(ray_error) == "DataError"
    try:
        raise KeyError("lost") from D.TaskFailedError("something failed", None)
    except KeyError as exc:
        untyped = exc
    assert D._error_type(untyped) == "KeyError"


def test_a_failed_task_keeps_the_drivers_wall_time_around_fit(trainer, layout):
    """As for a finished task: start, then the failure (6 s on the stand-in clock)."""
    trainer.raises = RuntimeError("the worker group failed")
    result = D.run_with_ray_train(_task(workers=2), layout, "real", None, {})
    assert result.status == vocab.FAILED and result.duration_s == 6.0


def test_each_task_trains_under_a_ray_run_of_its_own_with_its_runner_and_data_root(trainer, layout):
    """Two tasks of one sweep keep their Ray Train runs apart (the run's name holds the task id, `train-<id>`), and
    the workers get the runner and the data root they are to use."""
    trainer.returned = TaskResult(vocab.DONE, 1.0).to_dict()
    a = _task(workers=2)
    b = Task("pretrain", {"name": "other"}, (), LABELS, Resources(cpus=1, workers=2))
    D.run_with_ray_train(a, layout, "tests.support.runners:synthetic", "/data/root", {})
    D.run_with_ray_train(b, layout, "real", None, {})
    first, second = trainer.made
    assert first.run.name == f"train-{a.id}" and second.run.name == f"train-{b.id}"
    assert (first.config["runner"], first.config["data_root"]) == ("tests.support.runners:synthetic", "/data/root")
    assert first.config["task"] is a and first.config["layout"] is layout


@pytest.fixture
def worker_env(monkeypatch, layout):
    """`_train_worker(config)` with Ray Train's context stood in for: returns `run(rank, gpus, cuda)` -> (the task's
    env, the arguments `attach_storage_resume` got, the order of save / barrier / report per epoch)."""
    import torch

    def run(rank: int = 0, gpus: float = 0, cuda: bool = False, distributed: bool = False):
        seen = {"events": []}
        monkeypatch.setattr(D.ray.train, "get_context", lambda: SimpleNamespace(get_world_rank=lambda: rank))
        monkeypatch.setattr(D.ray.train, "report", lambda metrics: seen["events"].append(("report", metrics["epoch"])))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        import ray.train.torch as train_torch

        monkeypatch.setattr(train_torch, "get_device", lambda: "the worker's GPU")
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: distributed)
        monkeypatch.setattr(torch.distributed, "barrier", lambda: seen["events"].append(("barrier",)))
        monkeypatch.setattr(D, "planned_epochs", lambda task: 3)

        def attach(env, layout_, kind, task_id, log, epochs):
            seen["attached"] = (layout_, kind, task_id, epochs)
            env.on_epoch = lambda report: seen["events"].append(("save", report.epoch))

        def execute(task, runner, env):
            seen["env"] = env
            env.on_epoch(SimpleNamespace(epoch=0, loss=1.0, acc=0.5))
            return TaskResult(vocab.DONE, 1.0)

        monkeypatch.setattr(D, "attach_storage_resume", attach)
        monkeypatch.setattr(D.work, "execute", execute)
        task = Task("pretrain", {"name": "ddp"}, (), LABELS, Resources(cpus=1, gpus=gpus, workers=2))
        D._train_worker({"task": task, "layout": layout, "runner": "real", "data_root": "/data",
                         "parent_kinds": {"p": "pretrain"}})
        seen["task"] = task
        return seen
    return run


def test_a_worker_trains_on_its_rank_with_the_data_root_and_resumes_from_the_tasks_own_state(worker_env, layout):
    """Each worker's env carries its rank (tasks.train shards every batch by it), the data root and the parents'
    kinds; the resume state attached is the task's own (its kind, its id, its planned epochs), as a one-process
    task's is."""
    seen = worker_env(rank=1)
    env, task = seen["env"], seen["task"]
    assert (env.rank, env.data_root, env.parent_kinds) == (1, "/data", {"p": "pretrain"})
    assert seen["attached"] == (layout, "pretrain", task.id, 3)


@pytest.mark.parametrize("gpus, cuda, device", [(0, True, "cpu"), (1, False, "cpu"), (1, True, "the worker's GPU")])
def test_a_worker_trains_on_ray_trains_gpu_only_for_a_gpu_task_on_a_machine_with_cuda(worker_env, gpus, cuda, device):
    import torch

    env = worker_env(gpus=gpus, cuda=cuda)["env"]
    assert env.device == (torch.device("cpu") if device == "cpu" else device)


def test_rank_zero_stores_an_epoch_before_the_ranks_meet_and_every_rank_reports_after(worker_env):
    """With torch.distributed up: rank 0 saves, then all ranks wait at a barrier (the state of the epoch is stored
    before any rank goes on), then each reports; rank 1 only waits and reports."""
    assert worker_env(rank=0, distributed=True)["events"] == [("save", 0), ("barrier",), ("report", 0)]
    assert worker_env(rank=1, distributed=True)["events"] == [("barrier",), ("report", 0)]


def test_a_fit_that_returned_without_rank_zeros_result_is_still_a_finished_task(trainer, layout):
    """`fit` ended without an error but Ray Train handed back no result of rank 0 (none, or not a mapping):
    the workers finished (rank 0 wrote the outputs before returning), so the task is done, not failed."""
    for returned in (None, "not a mapping"):
        trainer.returned = returned
        result = D.run_with_ray_train(_task(workers=2), layout, "real", None, {})
        assert (result.status, result.error, result.device) == (vocab.DONE, None, "ray-train x2")
