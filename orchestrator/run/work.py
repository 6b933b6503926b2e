"""Turn a graph `Task` into calls of the pure-PyTorch work units in `tasks/`, and write what they return.

A runner is a function `(task, env) -> TaskOutput`, named by a key of `RUNNERS` (`real`: the science
of `KIND_RUNNERS`) or by an import path `package.module:function` (`resolve_runner`): tests and
benchmarks bring their own (`tests/support/runners.py`: no-op, sleeping, synthetic rows, fault
injection), which Ray workers import like any plugin. `execute` runs one task in this process and
writes its outputs; it never imports Ray. Which process runs a task (a Tune trial, or Ray Train
workers) is `orchestrator.run.schedule`'s choice.
"""
from __future__ import annotations

import math
import platform
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import torch

from orchestrator import vocab
from orchestrator.results import outputs, schemas, tables
from orchestrator.graph.dag import Task
from orchestrator.run.child_runs import ALPHA_STEPS
from orchestrator.storage.layout import SweepLayout
from orchestrator.results.outputs import TaskOutput
from orchestrator.run.progress import planned_epochs
from orchestrator.run.resume import ResumeLog, attach_storage_resume
from orchestrator.run.runners import plugin_runner
from orchestrator.run.task_result import TaskResult
from tasks import align as align_lib
from tasks import data as data_lib
from tasks import finetune as finetune_lib
from tasks import paths as paths_lib
from tasks.evaluate import evaluate_sets
from tasks.models import ModelSettings, build_model
from tasks.settings import from_identity
from tasks.train import DivergenceError, OptimSettings, cross_entropy_objective, fit



@dataclass
class TaskEnv:
    """Where and how a task runs: storage, device, data root, and the epoch hooks of training."""

    layout: SweepLayout
    device: torch.device
    data_root: str | None = None
    parent_kinds: dict[str, str] = field(default_factory=dict)
    on_epoch: Callable | None = None                   # called with tasks.train.EpochReport
    resume_state: Callable[[], object] = lambda: None    # returns a tasks.train.TrainState or None
    resume_log: ResumeLog | None = None                  # curve rows of the epochs before a resume
    rank: int = 0


# ---------------------------------------------------------------- helpers

def _data(config: dict, env: TaskEnv) -> data_lib.CueData:
    values = {k: v for k, v in config.items() if k != "version"}
    settings = from_identity(data_lib.DataSettings, {**values, "root": env.data_root})   # where, not what
    return data_lib.load_cue_data(settings, env.device)


def _model(config: dict, data: data_lib.CueData, seed: int | None = None) -> torch.nn.Module:
    m = from_identity(ModelSettings, {k: v for k, v in config.items() if k != "version"})
    return build_model(m.name, data.num_classes, data.in_channels, m.width, seed=seed)


def _load_state(env: TaskEnv, task_id: str) -> dict[str, torch.Tensor]:
    tensors, _meta = outputs.load_checkpoint(env.layout, env.parent_kinds[task_id], task_id)
    return tensors


def _model_with_state(config: dict, data: data_lib.CueData, state: dict) -> torch.nn.Module:
    model = _model(config, data)
    model.load_state_dict(state)
    return model


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def curve_steps(curve_rows: list[dict]) -> list[tuple]:
    """A training curve as step series, one point per epoch: `<split>_loss`, `<split>_acc` (`train_loss`,
    `llrt_acc`)."""
    return [(f"{r['split']}_{m}", int(r["epoch"]), r[m]) for r in curve_rows for m in ("loss", "acc")
            if r.get(m) is not None]


def alpha_step(alpha: float) -> int:
    """The step of a path curve's point at `alpha` (MLflow steps are integers): round(ALPHA_STEPS·α)."""
    return round(ALPHA_STEPS * float(alpha))


def rows_for(task: Task, table: str, rows: list[dict]) -> list[dict]:
    """Rows of `table`: the task's labels and settings where the table has such columns, then `rows`."""
    names = set(schemas.SCHEMAS[table].names)
    base = {"task_id": task.id, "kind": task.kind, **task.labels, **task.settings}
    return [{k: v for k, v in {**base, **row}.items() if k in names} for row in rows]


def curve_rows(task: Task, env: TaskEnv, resume, rows: list[dict]) -> list[dict]:
    """The `train_curves` rows of a training task: the epochs before a resume (`resume`), then `rows`."""
    full = env.resume_log.full_curve(resume, rows) if env.resume_log is not None else rows
    return rows_for(task, vocab.TRAIN_CURVES, [{"split": "train", **row} for row in full])


def _trained(task: Task, env: TaskEnv, model, data, resume, curve: list[dict], checkpoint: dict) -> TaskOutput:
    """The output of a training task: evaluation rows (none for a midpoint), curve, checkpoint, and the
    same numbers as MLflow metrics (per set) and step series (per epoch)."""
    rows = curve_rows(task, env, resume, curve)
    out = TaskOutput(tables={vocab.TRAIN_CURVES: rows}, checkpoint=checkpoint, steps=curve_steps(rows))
    if model is not None:
        rows = evaluate_sets(model, data.eval_sets, device=env.device)
        broken = [r["eval_set"] for r in rows if not math.isfinite(r["loss"])]
        if broken:   # weights that blew up while every training loss stayed finite: no result to build on
            raise DivergenceError(len(curve) and curve[-1]["epoch"], -1, math.nan,
                                  where=f"the trained model's loss on {', '.join(broken)}",
                                  lr="llrt_lr" if task.config.get("method") == "llrt" else "lr")
        out.tables[vocab.EVALUATIONS] = rows_for(task, vocab.EVALUATIONS, rows)
        out.metrics.update({f"eval.{r['eval_set']}.{m}": r[m] for r in rows for m in ("loss", "acc")})
    return out


def curve_split(task: Task, epoch: int) -> str:
    """The `split` of a training task's curve row for `epoch` (as the task itself labels it)."""
    if task.kind == vocab.FINETUNE:
        settings = from_identity(finetune_lib.FinetuneSettings, task.config["finetune"])
        return finetune_lib.curve_split(task.config["method"], epoch, settings)
    return "train"


# ---------------------------------------------------------------- the task kinds

def run_pretrain(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    data = _data(cfg["data"], env)
    model = _model(cfg["model"], data, seed=cfg["init_seed"]).to(env.device)
    settings = from_identity(OptimSettings, cfg["train"])
    spawn = cfg.get("spawn") or {}
    objective = cross_entropy_objective(data.train, settings.batch_size, cfg["order_seed"],
                                        spawn_seed=spawn.get("order_seed"), spawn_epoch=spawn.get("epoch", 0))
    resume = env.resume_state()
    curve = fit(model, objective, model.parameters(), settings, seed=cfg["order_seed"], device=env.device,
                on_epoch=env.on_epoch, resume=resume)
    return _trained(task, env, model, data, resume, curve, _state_dict(model))


def run_finetune(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    data = _data(cfg["data"], env)
    model = _model_with_state(cfg["model"], data, _load_state(env, cfg["pretrain"])).to(env.device)
    settings = from_identity(finetune_lib.FinetuneSettings, cfg["finetune"])
    resume = env.resume_state()
    curve = finetune_lib.finetune(model, cfg["method"], data, settings, seed=cfg["seed"], device=env.device,
                                  on_epoch=env.on_epoch, resume=resume)
    return _trained(task, env, model, data, resume, curve, _state_dict(model))


def run_midpoint(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    id_a, id_b = cfg["endpoints"]
    datas = [_data(d, env) for d in cfg["data"]]
    train = data_lib.Split(torch.cat([d.train.x for d in datas]), torch.cat([d.train.y for d in datas]))
    model = _model(cfg["model"], datas[0]).to(env.device)   # the architecture; its init is the midpoint's own
    settings = from_identity(paths_lib.MidpointSettings, cfg["train"])
    resume = env.resume_state()
    state_mid, curve = paths_lib.train_midpoint(
        model, _load_state(env, id_a), _load_state(env, id_b), train, settings,
        seed=cfg["seed"], device=env.device, on_epoch=env.on_epoch, resume=resume)
    return _trained(task, env, None, None, resume, curve, {k: v.detach().cpu() for k, v in state_mid.items()})


def run_align(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    id_a, id_b = cfg["endpoints"]
    data = _data(cfg["data"], env)
    state_b = _load_state(env, id_b)
    model_a = _model_with_state(cfg["model"], data, _load_state(env, id_a)).to(env.device)
    model_b = _model_with_state(cfg["model"], data, state_b).to(env.device)
    settings = from_identity(align_lib.AlignSettings, cfg.get("align", {}))
    x = data.train_clean.x[: settings.samples].float()
    permuted = align_lib.align(model_a, model_b, cfg["method"], x, seed=cfg["seed"])
    before = _distance(model_a.state_dict(), state_b)
    after = _distance(model_a.state_dict(), permuted)
    identity = all(torch.equal(permuted[k].cpu(), state_b[k].cpu()) for k in state_b)
    facts = {"weight_distance_before": before, "weight_distance_after": after, "identity": identity}
    return TaskOutput(checkpoint={k: v.detach().cpu() for k, v in permuted.items()},
                      metrics={"weight_distance_before": before, "weight_distance_after": after,
                               "identity": float(identity)}, meta=facts)


def _distance(state_a: dict, state_b: dict) -> float:
    total = 0.0
    for key, a in state_a.items():
        if a.is_floating_point() and "running" not in key:
            total += float(((a.float().cpu() - state_b[key].float().cpu()) ** 2).sum())
    return total ** 0.5


def run_path_eval(task: Task, env: TaskEnv) -> TaskOutput:
    cfg = task.config
    if cfg["path_kind"] == vocab.ALIGNED and cfg.get("linear") and _is_identity(env, cfg["via"]):
        return _same_as_linear(task, env, cfg["linear"])
    id_a, id_b = cfg["endpoints"]
    data = _data(cfg["data"], env)
    model = _model(cfg["model"], data).to(env.device)
    state_a, midpoint = _load_state(env, id_a), None
    if cfg["path_kind"] == vocab.QUADRATIC:
        midpoint, state_b = _load_state(env, cfg["via"]), _load_state(env, id_b)
    elif cfg["path_kind"] == vocab.ALIGNED:
        state_b = _load_state(env, cfg["via"])   # model B permuted onto A
    else:
        state_b = _load_state(env, id_b)
    settings = from_identity(paths_lib.PathSettings, cfg.get("path", {}))
    bn_a, bn_b = data.train_clean.x, None
    if cfg.get("bn_data"):        # each endpoint's own training images (`paths.bn_data` endpoints / mix)
        bn_a, bn_b = (_data(config, env).train.x for config in cfg["bn_data"])
    rows = paths_lib.evaluate_path(model, state_a, state_b, midpoint=midpoint, bn_data=bn_a, bn_data_b=bn_b,
                                   sets=data.eval_sets, settings=settings, device=env.device, seed=cfg.get("seed", 0))
    return path_output(task, rows, paths_lib.barriers(rows))


def path_output(task: Task, rows: list[dict], barrier_rows: list[dict], **meta) -> TaskOutput:
    """The output of a path evaluation: its `paths` and `barriers` rows, the barriers as MLflow metrics
    and the curves along the path as step series."""
    metrics = {f"barrier.{r['eval_set']}.{r['metric']}.{r['definition']}": r["value"] for r in barrier_rows}
    steps = [(f"path.{r['eval_set']}.{m}", alpha_step(r["alpha"]), r[m]) for r in rows
             for m in ("loss", "acc", "agree_a", "agree_b") if r.get(m) is not None]
    return TaskOutput(tables={vocab.PATHS: rows_for(task, vocab.PATHS, rows),
                              vocab.BARRIERS: rows_for(task, vocab.BARRIERS, barrier_rows)},
                      metrics=metrics, steps=steps, meta=meta)


def _is_identity(env: TaskEnv, align_id: str) -> bool:
    marker = outputs.read_marker(env.layout, env.parent_kinds[align_id], align_id) or {}
    return (marker.get("meta") or {}).get("identity") is True


PATH_COLUMNS = ("alpha", "eval_set", "loss", "acc", "n", "agree_a", "agree_b", "reliance_randimg", "reliance_randcue")


def _same_as_linear(task: Task, env: TaskEnv, linear_id: str) -> TaskOutput:
    """The aligned path when the alignment is the identity: the linear path's rows, not recomputed."""
    paths = tables.read_fragment(env.layout, vocab.PATHS, linear_id)
    rows = [{k: v for k, v in row.items() if k in PATH_COLUMNS} for row in paths.to_dict("records")]
    return path_output(task, rows, paths_lib.barriers(rows), reused_rows_of=linear_id)


# ---------------------------------------------------------------- runners

def run_real(task: Task, env: TaskEnv) -> TaskOutput:
    """The science: the task kind's function of `KIND_RUNNERS`."""
    return KIND_RUNNERS[task.kind](task, env)


KIND_RUNNERS: dict[str, Callable[[Task, TaskEnv], TaskOutput]] = {
    vocab.PRETRAIN: run_pretrain,
    vocab.FINETUNE: run_finetune,
    vocab.MIDPOINT: run_midpoint,
    vocab.ALIGN: run_align,
    vocab.PATH_EVAL: run_path_eval,
}
RUNNERS: dict[str, Callable[[Task, TaskEnv], TaskOutput]] = {vocab.REAL_RUNNER: run_real}


def resolve_runner(name: str) -> Callable[[Task, TaskEnv], TaskOutput]:
    """The runner `name`: a key of `RUNNERS`, an import path `package.module:function`, or an entry
    point of the group `runners.RUNNER_GROUP`; a `runners.RunnerError` (exit 2) names what is allowed."""
    if name in RUNNERS:
        return RUNNERS[name]
    return plugin_runner(name, RUNNERS)


# ---------------------------------------------------------------- running one task here

def device_for(task: Task) -> torch.device:
    if task.resources.gpus and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}:{socket.gethostname()}"


def format_error(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(tb[-6:])


def execute(task: Task, runner: str, env: TaskEnv) -> TaskResult:
    """Run `task` here and (on rank 0) write its outputs; never raises."""
    start = time.time()
    device = describe_device(env.device)
    try:
        output = resolve_runner(runner)(task, env)
        if env.rank == 0:
            output.meta.setdefault("inputs", outputs.inputs_of(env.layout, env.parent_kinds))   # `outputs.take_back`
            output.meta.setdefault("device", device)
            output.meta.setdefault("duration_s", time.time() - start)
            outputs.write_outputs(env.layout, task, output)
            _drop_resume_state(env.layout, task)
        return TaskResult(vocab.DONE, time.time() - start, device, output.metrics, [list(x) for x in output.steps])
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed task with its reason
        error = format_error(exc)
        if isinstance(exc, DivergenceError):   # which `lr`: of the task kind's section
            error = error.replace(exc.advice(), exc.advice(task.kind), 1)
        return TaskResult(vocab.FAILED, time.time() - start, device, error=error, error_type=type(exc).__name__)


def _drop_resume_state(layout: SweepLayout, task: Task) -> None:
    """A finished task's per-epoch state is no longer needed (a VGG-13 one is ~75 MB): delete it."""
    try:
        layout.storage.delete(layout.resume_dir(task.kind, task.id))
    except OSError:
        pass   # only disk space is at stake; the task's outputs are written and verified


def run_here(task: Task, layout: SweepLayout, runner: str, data_root: str | None,
             parent_kinds: dict[str, str]) -> TaskResult:
    """Run `task` in this process (a Tune trial), resuming a training task from its saved epoch."""
    env = TaskEnv(layout=layout, device=device_for(task), data_root=data_root, parent_kinds=parent_kinds)
    if task.kind in vocab.TRAINING_KINDS:
        env.resume_log = ResumeLog(lambda epoch: curve_split(task, epoch))
        attach_storage_resume(env, layout, task.kind, task.id, env.resume_log, epochs=planned_epochs(task))
    return execute(task, runner, env)
