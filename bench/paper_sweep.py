"""The paper's sweep timed task by task, and its wall time projected (issue 27.3).

    python -m bench.paper_sweep                  # CUDA when available (bench/gpu.sh runs it); full CIFAR sizes
    python -m bench.paper_sweep --quick          # a smoke run on the CPU: width-4 VGG-13, 700 images, 3 alphas

Every task kind of `sweeps/cifar10_vgg13.yaml` (pretraining, each fine-tuning method, the midpoint, each
alignment, each path kind) runs once through `orchestrator.run.work.run_here`, as a worker runs it, on
CIFAR-10-shaped synthetic files written in the published format (`cifar-10-batches-py/`, 50,000 training
images with the 5,000 validation images carved from them, 10,000 test images) with few epochs (`--epochs`).
Each task of the whole sweep (534 tasks) is then projected from the run of its role: the measured cost of
what is not an epoch (loading, evaluation, writing), plus for each phase its first epoch as measured and its
other planned epochs at the pace of the phase's later measured epochs (an epoch: its `train_curves` time plus
its end-of-epoch checkpoint and records, timed around `fit`'s callback; llrt's and lpft's head-only epochs,
cbft's warm-up epochs and the rest are told apart; a first epoch pays its phase's warm-up). Alignment and path evaluation have no epochs: their measured time is theirs.

The sweep's wall time on G GPUs is bounded, not simulated: at least the longest chain of dependent tasks
(the critical path) and at least the sum of each task's time times its GPU share (`resources.<kind>.gpus`)
over G, which holds if tasks packed on one GPU each ran as fast as alone; at most the critical path plus
the sum of the tasks' times over G, which holds if packing gained nothing (tasks sharing a GPU split its
speed) and the scheduler kept the GPUs busy. The time of one task alone on the GPU is what is measured.

With sizes below the paper's (`--quick`, `--images`, `--test`), the projection is of that smaller sweep.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.memory import with_ancestors

SPEC = common.REPO / "sweeps" / "cifar10_vgg13.yaml"
GPU_COUNTS = (1, 8)
CIFAR_DIR = "cifar-10-batches-py"
SMALL = ["align.samples=64", "paths.bn_reset_samples=64",
         "paths.num_alphas=3", "paths.eval_batch_size=256", "finetune.clean_subset=64", "finetune.batch_size=32",
         "pretrain.batch_size=64", "midpoint.batch_size=64"]


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=50_000, help="training images of the synthetic CIFAR-10 files "
                                                              "(the validation images are carved from them)")
    p.add_argument("--test", type=int, default=10_000, help="test images of the synthetic CIFAR-10 files")
    p.add_argument("--epochs", type=int, default=2, help="epochs run per training phase (cbft: its warm-up "
                                                         "epochs, then this many more; lpft and the fine-tuning "
                                                         "methods: one more than this in their all-weights phase)")
    p.add_argument("--gpus", default=",".join(map(str, GPU_COUNTS)), help="GPU counts to bound the wall time on")
    p.add_argument("--small", action="store_true", help="--quick's settings (few samples, 3 alphas) at the sizes "
                                                        "given: a check of the projection on the CPU")
    p.add_argument("--width", type=int, default=None, help="VGG-13 width (default: the spec's, 64; --quick: 4)")
    p.add_argument("--packing", type=int, default=0, help="also run this many path evaluations at once, each in a "
                                                          "process of its own, against one after another (0: not)")
    p.add_argument("--run-task", nargs=3, metavar=("OVERRIDES", "TASK_ID", "START_AT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, least in (("epochs", 1), ("packing", 0), ("images", 10), ("test", 1)):
        if getattr(args, name) < least:
            p.error(f"--{name}: {getattr(args, name)} is not allowed; at least {least}")
    if args.quick:
        args.images, args.test, args.small, args.width = 700, 100, True, args.width or 4
    return args


def write_cifar10(root: Path, images: int, test: int, seed: int = 0) -> None:
    """Synthetic CIFAR-10 in the published python format (`data_batch_1`-`5`, `test_batch`): a smooth colour
    pattern per class plus noise, uint8, as `tasks.datasets.read_cifar_batch` reads the real files."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((10, 3, 4, 4))
    patterns = patterns.repeat(8, axis=2).repeat(8, axis=3)          # 32 x 32, blocky
    folder = root / CIFAR_DIR
    folder.mkdir(parents=True, exist_ok=True)

    def batch(path: Path, n: int) -> None:
        labels = rng.integers(0, 10, n)
        x = (0.5 * patterns[labels] + 0.5 * rng.random((n, 3, 32, 32))) * 255
        data = x.round().clip(0, 255).astype(np.uint8).reshape(n, 3 * 32 * 32)
        path.write_bytes(pickle.dumps({b"data": data, b"labels": [int(v) for v in labels]}, protocol=2))

    shares = [images // 5 + (1 if i < images % 5 else 0) for i in range(5)]
    for i, n in enumerate(shares, start=1):
        batch(folder / f"data_batch_{i}", n)
    batch(folder / "test_batch", test)


def measured_overrides(epochs: int) -> list[str]:
    """The measured runs' epochs: `epochs` per phase; cbft keeps its warm-up and trains `epochs` more."""
    return [f"pretrain.epochs={epochs}", f"midpoint.epochs={epochs}", f"finetune.llrt_epochs={epochs}",
            f"finetune.epochs={epochs + 1}", "finetune.warmup_epochs=1"]


def role(task) -> str:
    """What a task's cost depends on: its kind, and its method, path kind or alignment."""
    labels = task.labels
    if task.kind == "finetune":
        return f"finetune:{labels.get('method')}"
    if task.kind == "align":
        return f"align:{task.config.get('method')}"
    if task.kind == "path_eval":
        return f"path_eval:{labels.get('path_kind')}"
    return task.kind


def targets(graph) -> dict[str, str]:
    """The first task of every role (a spawned pretraining is a pretraining)."""
    chosen: dict[str, str] = {}
    for task_id, task in graph.tasks.items():
        chosen.setdefault(role(task), task_id)
    return chosen


_AFTER_EPOCH_S: list[float] = []     # seconds of each end-of-epoch callback of the task being run


@contextlib.contextmanager
def epoch_callbacks_timed():
    """Within the block, every `fit` the tasks call times its `on_epoch` callback (the epoch's checkpoint,
    progress and curve rows, which an epoch's recorded `duration_s` leaves out) into `_AFTER_EPOCH_S`; the
    modules' own `fit` is put back afterwards."""
    import orchestrator.run.work
    import tasks.finetune
    import tasks.paths
    import tasks.train

    def timed(fit):
        def fit_timing_its_callback(*args, on_epoch=None, **kwargs):
            if on_epoch is not None:
                callback = on_epoch

                def on_epoch(report):
                    start = time.perf_counter()
                    callback(report)
                    _AFTER_EPOCH_S.append(time.perf_counter() - start)
            return fit(*args, on_epoch=on_epoch, **kwargs)
        return fit_timing_its_callback
    modules = (orchestrator.run.work, tasks.finetune, tasks.paths)
    saved = [module.fit for module in modules]
    for module in modules:
        module.fit = timed(tasks.train.fit)
    try:
        yield
    finally:
        for module, fit in zip(modules, saved):
            module.fit = fit


def epoch_seconds(layout, task_id: str, after_epoch_s: list[float]) -> list[float]:
    """Seconds of each epoch of a training task, in order: its `train_curves` rows summed per epoch, plus
    the time of its end-of-epoch callback (`after_epoch_s`, one per epoch)."""
    from orchestrator import vocab
    from orchestrator.results import tables

    curve = tables.read_fragment(layout, vocab.TRAIN_CURVES, task_id)
    per_epoch = curve.dropna(subset=["duration_s"]).groupby("epoch")["duration_s"].sum().sort_index()
    if len(after_epoch_s) != len(per_epoch):
        raise RuntimeError(f"{task_id}: {len(per_epoch)} epochs in its curve, {len(after_epoch_s)} callbacks timed")
    return [float(v) + after for v, after in zip(per_epoch, after_epoch_s)]


def phases(role_name: str, settings: dict) -> list[tuple[str, int]]:
    """A training role's phases in order, each with its epochs (`settings`: the task's `<section>.<field>`)."""
    if role_name in ("pretrain", "midpoint"):
        return [("epoch", int(settings[f"{role_name}.epochs"]))]
    method = role_name.split(":", 1)[1]      # a task's settings are those its method reads
    if method == "llrt":
        return [("head-only epoch", int(settings["finetune.llrt_epochs"]))]
    epochs = int(settings["finetune.epochs"])
    if method == "lpft":
        return [("head-only epoch", int(settings["finetune.llrt_epochs"])), ("epoch", epochs)]
    if method == "cbft":
        warmup = min(int(settings["finetune.warmup_epochs"]), epochs)
        return [("warm-up epoch", warmup), ("epoch", epochs - warmup)]
    return [("epoch", epochs)]


def cost_model(role_name: str, wall_s: float, epochs_s: list[float], settings: dict) -> dict:
    """What a role costs: `fixed_s` (the run's time outside its epochs) and seconds per epoch of each phase,
    from a measured run whose phases had the epochs `phases(role_name, settings)` gives."""
    if role_name.split(":")[0] not in ("pretrain", "midpoint", "finetune"):
        return {"fixed_s": wall_s, "per_epoch_s": {}}
    per_phase: dict[str, list[float]] = {}
    start = 0
    for name, n in phases(role_name, settings):
        per_phase.setdefault(name, []).extend(epochs_s[start:start + n])
        start += n
    if start != len(epochs_s):
        raise RuntimeError(f"{role_name}: {len(epochs_s)} epochs in its curve, its phases say {start}")
    return {"fixed_s": max(0.0, wall_s - sum(epochs_s)),
            "per_epoch_s": {name: {"first_s": v[0], "steady_s": statistics.mean(v[1:]) if len(v) > 1 else v[0]}
                            for name, v in per_phase.items() if v}}


def projected_seconds(role_name: str, model: dict, settings: dict) -> float:
    """One task's projected time: its role's fixed cost plus its planned epochs of each phase, the first of a
    phase as measured (it pays the phase's warm-up: allocations, kernels chosen) and the rest at the measured
    steady pace (the mean of the phase's later epochs; the first, where only one was run)."""
    if not model["per_epoch_s"]:
        return model["fixed_s"]
    total = model["fixed_s"]
    for name, n in phases(role_name, settings):
        if n:
            epoch = model["per_epoch_s"][name]
            total += epoch["first_s"] + (n - 1) * epoch["steady_s"]
    return total


def critical_path_s(graph, seconds: dict[str, float]) -> float:
    """The longest chain of dependent tasks (graph insertion order is topological)."""
    finish: dict[str, float] = {}
    for task_id, task in graph.tasks.items():
        finish[task_id] = seconds[task_id] + max((finish[p] for p in task.parents), default=0.0)
    return max(finish.values(), default=0.0)


def bounds(graph, seconds: dict[str, float], gpu_counts) -> dict:
    """The wall-time bounds of the sweep on each GPU count (the module's docstring)."""
    critical = critical_path_s(graph, seconds)
    serial = sum(seconds.values())
    shared = sum(seconds[t] * (task.resources.gpus or 1.0) for t, task in graph.tasks.items())
    return {"critical_path_s": critical, "serial_s": serial, "gpu_share_weighted_s": shared,
            "wall_s": {str(g): {"at_least": max(critical, shared / g), "at_most": critical + serial / g}
                       for g in gpu_counts}}


def run_task_child(overrides: list[str], task_id: str, start_at: float) -> None:
    """A process of `measure_packing`: plan the measured sweep, wait until `start_at` (epoch seconds; 0: do
    not wait), run one task whose parents are stored, print when it was ready, started and ended."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.run import work
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.storage.layout import Storage, SweepLayout

    spec = load_spec(str(SPEC), overrides)
    graph = build_graph(spec)
    task = graph.tasks[task_id]
    ready = time.time()
    time.sleep(max(0.0, start_at - ready))
    start = time.time()
    result = work.run_here(task, SweepLayout(Storage(spec.storage), spec.name), "real", spec.data_root,
                           {p: graph.tasks[p].kind for p in task.parents})
    common.sync(work.device_for(task))
    print(json.dumps({"task_id": task_id, "status": result.status, "error": result.error, "ready": ready,
                      "start": start, "end": time.time()}))


def measure_packing(overrides: list[str], graph, done: set[str], k: int) -> dict:
    """`k` path evaluations whose parents are stored, each in a process of its own (as Ray's workers share a
    GPU at `gpus: 1/k`): one after another, then all at once (started together once every process is ready).
    `speedup`: their times one after another over the span of the runs at once (k: packing loses nothing;
    1: it gains nothing)."""
    ids = [t for t, task in graph.tasks.items() if task.kind == "path_eval" and set(task.parents) <= done][:k]
    if len(ids) < k:
        return {"skipped": f"{len(ids)} path evaluations have their parents stored, {k} asked for"}

    def spawn(task_id: str, start_at: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "bench.paper_sweep", "--run-task", json.dumps(overrides),
                                 task_id, repr(start_at)], cwd=common.REPO, stdout=subprocess.PIPE, text=True)

    def result(proc: subprocess.Popen) -> dict:
        out, _ = proc.communicate(timeout=1800)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        row = json.loads(lines[-1]) if lines else {}
        if proc.returncode or row.get("status") != "done":
            raise SystemExit(f"a packed path evaluation failed (exit {proc.returncode}): {row.get('error')}")
        return row

    alone = []
    for task_id in ids:
        launched = time.time()
        row = result(spawn(task_id, 0.0))
        alone.append({**row, "launched": launched})
    wait = max(r["ready"] - r["launched"] for r in alone)
    start_at = time.time() + 2 * wait + 1.0            # every process ready by then
    together = [result(proc) for proc in [spawn(t, start_at) for t in ids]]
    one_after_another = sum(r["end"] - r["start"] for r in alone)
    span = max(r["end"] for r in together) - min(r["start"] for r in together)
    return {"tasks": ids, "alone_s": [r["end"] - r["start"] for r in alone],
            "together_s": [r["end"] - r["start"] for r in together], "together_span_s": span,
            "starts_spread_s": max(r["start"] for r in together) - min(r["start"] for r in together),
            "speedup": one_after_another / span}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.run_task:
        overrides, task_id, start_at = args.run_task
        run_task_child(json.loads(overrides), task_id, float(start_at))
        return {}
    device, env = common.start(args)
    from orchestrator.graph.dag import build_graph
    from orchestrator.run import work
    from orchestrator.spec.schema import SpecError
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.storage.layout import Storage, SweepLayout

    reduced = [*(SMALL if args.small else []),
             *([f'models=[{{"name": "vgg13", "width": {args.width}}}]'] if args.width else [])]
    with tempfile.TemporaryDirectory(prefix="mmc-bench-paper-") as tmp:
        root = Path(tmp) / "data"
        started = time.perf_counter()
        write_cifar10(root, args.images, args.test)
        print(f"synthetic CIFAR-10 files: {args.images} + {args.test} images in {time.perf_counter() - started:.1f} s")
        where = [f"data.root={json.dumps(str(root))}", f"storage={json.dumps(str(Path(tmp) / 'runs'))}"]
        try:
            planned_spec = load_spec(str(SPEC), [*where, *reduced])
        except SpecError as exc:               # e.g. sizes too small for the spec's samples: say which
            raise SystemExit(f"error: {exc}\n(--small takes the spec's sample counts down with the sizes)") from None
        planned = build_graph(planned_spec)
        # a spawned pretraining (`spawn@K`) trains all its epochs itself: measured as any pretraining, whose
        # few measured epochs could not share K of them
        pairs = [p for p in planned_spec.pairs if ":spawn@" not in p]
        overrides = [*where, *reduced, *measured_overrides(args.epochs), f"paths.pairs={json.dumps(pairs)}"]
        measured_spec = load_spec(str(SPEC), overrides)
        graph = build_graph(measured_spec)
        layout = SweepLayout(Storage(measured_spec.storage), measured_spec.name)
        chosen = targets(graph)
        order = with_ancestors(graph, chosen.values())
        print(f"{len(planned.tasks)} tasks planned ({planned.counts()}); measuring {len(chosen)} roles "
              f"with {len(order)} tasks on {device}")
        wall: dict[str, float] = {}
        after_epoch: dict[str, list[float]] = {}
        for task_id in order:
            task = graph.tasks[task_id]
            _AFTER_EPOCH_S.clear()
            start = time.perf_counter()
            with epoch_callbacks_timed():
                result = work.run_here(task, layout, "real", measured_spec.data_root,
                                       {p: graph.tasks[p].kind for p in task.parents})
                common.sync(device)
            wall[task_id] = time.perf_counter() - start
            after_epoch[task_id] = list(_AFTER_EPOCH_S)
            if result.status != "done":
                hint = "" if args.small or args.images >= 50_000 else \
                    "\n(with fewer images than the paper's, --small takes the spec's sample counts down too)"
                raise SystemExit(f"{task_id} ({role(task)}) failed: {result.error}{hint}")
            print(f"  {role(task):<22} {wall[task_id]:8.2f} s")
        roles = {}
        for task_id in order:                    # each role's last task run: the first one paid the start-up
            chosen[role(graph.tasks[task_id])] = task_id
        for name, task_id in chosen.items():
            task = graph.tasks[task_id]
            epochs = (epoch_seconds(layout, task_id, after_epoch[task_id])
                      if task.kind in ("pretrain", "midpoint", "finetune") else [])
            roles[name] = {"task_id": task_id, "measured_s": wall[task_id], "epochs_s": epochs,
                           **cost_model(name, wall[task_id], epochs, task.settings)}
        packing = measure_packing(overrides, graph, set(order), args.packing) if args.packing else None
    seconds = {t: projected_seconds(role(task), roles[role(task)], task.settings) for t, task in planned.tasks.items()}
    per_role: dict[str, dict] = {}
    for task_id, task in planned.tasks.items():
        row = per_role.setdefault(role(task), {"tasks": 0, "projected_s_per_task": seconds[task_id], "total_s": 0.0})
        row["tasks"] += 1
        row["total_s"] += seconds[task_id]
    sweep = bounds(planned, seconds, [int(g) for g in args.gpus.split(",")])
    print(f"\n{'role':<22} {'tasks':>5} {'measured s':>10} {'projected s/task':>16} {'total h':>8}")
    for name, row in per_role.items():
        print(f"{name:<22} {row['tasks']:>5} {roles[name]['measured_s']:>10.2f} {row['projected_s_per_task']:>16.1f} "
              f"{row['total_s'] / 3600:>8.2f}")
    print(f"\nwhole sweep: {sweep['serial_s'] / 3600:.2f} h of tasks one after another; critical path "
          f"{sweep['critical_path_s'] / 60:.1f} min")
    unit = "GPU(s)" if device.type == "cuda" else f"device(s) like this run's ({device})"
    for g, w in sweep["wall_s"].items():
        print(f"  on {g} {unit}: between {w['at_least'] / 3600:.2f} h and {w['at_most'] / 3600:.2f} h")
    if packing and "speedup" in packing:
        print(f"{args.packing} path evaluations at once, a process each: {packing['together_span_s']:.2f} s against "
              f"{sum(packing['alone_s']):.2f} s one after another ({packing['speedup']:.2f}x; "
              f"{args.packing}x if packing lost nothing)")
    elif packing:
        print(f"packing not measured: {packing['skipped']}")
    payload = {"benchmark": "paper_sweep", "command": common.command_line(), "environment": env,
               "spec": str(SPEC.relative_to(common.REPO)),
               "sizes": {"images": args.images, "test": args.test, "small": args.small, "width": args.width,
                         "epochs_run": args.epochs},
               "paper_sizes": not args.small and not args.width and args.images == 50_000 and args.test == 10_000,
               "roles": roles, "per_role": per_role, "sweep": sweep, "packing": packing}
    common.write_json("paper_sweep", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
