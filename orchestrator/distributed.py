"""Data-parallel training tasks through Ray Train (`TorchTrainer`, DDP: NCCL on GPU, gloo on CPU).

The training function of `tasks/` is the same as in one process: `tasks.train.fit` shards every
global batch by rank and all-reduces gradients when `torch.distributed` is initialised, which
TorchTrainer does. Each epoch every worker calls `ray.train.report`; rank 0 attaches the training
state as a checkpoint, so a worker that dies is replaced and the task resumes from its last epoch
(`FailureConfig`). Runs are named by task id under the sweep's storage, so a restarted driver
resumes them as well.
"""
from __future__ import annotations

import os
import tempfile

import ray.train
from ray.train import Checkpoint, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from orchestrator.graph import Task
from orchestrator.layout import Storage, SweepLayout

MAX_WORKER_FAILURES_ENV_VAR = "MMC_MAX_WORKER_FAILURES"
DEFAULT_MAX_WORKER_FAILURES = 2
CRASH_AT_EPOCH_ENV_VAR = "MMC_CRASH_WORKER_AT_EPOCH"   # fault injection: "task_prefix:epoch" (rank 1 dies once)
CRASH_MARKER_DIR_ENV_VAR = "MMC_CRASH_MARKER_DIR"       # where the "already crashed once" marker goes


def _train_worker(config: dict) -> None:
    import torch

    from orchestrator import work
    from tasks.checkpoint import checkpoint_files, read_checkpoint
    from tasks.train import train_state_from_tensors, train_state_tensors

    task: Task = config["task"]
    ctx = config["ctx"]
    rank = ray.train.get_context().get_world_rank()
    layout = SweepLayout(Storage(ctx.storage_uri), ctx.sweep)
    device = ray.train.torch.get_device() if torch.cuda.is_available() and task.resources.gpus else torch.device("cpu")
    crash = os.environ.get(CRASH_AT_EPOCH_ENV_VAR, "")

    curve_so_far: list[dict] = []   # saved with every checkpoint, so a resume keeps the earlier epochs' rows

    def resume_state():
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            files = {}
            for name in ("model.safetensors", "meta.json"):
                with open(os.path.join(directory, name), "rb") as f:
                    files[name] = f.read()
        tensors, meta = read_checkpoint(files)
        curve_so_far[:] = meta.get("curve", [])
        env.resumed_curve[:] = curve_so_far
        return train_state_from_tensors(tensors, meta)

    def on_epoch(report) -> None:
        metrics = {"epoch": report.epoch, "loss": report.loss, "acc": report.acc}
        curve_so_far[:] = [row for row in curve_so_far if row["epoch"] < report.epoch]
        curve_so_far.append({"epoch": report.epoch, "split": work.curve_split(task, report.epoch),
                             "loss": report.loss, "acc": report.acc})
        if rank == 0:
            tensors, meta = train_state_tensors(report.state())
            meta["curve"] = list(curve_so_far)
            with tempfile.TemporaryDirectory() as directory:
                for name, blob in checkpoint_files(tensors, meta).items():
                    with open(os.path.join(directory, name), "wb") as f:
                        f.write(blob)
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(directory))
        else:
            ray.train.report(metrics)
        if crash:
            prefix, epoch = crash.rsplit(":", 1)
            marker_dir = os.environ.get(CRASH_MARKER_DIR_ENV_VAR, tempfile.gettempdir())
            marker = os.path.join(marker_dir, f"mmc-crashed-{task.id}")
            if task.id.startswith(prefix) and report.epoch == int(epoch) and rank == 1 and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)   # simulate a worker that dies mid-task, once

    env = work.TaskEnv(layout=layout, device=device, data_root=ctx.data_root,
                       parent_kinds={p: ctx.graph.tasks[p].kind for p in task.parents},
                       on_epoch=on_epoch, resume_state=resume_state, rank=rank)
    result = work.execute(task, layout, ctx.runner, env)
    if result["status"] != "done":
        raise RuntimeError(result["error"])


def run_with_ray_train(task: Task, ctx) -> dict:
    """Run a training task on `task.resources.workers` Ray Train workers; returns the trial result."""
    import time

    from orchestrator import work

    start = time.time()
    r = task.resources
    per_worker = {"CPU": r.cpus}
    if r.gpus:
        per_worker["GPU"] = r.gpus
    for name, amount in dict(r.custom).items():
        per_worker[name] = amount
    layout = SweepLayout(Storage(ctx.storage_uri), ctx.sweep)
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"task": task, "ctx": ctx},
        scaling_config=ScalingConfig(num_workers=r.workers, use_gpu=bool(r.gpus), resources_per_worker=per_worker),
        run_config=RunConfig(
            name=f"train-{task.id}",
            storage_path=layout.ray_dir(),
            failure_config=FailureConfig(max_failures=int(os.environ.get(MAX_WORKER_FAILURES_ENV_VAR,
                                                                          DEFAULT_MAX_WORKER_FAILURES))),
        ),
    )
    try:
        trainer.fit()
    except Exception as exc:  # noqa: BLE001
        return {"status": "failed", "duration_s": time.time() - start, "error": work._format_error(exc),
                "device": f"ray-train x{r.workers}"}
    return {"status": "done", "duration_s": time.time() - start, "device": f"ray-train x{r.workers}", "metrics": {}}
