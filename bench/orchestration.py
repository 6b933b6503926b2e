"""Orchestration overhead per task (median, p95) and planning time of a 10,000-task sweep.

    python -m bench.orchestration               # ~1-2 min on 2 cores
    python -m bench.orchestration --quick
    python -m bench.orchestration --real smoke  # also a real sweep (default: ~5+ min)

1. planning: `build_graph` (and spec validation) on the default sweep with enough seeds for >= 10,000 tasks;
2. no-op graph: N independent no-op tasks (plus a chain of M dependent ones) straight through
   `orchestrator.run.schedule.run_graph` (Ray Tune, DagSearcher) with runner "noop";
   per-task overhead = (finish seen by the driver - start handed out by the searcher) - task time;
3. no-op sweep: the whole default sweep through `run_sweep` (tables, MLflow, no report) with runner
   "noop"; overhead from the `tasks` table: finished_at - started_at - duration_s;
4. (--real) a real sweep through `run_sweep`, same measure.
Ray start-up is timed separately and not part of any per-task figure.
"""
from __future__ import annotations


import json
import math
import statistics
import tempfile
import time

from bench import common



def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=200, help="independent no-op tasks")
    p.add_argument("--chain", type=int, default=30, help="no-op tasks in a dependency chain")
    p.add_argument("--plan-tasks", type=int, default=10000, help="size of the planned sweep")
    p.add_argument("--noop-sweep", default="default", help="sweep run with the noop runner (default | smoke | "
                                                           "PATH | none)")
    p.add_argument("--real", default=None, help="also run this sweep for real (smoke | default | PATH)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--max-concurrent", type=int, default=2)
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.chain, args.plan_tasks = min(args.tasks, 10), min(args.chain, 3), min(args.plan_tasks, 1000)
        args.noop_sweep = "none" if args.noop_sweep == "default" else args.noop_sweep
        args.repeats = args.repeats or 1
    args.repeats = args.repeats or 3
    return args


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def stats(values: list[float]) -> dict:
    return {"n": len(values), "median_s": statistics.median(values) if values else None,
            "p95_s": percentile(values, 0.95), "max_s": max(values) if values else None}


def load(name: str, **update):
    """A shipped sweep (or spec file) with top-level overrides, e.g. `load("default", seeds=[0, 1])`."""
    from orchestrator.spec.sweep_spec import load_spec
    return load_spec(common.SWEEPS.get(name, name), [f"{k}={json.dumps(v)}" for k, v in update.items()])


# --------------------------------------------------------------------------- planning

def planning(target: int, repeats: int) -> dict:
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import dump_spec, parse_spec
    seeds = 3
    while len(build_graph(load("default", seeds=list(range(seeds))))) < target:
        seeds = max(seeds + 1, int(seeds * target / len(build_graph(load("default", seeds=list(range(seeds)))))))
    spec = load("default", seeds=list(range(seeds)))
    text = dump_spec(spec)
    times, validate = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        parse_spec(text)
        validate.append(time.perf_counter() - start)
        start = time.perf_counter()
        graph = build_graph(spec)
        times.append(time.perf_counter() - start)
    print(f"planning: {len(graph)} tasks ({seeds} seeds of the default sweep): build_graph median "
          f"{common.median(times):.3f} s, spec validation {common.median(validate):.3f} s")
    return {"tasks": len(graph), "seeds": seeds, "counts": graph.counts(), "build_graph_s": common.summary(times),
            "validate_spec_s": common.summary(validate)}


# --------------------------------------------------------------------------- no-op graph through run_graph

def noop_graph(n_independent: int, n_chain: int):
    from orchestrator.graph.dag import LABEL_KEYS, Graph, Resources, Task
    tasks: dict = {}
    labels = {k: None for k in LABEL_KEYS}
    for i in range(n_independent):
        t = Task("pretrain", {"bench_noop": i}, (), labels, Resources(cpus=1))
        tasks[t.id] = t
    previous: tuple[str, ...] = ()
    for i in range(n_chain):
        t = Task("pretrain", {"bench_chain": i}, previous, labels, Resources(cpus=1))
        tasks[t.id] = t
        previous = (t.id,)
    return Graph(tasks)


def run_noop_graph(n_independent: int, n_chain: int, max_concurrent: int) -> dict:
    from orchestrator.storage.layout import Storage, SweepLayout
    from orchestrator.run.schedule import TrialContext, run_graph
    from orchestrator.run.state import ProgressPrinter, SweepState
    graph = noop_graph(n_independent, n_chain)
    finished_at: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mmc-bench-orch-") as storage:
        layout = SweepLayout(Storage(storage), "bench-noop")
        state = SweepState(graph)
        ctx = TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep="bench-noop",
                           runner=common.runner("noop"))
        state.subscribe(lambda task_id, before, after: finished_at.setdefault(task_id, time.time())
                        if before.status == "running" and after.status in ("done", "failed") else None)
        start = time.time()
        run_graph(state, layout, ctx, max_concurrent=max_concurrent,
                  progress=ProgressPrinter(state, max_concurrent, interval_s=1e9), run_name="bench-noop")
        wall = time.time() - start
    overhead, chain_gaps = [], []
    first = sorted(state.states.items(), key=lambda kv: kv[1].started_at or 0)[:max_concurrent]
    cold = {task_id for task_id, _ in first}          # their trials also start the Ray worker processes
    steady = []
    chain_ids = [t for t, task in graph.tasks.items() if "bench_chain" in task.config]
    for task_id, s in state.states.items():
        if task_id in finished_at and s.started_at is not None:
            task_s = (s.result.duration_s if s.result else 0.0) or 0.0
            overhead.append(finished_at[task_id] - s.started_at - task_s)
            if task_id not in cold:
                steady.append(overhead[-1])
    for parent, child in zip(chain_ids, chain_ids[1:]):
        if parent in finished_at and state.states[child].started_at:
            chain_gaps.append(state.states[child].started_at - finished_at[parent])
    done = sum(1 for s in state.states.values() if s.status == "done")
    result = {"tasks": len(graph), "done": done, "wall_s": wall, "wall_per_task_s": wall / max(done, 1),
              "overhead": stats(overhead), "overhead_without_first_trials": stats(steady), "chain_release_gap": stats(chain_gaps), "max_concurrent": max_concurrent}
    print(f"no-op graph: {done}/{len(graph)} done in {wall:.1f} s ({result['wall_per_task_s'] * 1e3:.0f} ms/task "
          f"wall at concurrency {max_concurrent}); per-task overhead median "
          f"{result['overhead']['median_s'] * 1e3:.0f} ms, p95 {result['overhead']['p95_s'] * 1e3:.0f} ms "
          f"(without the {len(cold)} first trials, which start Ray's workers: p95 "
          f"{_ms(result['overhead_without_first_trials']['p95_s'])}); "
          f"chain: parent finished -> child started median {_ms(result['chain_release_gap']['median_s'])}")
    return result


def _ms(value) -> str:
    return "n/a" if value is None else f"{value * 1e3:.0f} ms"


# --------------------------------------------------------------------------- sweeps through run_sweep

def run_sweep_overhead(name: str, runner: str, num_cpus: int) -> dict:
    import pandas as pd

    from orchestrator.results import tables
    from orchestrator.run.sweep import run_sweep
    with tempfile.TemporaryDirectory(prefix="mmc-bench-sweep-") as storage:
        spec = load(name, storage=storage)
        log_lines: list[str] = []
        start = time.time()
        outcome = run_sweep(spec, runner=common.runner(runner), num_cpus=num_cpus, report=False,
                            log=log_lines.append)
        wall = time.time() - start
        table = tables.read_table(outcome.layout, "tasks")
    table = table[table["status"] == "finished"]
    held = pd.to_datetime(table["finished_at"], utc=True) - pd.to_datetime(table["started_at"], utc=True)
    overhead = list(held.dt.total_seconds() - table["duration_s"].astype(float))
    task_s = list(table["duration_s"].astype(float))
    result = {"sweep": name, "runner": runner, "tasks": int(len(table)), "wall_s": wall,
              "wall_per_task_s": wall / max(len(table), 1), "task_time_sum_s": float(sum(task_s)),
              "overhead": stats(overhead), "counts": outcome.counts}
    print(f"sweep `{name}` ({runner} runner): {len(table)} tasks in {wall:.1f} s (incl. Ray start, MLflow, tables); "
          f"per-task overhead median {_ms(result['overhead']['median_s'])}, p95 {_ms(result['overhead']['p95_s'])}; "
          f"task time total {result['task_time_sum_s']:.1f} s")
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    env = common.environment()
    print(f"{env['cpu']}; torch {env['torch']}; load {env['loadavg_1m']}")
    payload: dict = {"benchmark": "orchestration", "command": common.command_line(), "environment": env}
    payload["planning"] = planning(args.plan_tasks, args.repeats)

    import ray
    from orchestrator.run.schedule import init_ray
    start = time.time()
    init_ray(num_cpus=args.num_cpus)
    payload["ray_init_s"] = time.time() - start
    print(f"ray.init: {payload['ray_init_s']:.1f} s")
    try:
        payload["noop_graph"] = run_noop_graph(args.tasks, args.chain, args.max_concurrent)
        if args.noop_sweep != "none":
            payload["noop_sweep"] = run_sweep_overhead(args.noop_sweep, "noop", args.num_cpus)
        if args.real:
            payload["real_sweep"] = run_sweep_overhead(args.real, "real", args.num_cpus)
    finally:
        ray.shutdown()
    common.write_json("orchestration", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
