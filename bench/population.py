"""Population: the cost of a mechanism map of K models (K(K-1)/2 pairs), planned and run.

    python -m bench.population                  # K = 100 (4,950 pairs), then 10 more models; ~20 min busy
    python -m bench.population --models 50      # K = 50
    python -m bench.population --quick          # K = 10, seconds

The population is K pretrained models: cue proportions 0, 0.25, 0.5, 0.75, 1 x K/5 seeds, each with its
noise floor (`paths.pairs: [cue~cue:self, nocue~nocue:self]`, which also trains the models without a
population) and `population: {kinds: [pretrain]}`; every other key the built-in digits defaults. Measured:
1. planning: `mmc-sweep plan SPEC` in a fresh process (wall, imports included), and `load_spec` +
   `build_graph` in this one; the task count against 2K + K(K-1)/2;
2. three runs of one sweep through `run_sweep` with `--runner synthetic` (every result table written
   at the real task's size, nothing computed; local Ray, 2 CPUs, max_concurrent 2, MLflow on):
   a. the K models alone (the population off: K pretrain and K noise-floor path tasks),
   b. the population on (`--new-version`): the K(K-1)/2 path evaluations, the K models cached,
   c. 2 more seeds (10 more models): their 10 pretrain tasks and their 10K + 45 pairs, the rest cached;
3. the report of run b (the K x K maps, clustering, the permutation tests, the figures).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

PROPORTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=100, help="K: models of the population (a multiple of 5)")
    p.add_argument("--more-seeds", type=int, default=2, help="seeds added in the third run (5 models each)")
    p.add_argument("--no-run", action="store_true", help="planning only")
    p.add_argument("--no-mlflow", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.models = 10
    if args.models % len(PROPORTIONS):
        p.error(f"--models must be a multiple of {len(PROPORTIONS)}")
    return args


def spec_text(storage: str, seeds: int, population: bool, mlflow: bool) -> str:
    return (f"name: population-bench\nstorage: {json.dumps(storage)}\nseeds: {list(range(seeds))}\n"
            f"cue_proportions: {list(PROPORTIONS)}\nfinetune: {{methods: []}}\n"
            "paths: {pairs: [cue~cue:self, nocue~nocue:self]}\n"
            f"population: {{kinds: {'[pretrain]' if population else '[]'}}}\nmax_concurrent: 2\n"
            f"mlflow: {{enabled: {'true' if mlflow else 'false'}}}\n")


def planning(path: Path, k: int) -> dict:
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import load_spec

    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "orchestrator", "plan", str(path)], capture_output=True, text=True,
                         cwd=common.REPO, env={**os.environ, "PYTHONPATH": str(common.REPO)}, timeout=600)
    cli_s = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    start = time.perf_counter()
    spec = load_spec(path)
    loaded = time.perf_counter()
    graph = build_graph(spec)
    built = time.perf_counter()
    expected = 2 * k + k * (k - 1) // 2
    assert len(graph) == expected, (len(graph), expected)
    return {"models": k, "pairs": k * (k - 1) // 2, "tasks": len(graph), "cli_plan_s": cli_s,
            "load_spec_s": loaded - start, "build_graph_s": built - loaded,
            "cli_first_line": out.stdout.splitlines()[0]}


def one_run(spec, new_version: bool) -> dict:
    from orchestrator.run.sweep import run_sweep

    cpu0, start = time.process_time(), time.perf_counter()
    outcome = run_sweep(spec, runner=common.runner("synthetic"), num_cpus=2, report=False, new_version=new_version,
                        log=lambda line: line.startswith(("sweep `", "finished in")) and print("   ", line))
    states = outcome.state.states
    ran = {}
    for task_id, state in states.items():
        if state.status == "done":
            kind = task_id.split("-", 1)[0]
            ran[kind] = ran.get(kind, 0) + 1
    return {"wall_s": time.perf_counter() - start, "driver_cpu_s": time.process_time() - cpu0,
            "counts": outcome.counts, "ran_by_kind": ran, "load_1m": os.getloadavg()[0]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    _, env = common.start(args)
    k, seeds = args.models, args.models // len(PROPORTIONS)
    results: dict = {"environment": env, "command": common.command_line(),
                     "config": {"models": k, "seeds": seeds, "more_seeds": args.more_seeds, "mlflow": not args.no_mlflow}}
    with tempfile.TemporaryDirectory(prefix="mmc-bench-population-") as tmp:
        storage = str(Path(tmp) / "runs")
        path = Path(tmp) / "population.yaml"
        path.write_text(spec_text(storage, seeds, True, not args.no_mlflow))
        results["planning"] = planning(path, k)
        p = results["planning"]
        print(f"planning K = {k} ({p['pairs']:,} pairs, {p['tasks']:,} tasks): `mmc-sweep plan` {p['cli_plan_s']:.2f} s "
              f"(fresh process), load_spec {p['load_spec_s']:.3f} s + build_graph {p['build_graph_s']:.3f} s")
        if not args.no_run:
            from orchestrator.report.build import write_report
            from orchestrator.run.schedule import init_ray
            from orchestrator.spec.sweep_spec import load_spec

            init_ray(num_cpus=2)
            runs = {}
            for name, text, new in (
                    ("a: the K models", spec_text(storage, seeds, False, not args.no_mlflow), False),
                    ("b: + the population", spec_text(storage, seeds, True, not args.no_mlflow), True),
                    (f"c: + {args.more_seeds} seeds", spec_text(storage, seeds + args.more_seeds, True,
                                                                not args.no_mlflow), True)):
                path.write_text(text)
                print(f"run {name}")
                runs[name] = one_run(load_spec(path), new)
                r = runs[name]
                print(f"    {r['wall_s']:.1f} s, ran {r['ran_by_kind']}, counts {r['counts']}, load {r['load_1m']:.1f}")
                if name.startswith("b"):
                    from orchestrator.storage.layout import Storage, SweepLayout

                    start = time.perf_counter()
                    report = write_report(SweepLayout(Storage(storage), "population-bench"))
                    runs[name]["report_s"] = time.perf_counter() - start
                    runs[name]["report_figures"] = [Path(f).name for f in report.figures]
                    print(f"    report: {runs[name]['report_s']:.1f} s, figures {runs[name]['report_figures']}")
            results["runs"] = runs
    common.write_json("population", results, args.out, args.tag)
    return results


if __name__ == "__main__":
    main()
