"""Turn a graph `Task` into calls of the pure-PyTorch work units in `tasks/`, and write what they return.

`RUNNERS` maps a runner name to a function `(task, env) -> TaskOutput`; `real` does the science,
`noop` does nothing (used to measure orchestration overhead). `run_in_trial` is what a Ray Tune
trial calls: it runs a task in the trial process, or through Ray Train when it has several workers.
"""
from __future__ import annotations

import os
import platform
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import torch

from orchestrator import outputs, sinks
from orchestrator.graph import Task
from orchestrator.layout import Storage, SweepLayout
from orchestrator.outputs import TaskOutput
from orchestrator.spec import TRAINING_KINDS
from tasks import align as align_lib
from tasks import data as data_lib
from tasks import finetune as finetune_lib
from tasks import paths as paths_lib
from tasks.evaluate import evaluate_sets
from tasks.models import build_model
from tasks.seeding import derive_seed
from tasks.train import OptimSettings, cross_entropy_objective, fit, train_state_from_tensors, train_state_tensors

INIT_SEED_SALT = 1           # derive_seed(seed, INIT_SEED_SALT) seeds a model's initialisation
FAIL_TASK_ENV_VAR = "MMC_FAIL_TASKS"   # comma-separated task-id prefixes that raise (fault-injection tests)


@dataclass
class TaskEnv:
    """Where and how a task runs: storage, device, data root, and the epoch hooks of training."""

    layout: SweepLayout
    device: torch.device
    data_root: str | None = None
    parent_kinds: dict[str, str] = field(default_factory=dict)
    on_epoch: Callable | None = None                 # called with tasks.train.EpochReport
    resume_state: Callable[[], object] = lambda: None  # returns a tasks.train.TrainState or None
    rank: int = 0
    resumed_curve: list[dict] = field(default_factory=list)  # curve rows of the epochs before a resume


# ---------------------------------------------------------------- helpers

def _data_settings(config: dict, root: str | None) -> data_lib.DataSettings:
    return data_lib.DataSettings(**{**config, "root": root})


def _new_model(model_cfg: dict, data: data_lib.CueData, seed: int) -> torch.nn.Module:
    torch.manual_seed(derive_seed(seed, INIT_SEED_SALT))
    return build_model(model_cfg["name"], data.num_classes, data.in_channels, model_cfg.get("width"))


def _load_state(env: TaskEnv, task_id: str) -> dict[str, torch.Tensor]:
    tensors, _meta = outputs.load_checkpoint(env.layout, env.parent_kinds[task_id], task_id)
    return tensors


def _model_with_state(model_cfg: dict, data: data_lib.CueData, state: dict) -> torch.nn.Module:
    model = build_model(model_cfg["name"], data.num_classes, data.in_channels, model_cfg.get("width"))
    model.load_state_dict(state)
    return model


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _rows(task: Task, table: str, rows: list[dict], **extra) -> list[dict]:
    """Rows for `table`: the task's labels and kind where the table has such columns, then `rows`."""
    names = set(sinks.SCHEMAS[table].names)
    base = {"task_id": task.id, "kind": task.kind, **task.labels, **extra}
    return [{k: v for k, v in {**base, **row}.items() if k in names} for row in rows]


def _evaluation_rows(task: Task, model, data, device) -> list[dict]:
    return _rows(task, "evaluations", evaluate_sets(model, data.eval_sets, device=device))


def _curve_rows(task: Task, curve: list[dict], split: str = "train") -> list[dict]:
    return _rows(task, "train_curves", [{"split": split, **row} for row in curve])


def _with_earlier_epochs(env: TaskEnv, resume, curve: list[dict]) -> list[dict]:
    """A resumed run's curve: the rows saved with the resume state (epochs before it), then `curve`."""
    if resume is None:
        return curve
    return [row for row in env.resumed_curve if row["epoch"] < resume.epoch] + curve


def curve_split(task: Task, epoch: int) -> str:
    """The `split` of a training task's curve row for `epoch` (as the task itself labels it)."""
    if task.kind == "finetune":
        return finetune_lib.curve_split(task.config["method"], epoch,
                                        finetune_lib.FinetuneSettings(**task.config["finetune"]))
    return "train"


def _maybe_fail(task: Task) -> None:
    prefixes = [p for p in os.environ.get(FAIL_TASK_ENV_VAR, "").split(",") if p]
    if any(task.id.startswith(p) or task.kind == p for p in prefixes):
        raise RuntimeError(f"injected failure for task {task.id} ({FAIL_TASK_ENV_VAR})")


# ---------------------------------------------------------------- the task kinds

def run_pretrain(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    data = data_lib.load_cue_data(_data_settings(cfg["data"], env.data_root), env.device)
    model = _new_model(cfg["model"], data, cfg["seed"]).to(env.device)
    settings = OptimSettings(**cfg["train"])
    objective = cross_entropy_objective(data.train, settings.batch_size, cfg["seed"])
    resume = env.resume_state()
    curve = fit(model, objective, model.parameters(), settings, seed=cfg["seed"], device=env.device,
                on_epoch=env.on_epoch, resume=resume)
    return TaskOutput(
        tables={"evaluations": _evaluation_rows(task, model, data, env.device),
                "train_curves": _curve_rows(task, _with_earlier_epochs(env, resume, curve))},
        checkpoint=_state_dict(model),
    )


def run_finetune(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    data = data_lib.load_cue_data(_data_settings(cfg["data"], env.data_root), env.device)
    model = _model_with_state(cfg["model"], data, _load_state(env, cfg["pretrain"])).to(env.device)
    settings = finetune_lib.FinetuneSettings(**cfg["finetune"])
    resume = env.resume_state()
    curve = finetune_lib.finetune(model, cfg["method"], data, settings, seed=cfg["seed"], device=env.device,
                                  on_epoch=env.on_epoch, resume=resume)
    return TaskOutput(
        tables={"evaluations": _evaluation_rows(task, model, data, env.device),
                "train_curves": _curve_rows(task, _with_earlier_epochs(env, resume, curve))},
        checkpoint=_state_dict(model),
    )


def _concat_training_sets(datas: list[data_lib.CueData]) -> data_lib.Split:
    return data_lib.Split(torch.cat([d.train.x for d in datas]), torch.cat([d.train.y for d in datas]))


def run_midpoint(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    id_a, id_b = cfg["endpoints"]
    datas = [data_lib.load_cue_data(_data_settings(d, env.data_root), env.device) for d in cfg["data"]]
    train = _concat_training_sets(datas)   # the union of both endpoints' training distributions
    torch.manual_seed(derive_seed(cfg["seed"], INIT_SEED_SALT))
    model = build_model(cfg["model"]["name"], datas[0].num_classes, datas[0].in_channels,
                        cfg["model"].get("width")).to(env.device)
    settings = paths_lib.MidpointSettings(**cfg["train"])
    resume = env.resume_state()
    state_mid, curve = paths_lib.train_midpoint(
        model, _load_state(env, id_a), _load_state(env, id_b), train, settings,
        seed=cfg["seed"], device=env.device, on_epoch=env.on_epoch, resume=resume)
    return TaskOutput(tables={"train_curves": _curve_rows(task, _with_earlier_epochs(env, resume, curve))},
                      checkpoint={k: v.detach().cpu() for k, v in state_mid.items()})


def run_align(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    id_a, id_b = cfg["endpoints"]
    data = data_lib.load_cue_data(_data_settings(cfg["data"], env.data_root), env.device)
    model_a = _model_with_state(cfg["model"], data, _load_state(env, id_a)).to(env.device)
    model_b = _model_with_state(cfg["model"], data, _load_state(env, id_b)).to(env.device)
    x = data.train_clean.x[: cfg.get("samples", 500)].float()
    permuted = align_lib.align(model_a, model_b, cfg["method"], x, seed=cfg["seed"])
    before = _distance(model_a.state_dict(), model_b.state_dict())
    after = _distance(model_a.state_dict(), permuted)
    return TaskOutput(checkpoint={k: v.detach().cpu() for k, v in permuted.items()},
                      metrics={"weight_distance_before": before, "weight_distance_after": after},
                      meta={"weight_distance_before": before, "weight_distance_after": after})


def _distance(state_a: dict, state_b: dict) -> float:
    total = 0.0
    for key, a in state_a.items():
        if a.is_floating_point() and "running" not in key:
            total += float(((a.float() - state_b[key].float()) ** 2).sum())
    return total ** 0.5


def run_path_eval(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    id_a, id_b = cfg["endpoints"]
    data = data_lib.load_cue_data(_data_settings(cfg["data"], env.data_root), env.device)
    model = build_model(cfg["model"]["name"], data.num_classes, data.in_channels, cfg["model"].get("width")).to(env.device)
    state_a = _load_state(env, id_a)
    midpoint = None
    if cfg["path_kind"] == "quadratic":
        midpoint = _load_state(env, cfg["via"])
        state_b = _load_state(env, id_b)
    elif cfg["path_kind"] == "aligned":
        state_b = _load_state(env, cfg["via"])   # model B permuted onto A
    else:
        state_b = _load_state(env, id_b)
    settings = paths_lib.PathSettings(**cfg.get("path", {}))
    rows = paths_lib.evaluate_path(model, state_a, state_b, midpoint=midpoint, bn_data=data.train_clean.x,
                                   sets=data.eval_sets, settings=settings, device=env.device)
    barrier_rows = paths_lib.barriers(rows)
    metrics = {f"barrier.{r['eval_set']}.{r['metric']}.{r['definition']}": r["value"] for r in barrier_rows}
    return TaskOutput(
        tables={"paths": _rows(task, "paths", rows), "barriers": _rows(task, "barriers", barrier_rows)},
        metrics=metrics,
    )


def run_noop(task: Task, env: TaskEnv) -> TaskOutput:
    """Does no work (benchmarks of orchestration overhead)."""
    return TaskOutput()


SLEEP_S_ENV_VAR = "MMC_SLEEP_TASK_S"   # how long the `sleep` runner sleeps (seconds)
DEFAULT_SLEEP_S = 0.5


def run_sleep(task: Task, env: TaskEnv) -> TaskOutput:
    """Sleeps and records when (metrics) and where (meta: Ray node id, pid) it ran: scheduling tests."""
    import ray

    _maybe_fail(task)
    started = time.time()
    time.sleep(float(os.environ.get(SLEEP_S_ENV_VAR, DEFAULT_SLEEP_S)))
    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    return TaskOutput(metrics={"started_at": started, "finished_at": time.time()},
                      meta={"node_id": node_id, "pid": os.getpid(), "host": socket.gethostname()})


KIND_RUNNERS: dict[str, Callable[[Task, TaskEnv], TaskOutput]] = {
    "pretrain": run_pretrain,
    "finetune": run_finetune,
    "midpoint": run_midpoint,
    "align": run_align,
    "path_eval": run_path_eval,
}


def run_real(task: Task, env: TaskEnv) -> TaskOutput:
    _maybe_fail(task)
    return KIND_RUNNERS[task.kind](task, env)


RUNNERS: dict[str, Callable[[Task, TaskEnv], TaskOutput]] = {"real": run_real, "noop": run_noop, "sleep": run_sleep}


# ---------------------------------------------------------------- running one task inside a trial

def device_for(task: Task) -> torch.device:
    if task.resources.gpus and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}:{socket.gethostname()}"


def _format_error(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(tb[-6:])


def execute(task: Task, layout: SweepLayout, runner: str, env: TaskEnv) -> dict:
    """Run `task` here and write its outputs; returns the trial's result dict (never raises)."""
    start = time.time()
    try:
        output = RUNNERS[runner](task, env)
        if env.rank == 0:
            output.meta.setdefault("device", describe_device(env.device))
            output.meta.setdefault("duration_s", time.time() - start)
            outputs.write_outputs(layout, task, output)
            _drop_resume_state(layout, task)
        return {"status": "done", "duration_s": time.time() - start, "device": describe_device(env.device),
                "metrics": output.metrics}
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed task with its reason
        return {"status": "failed", "duration_s": time.time() - start, "error": _format_error(exc),
                "device": describe_device(env.device)}


def _drop_resume_state(layout: SweepLayout, task: Task) -> None:
    """A finished task's per-epoch state is no longer needed (a VGG-13 one is ~75 MB): delete it."""
    try:
        layout.storage.delete(layout.resume_dir(task.kind, task.id))
    except OSError:
        pass   # only disk space is at stake; the task's outputs are written and verified


def run_in_trial(task: Task, ctx) -> dict:
    """Entry point of a Ray Tune trial (see orchestrator.schedule)."""
    layout = SweepLayout(Storage(ctx.storage_uri), ctx.sweep)
    if task.resources.workers > 1 and task.kind in TRAINING_KINDS:
        from orchestrator import distributed
        return distributed.run_with_ray_train(task, ctx)
    parent_kinds = {p: ctx.graph.tasks[p].kind for p in task.parents}
    env = TaskEnv(layout=layout, device=device_for(task), data_root=ctx.data_root, parent_kinds=parent_kinds)
    if task.kind in TRAINING_KINDS and ctx.runner == "real":
        _attach_local_resume(task, env)
    return execute(task, layout, ctx.runner, env)


def _attach_local_resume(task: Task, env: TaskEnv) -> None:
    """Save the training state after every epoch so a killed driver resumes mid-task."""
    from tasks.checkpoint import checkpoint_files, read_checkpoint, CorruptCheckpointError

    layout, storage = env.layout, env.layout.storage
    paths = layout.resume_files(task.kind, task.id)

    def save(report) -> None:
        tensors, meta = train_state_tensors(report.state())
        env.resumed_curve[:] = [row for row in env.resumed_curve if row["epoch"] < report.epoch]
        env.resumed_curve.append({"epoch": report.epoch, "split": curve_split(task, report.epoch),
                                  "loss": report.loss, "acc": report.acc})
        meta["curve"] = list(env.resumed_curve)   # so a resume keeps the rows of the epochs before it
        for name, blob in checkpoint_files(tensors, meta).items():
            storage.write_bytes(paths[name], blob)

    def load():
        if not all(storage.exists(p) for p in paths.values()):
            return None
        try:
            tensors, meta = read_checkpoint({n: storage.read_bytes(p) for n, p in paths.items()})
        except CorruptCheckpointError:
            return None   # a torn resume checkpoint: start the task over
        env.resumed_curve[:] = meta.get("curve", [])
        return train_state_from_tensors(tensors, meta)

    env.on_epoch = save
    env.resume_state = load
