"""Data-parallel training tasks through Ray Train (`TorchTrainer`, DDP: NCCL on GPU, gloo on CPU).

The training function of `tasks/` is the same as in one process: `tasks.train.fit` shards every
global batch by rank and all-reduces gradients when `torch.distributed` is initialised, which
TorchTrainer does. After every epoch rank 0 stores the training state where a one-process task
stores it (`orchestrator.run.resume`, on the sweep's storage) and all ranks wait for it; a worker that
dies is replaced (`FailureConfig`) and the new worker group, like a restarted driver, continues
after the last stored epoch.
"""
from __future__ import annotations

import time

import ray.train
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from orchestrator import knobs, vocab
from orchestrator.run import work
from orchestrator.run.capacity import WORKER_PLACEMENT, task_bundles
from orchestrator.graph.dag import Task
from orchestrator.storage.layout import SweepLayout
from orchestrator.run.progress import planned_epochs
from orchestrator.run.resume import ResumeLog, attach_storage_resume
from orchestrator.run.task_result import TaskResult



class TaskFailedError(RuntimeError):
    """A task that raised on a Ray Train worker: its formatted error and its exception's class name
    (a plain exception: it pickles across processes)."""

    def __init__(self, error: str, error_type: str | None):
        super().__init__(error, error_type)
        self.error, self.error_type = error, error_type

    def __str__(self) -> str:
        return self.error


def _error_type(exc: BaseException) -> str:
    """The class name of what failed: a worker's `TaskFailedError` inside Ray Train's error, else `exc`'s."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, TaskFailedError) and e.error_type:
            return e.error_type
        todo += [x for x in (e.__cause__, e.__context__, getattr(e, "cause", None)) if isinstance(x, BaseException)]
        todo += [x for x in (getattr(e, "worker_failures", None) or {}).values() if isinstance(x, BaseException)]
    return type(exc).__name__


def _train_worker(config: dict) -> dict:
    import torch

    task: Task = config["task"]
    layout: SweepLayout = config["layout"]
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device() if torch.cuda.is_available() and task.resources.gpus else torch.device("cpu")
    log = ResumeLog(lambda epoch: work.curve_split(task, epoch))
    env = work.TaskEnv(layout=layout, device=device, data_root=config["data_root"],
                       parent_kinds=config["parent_kinds"], resume_log=log, rank=rank)
    attach_storage_resume(env, layout, task.kind, task.id, log,   # the same state as a one-process task
                          epochs=planned_epochs(task))
    save = env.on_epoch

    def on_epoch(report) -> None:
        if rank == 0:
            save(report)        # atomic files on the sweep's storage; every rank reads them after a restart
        if torch.distributed.is_initialized():
            torch.distributed.barrier()   # the state of this epoch is stored before any rank goes on (or dies)
        ray.train.report({"epoch": report.epoch, "loss": report.loss, "acc": report.acc})

    env.on_epoch = on_epoch
    result = work.execute(task, config["runner"], env)
    if result.status != vocab.DONE:
        raise TaskFailedError(result.error, result.error_type)
    return result.to_dict()   # rank 0's becomes `Result.return_value`


def run_with_ray_train(task: Task, layout: SweepLayout, runner: str, data_root: str | None,
                       parent_kinds: dict[str, str]) -> TaskResult:
    """Run a training task on `task.resources.workers` Ray Train workers; never raises."""
    start = time.time()
    r = task.resources
    workers = task_bundles(task.kind, r)[1:]   # the bundles the preflight checked, after the trial's own
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"task": task, "layout": layout, "runner": runner, "data_root": data_root,
                           "parent_kinds": parent_kinds},
        scaling_config=ScalingConfig(num_workers=len(workers), use_gpu=bool(r.gpus),
                                     resources_per_worker=workers[0], placement_strategy=WORKER_PLACEMENT),
        run_config=RunConfig(
            name=f"train-{task.id}",
            **layout.ray_storage(),
            failure_config=FailureConfig(max_failures=knobs.read(knobs.MAX_WORKER_FAILURES)),
        ),
    )
    device = f"ray-train x{r.workers}"
    try:
        returned = getattr(trainer.fit(), "return_value", None)
    except Exception as exc:  # noqa: BLE001
        return TaskResult(vocab.FAILED, time.time() - start, device, error=work.format_error(exc),
                          error_type=_error_type(exc))
    result = TaskResult.from_dict(returned) if isinstance(returned, dict) else TaskResult(vocab.DONE, 0.0)
    result.duration_s, result.device = time.time() - start, device
    return result
