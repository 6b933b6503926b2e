"""Data-parallel training tasks through Ray Train (`TorchTrainer`, DDP: NCCL on GPU, gloo on CPU).

The training function of `tasks/` is the same as in one process: `tasks.train.fit` shards every
global batch by rank and all-reduces gradients when `torch.distributed` is initialised, which
TorchTrainer does. After every epoch rank 0 stores the training state where a one-process task
stores it (`orchestrator.run.resume`, on the sweep's storage) and all ranks wait for it; a worker that
dies is replaced (`FailureConfig`) and the new worker group, like a restarted driver, continues
after the last stored epoch.
"""
from __future__ import annotations

import os
import tempfile
import time

import ray.train
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from orchestrator import vocab
from orchestrator.run import work
from orchestrator.graph.dag import Resources, Task
from orchestrator.storage.layout import SweepLayout
from orchestrator.run.progress import planned_epochs
from orchestrator.run.resume import ResumeLog, attach_storage_resume
from orchestrator.run.work import TaskResult

MAX_WORKER_FAILURES_ENV_VAR = "MMC_MAX_WORKER_FAILURES"
DEFAULT_MAX_WORKER_FAILURES = 2
CRASH_AT_EPOCH_ENV_VAR = "MMC_CRASH_WORKER_AT_EPOCH"   # fault injection: "task_prefix:epoch" (rank 1 dies once)
CRASH_MARKER_DIR_ENV_VAR = "MMC_CRASH_MARKER_DIR"       # where the "already crashed once" marker goes


def worker_resources(r: Resources) -> dict:
    """The Ray resources one worker of a task reserves (also a single-worker task's trial)."""
    request = {"CPU": r.cpus}
    if r.gpus:
        request["GPU"] = r.gpus
    request.update(dict(r.custom))
    return request


def _maybe_crash(task: Task, epoch: int, rank: int) -> None:
    crash = os.environ.get(CRASH_AT_EPOCH_ENV_VAR, "")
    if not crash:
        return
    prefix, at = crash.rsplit(":", 1)
    marker = os.path.join(os.environ.get(CRASH_MARKER_DIR_ENV_VAR, tempfile.gettempdir()), f"mmc-crashed-{task.id}")
    if task.id.startswith(prefix) and epoch == int(at) and rank == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)   # simulate a worker that dies mid-task, once


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
        _maybe_crash(task, report.epoch, rank)

    env.on_epoch = on_epoch
    result = work.execute(task, config["runner"], env)
    if result.status != vocab.DONE:
        raise RuntimeError(result.error)
    return result.to_dict()   # rank 0's becomes `Result.return_value`


def run_with_ray_train(task: Task, layout: SweepLayout, runner: str, data_root: str | None,
                       parent_kinds: dict[str, str]) -> TaskResult:
    """Run a training task on `task.resources.workers` Ray Train workers; never raises."""
    start = time.time()
    r = task.resources
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"task": task, "layout": layout, "runner": runner, "data_root": data_root,
                           "parent_kinds": parent_kinds},
        scaling_config=ScalingConfig(num_workers=r.workers, use_gpu=bool(r.gpus),
                                     resources_per_worker=worker_resources(r)),
        run_config=RunConfig(
            name=f"train-{task.id}",
            **layout.ray_storage(),
            failure_config=FailureConfig(max_failures=int(os.environ.get(MAX_WORKER_FAILURES_ENV_VAR,
                                                                          DEFAULT_MAX_WORKER_FAILURES))),
        ),
    )
    device = f"ray-train x{r.workers}"
    try:
        returned = getattr(trainer.fit(), "return_value", None)
    except Exception as exc:  # noqa: BLE001
        return TaskResult(vocab.FAILED, time.time() - start, device, error=work.format_error(exc))
    result = TaskResult.from_dict(returned) if isinstance(returned, dict) else TaskResult(vocab.DONE, 0.0)
    result.duration_s, result.device = time.time() - start, device
    return result
