"""Memory: peak RSS of each task kind of a sweep (one fresh process per task), optionally of a whole
sweep (all processes of `mmc-sweep run` summed), and peak GPU memory of a path evaluation.

    python -m bench.memory                      # default sweep's settings, one task per kind, ~1-2 min
    python -m bench.memory --quick              # smoke sweep's settings
    python -m bench.memory --whole-sweep smoke  # also run a whole sweep under Ray, sampling RSS of its process tree
    python -m bench.memory --gpu-only --train 10000 --test 5000     # GPU path evaluation (bench/gpu.sh)

Per kind: the targets are the first task of each kind (plus the cbft fine-tuning and a quadratic
path evaluation); their ancestors run first, each task in its own `python` process, so the peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) of each process belongs to that task alone (it includes
the interpreter, torch and the orchestrator imports: the baseline process, which only imports, is
reported too). Whole sweep: /proc is polled every 0.5 s and the RSS of the driver and all its
descendants (raylet, GCS, workers) is summed; shared pages count once per process, so it is an upper bound.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

from bench import common



def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--spec", default=None, help="sweep for the per-kind runs: default | smoke | PATH "
                                                "(default: default; --quick: smoke)")
    p.add_argument("--whole-sweep", default=None, help="also run this whole sweep (default | smoke | PATH) "
                                                       "and sample its process tree's RSS")
    p.add_argument("--kinds", default=None, help="comma-separated targets to measure, e.g. pretrain,path_eval "
                                                 "(default: every kind, cbft and quadratic included)")
    p.add_argument("--gpu-only", action="store_true", help="only the GPU path-evaluation measurement")
    p.add_argument("--train", type=int, default=10000, help="GPU path eval: synthetic CIFAR training images")
    p.add_argument("--test", type=int, default=5000, help="GPU path eval: test images per set")
    p.add_argument("--eval-batches", default="1024,4096", help="GPU path eval: eval batch sizes to measure")
    p.add_argument("--run-task", nargs=3, metavar=("SPEC", "STORAGE", "TASK_ID"), help=argparse_hidden())
    args = p.parse_args(argv)
    args.spec = args.spec or ("smoke" if args.quick else "default")
    return args


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


def load(spec_name: str, storage: str):
    from orchestrator.spec.sweep_spec import load_spec
    return load_spec(common.SWEEPS.get(spec_name, spec_name), [f"storage={json.dumps(str(storage))}"])


def run_one_task(spec_name: str, storage: str, task_id: str) -> None:
    """Child process: run one task whose parents are already stored; print peak RSS as JSON."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from orchestrator.run import work
    from orchestrator.graph.dag import build_graph
    from orchestrator.storage.layout import Storage, SweepLayout
    imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spec = load(spec_name, storage)
    graph = build_graph(spec)
    task = graph.tasks[task_id]
    layout = SweepLayout(Storage(spec.storage), spec.name)
    parent_kinds = {p: graph.tasks[p].kind for p in task.parents}
    start = time.perf_counter()
    result = work.run_here(task, layout, "real", spec.data_root, parent_kinds)
    print(json.dumps({"task_id": task_id, "kind": task.kind, "status": result.status,
                      "error": result.error, "seconds": time.perf_counter() - start,
                      "maxrss_mib_start": before / 1024, "maxrss_mib_imports": imported / 1024,
                      "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def targets(graph, kinds: list[str] | None = None) -> list[str]:
    """First task of each kind, the first cbft fine-tuning and the first quadratic path evaluation
    (only those named in `kinds`, e.g. "pretrain", "finetune:cbft", when given)."""
    chosen: dict[str, str] = {}
    for task_id, task in graph.tasks.items():
        chosen.setdefault(task.kind, task_id)
        if task.kind == "finetune" and task.labels.get("method") == "cbft":
            chosen.setdefault("finetune:cbft", task_id)
        if task.kind == "path_eval" and task.labels.get("path_kind") == "quadratic":
            chosen.setdefault("path_eval:quadratic", task_id)
    if kinds:
        unknown = sorted(set(kinds) - set(chosen))
        if unknown:
            raise SystemExit(f"--kinds: {unknown} not in this sweep; choose from {', '.join(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in kinds}
    return list(dict.fromkeys(chosen.values()))


def with_ancestors(graph, ids: list[str]) -> list[str]:
    needed, stack = set(), list(ids)
    while stack:
        task_id = stack.pop()
        if task_id not in needed:
            needed.add(task_id)
            stack.extend(graph.tasks[task_id].parents)
    return [t for t in graph.tasks if t in needed]          # topological (graph insertion) order


def per_kind(spec_name: str, kinds: list[str] | None = None) -> dict:
    from orchestrator.graph.dag import build_graph
    with tempfile.TemporaryDirectory(prefix="mmc-bench-mem-") as storage:
        graph = build_graph(load(spec_name, storage))
        order = with_ancestors(graph, targets(graph, kinds))
        print(f"per-kind peak RSS, sweep `{spec_name}`: {len(order)} tasks, each in a fresh process")
        rows = []
        for task_id in order:
            cmd = [sys.executable, "-m", "bench.memory", "--run-task", spec_name, storage, task_id]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=common.REPO, timeout=900)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode or not lines:
                raise RuntimeError(f"task {task_id} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
            row = json.loads(lines[-1])
            if row["status"] != "done":
                raise RuntimeError(f"task {task_id} failed: {row['error']}")
            row["labels"] = {k: v for k, v in graph.tasks[task_id].labels.items() if v is not None}
            rows.append(row)
            label = row["labels"].get("method") or row["labels"].get("path_kind") or ""
            print(f"  {row['kind']:<10} {label:<10} {row['maxrss_mib']:8.0f} MiB peak RSS  "
                  f"(after imports {row['maxrss_mib_imports']:.0f} MiB)  {row['seconds']:6.1f} s")
    by_kind: dict[str, float] = {}
    for row in rows:
        by_kind[row["kind"]] = max(by_kind.get(row["kind"], 0.0), row["maxrss_mib"])
    return {"spec": spec_name, "tasks": rows, "max_rss_mib_by_kind": by_kind,
            "imports_rss_mib": min(r["maxrss_mib_imports"] for r in rows)}


def tree_rss_kib(root_pid: int) -> int:
    """Summed VmRSS of `root_pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def whole_sweep(spec_name: str) -> dict:
    spec_path = common.SWEEPS.get(spec_name, spec_name)
    with tempfile.TemporaryDirectory(prefix="mmc-bench-sweep-") as storage:
        cmd = [sys.executable, "-m", "orchestrator", "run", *([spec_path] if spec_path else []),
               "--storage", storage, "--no-report"]
        print(f"whole sweep `{spec_name}`: {' '.join(cmd)}")
        start = time.time()
        proc = subprocess.Popen(cmd, cwd=common.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak, samples = 0, 0
        while proc.poll() is None:
            peak = max(peak, tree_rss_kib(proc.pid))
            samples += 1
            time.sleep(0.5)
        output = proc.stdout.read()
        wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed (exit {proc.returncode}):\n{output[-3000:]}")
    tail = output.strip().splitlines()[-4:]
    print("\n".join(f"  | {line}" for line in tail))
    print(f"  peak RSS of the process tree: {peak / 1024:.0f} MiB ({samples} samples, {wall:.0f} s)")
    return {"spec": spec_name, "peak_tree_rss_mib": peak / 1024, "wall_s": wall, "samples": samples,
            "output_tail": tail}


def gpu_path_eval(args) -> list[dict]:
    from tasks.models import build_model
    from tasks.paths import PathSettings, evaluate_path
    device = torch.device("cuda")
    data = common.synthetic_cifar(args.train, args.test, 0.9, seed=0, device=device)
    a = build_model("vgg13", 10, 3, seed=0).state_dict()
    b = build_model("vgg13", 10, 3, seed=1).state_dict()
    out = []
    data_bytes = sum(t.numel() * t.element_size() for s in [data.cue.train, data.cue.train_clean,
                                                            *data.cue.eval_sets.values()] for t in (s.x, s.y))
    for batch in [int(v) for v in args.eval_batches.split(",")]:
        model = build_model("vgg13", 10, 3, seed=0)
        settings = PathSettings(num_alphas=3, eval_batch_size=batch)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        evaluate_path(model, a, b, bn_data=data.cue.train_clean.x, sets=data.cue.eval_sets, settings=settings,
                      device=device)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        row = {"model": "vgg13", "eval_batch": batch, "n_train": args.train, "n_test": args.test,
               "resident_data_mib": data_bytes / 2 ** 20, "peak_allocated_mib": peak / 2 ** 20,
               "peak_above_data_mib": (peak - base) / 2 ** 20}
        print(f"  GPU path eval vgg13, eval batch {batch}: peak allocated {row['peak_allocated_mib']:.0f} MiB "
              f"(data resident {row['resident_data_mib']:.0f} MiB, path evaluation {row['peak_above_data_mib']:.0f} MiB)")
        out.append(row)
        del model
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.run_task:
        run_one_task(*args.run_task)
        return {}
    device, env = common.start(args)
    payload: dict = {"benchmark": "memory", "command": common.command_line(), "environment": env}
    if not args.gpu_only:
        payload["per_kind"] = per_kind(args.spec, args.kinds.split(",") if args.kinds else None)
        if args.whole_sweep:
            payload["whole_sweep"] = whole_sweep(args.whole_sweep)
    if torch.cuda.is_available():
        payload["gpu_path_eval"] = gpu_path_eval(args)
    else:
        print("no CUDA device: GPU memory of a path evaluation not measured")
    common.write_json("memory", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
