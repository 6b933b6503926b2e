"""Object store cost: requests (PUT/GET/HEAD/LIST/DELETE/POST) and bytes per task of a synthetic sweep on S3,
against the same sweep on local storage.

    python -m bench.object_store                   # ~200 tasks (6 seeds of the default sweep)
    python -m bench.object_store --tasks 1000
    python -m bench.object_store --quick           # 1 seed (36 tasks)

The S3 server is moto's, on 127.0.0.1 (tests/support/s3_server.py: credentials checked, one line per
HTTP request in its log, which is what is counted). Both sweeps run in this process on one local Ray
(2 CPUs, max_concurrent 2) with `--runner synthetic` (every result table written at the real task's sizes,
no checkpoint), MLflow off, no report: what is counted is the sweep's own traffic: spec, plan, lock and
its renewals, `done.json` markers, the `tasks` table's batches, fragments, compaction and its manifest,
and Ray Tune's experiment state (through the storage's file system). Requests are counted in three phases:
`run` (the first run, to the end of its compaction), `rerun` (the same command again: every task cached)
and the total. Bytes are the objects left on the bucket and the files left in the local directory.

LIST requests are of two sorts: probes (`max-keys=1`: pyarrow asks whether a key it did not find is a
"directory"; one per missing key looked up: a task's `done.json` before it runs, Ray Tune's `result.json` of
each trial) and listings (a prefix's keys: a table's fragments, the manifests). The bound checked (exit 1 if
broken): at most MAX_REQUESTS_PER_TASK requests per task in the first run and MAX_RERUN_REQUESTS_PER_TASK in
the cached rerun, at most MAX_PROBES_PER_TASK probes per task, and listings that do not grow with the sweep:
no prefix under `results/` listed more than MAX_TABLE_LISTS times in a run (none per task).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path

from bench import common

MAX_REQUESTS_PER_TASK = 60          # measured 26-50 (it grows with the run's wall time: Ray Tune's syncs)
MAX_RERUN_REQUESTS_PER_TASK = 30    # measured 14-28 (28: an uncompacted sweep, see BENCHMARKS.md)
MAX_PROBES_PER_TASK = 6.0         # measured 3.2-4.4 (4.4: 48 tasks)
MAX_TABLE_LISTS = 20


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=200, help="sweep size (tasks; rounded to whole seeds)")
    return p.parse_args(argv)


def _listed_prefix(request) -> str:
    query = urllib.parse.parse_qs(request.query)
    return query.get("prefix", [""])[0]


def _is_probe(request) -> bool:
    return urllib.parse.parse_qs(request.query).get("max-keys") == ["1"]


def _phase(server, bucket: str, since: int, tasks: int) -> tuple[dict, int]:
    requests = server.requests(bucket)[since:]
    kinds = Counter(r.kind for r in requests)
    lists = Counter(_listed_prefix(r) for r in requests if r.kind == "LIST" and not _is_probe(r))
    probes = sum(1 for r in requests if r.kind == "LIST" and _is_probe(r))
    table_lists = {p: n for p, n in lists.items() if "/results/" in p}
    figures = {"requests": len(requests), "by_kind": dict(sorted(kinds.items())),
               "per_task": round(len(requests) / max(tasks, 1), 2),
               "per_task_by_kind": {k: round(v / max(tasks, 1), 3) for k, v in sorted(kinds.items())},
               "probes_per_task": round(probes / max(tasks, 1), 3), "listings": sum(lists.values()),
               "table_prefix_lists": table_lists}
    return figures, len(server.requests(bucket))


def _local_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import ray

    from bench.scale import seeds_for
    from orchestrator.run.sweep import run_sweep
    from orchestrator.spec.sweep_spec import load_spec
    from tests.support.s3_server import S3Server, moto_problem

    problem = moto_problem()
    if problem:
        sys.exit(f"error: {problem}")
    seeds = 1 if args.quick else seeds_for(args.tasks)
    os.environ.setdefault("MMC_PROGRESS_INTERVAL_S", "60")
    work = Path(tempfile.mkdtemp(prefix="mmc-bench-s3-", dir="/tmp"))
    server = S3Server(work).start()
    result: dict = {"environment": common.environment(), "command": common.command_line(), "seeds": seeds}
    try:
        bucket = server.new_bucket("bench")
        uri = server.storage_uri(bucket)
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 configure_logging=True, logging_level="WARNING", _temp_dir=str(work / "ray"))
        common_overrides = [f"seeds={list(range(seeds))}", "name=cost", "max_concurrent=2", "mlflow.enabled=false"]
        runner = common.runner("synthetic")

        def run(storage: str) -> tuple[object, float]:
            spec = load_spec(None, [*common_overrides, f"storage={json.dumps(storage)}"])
            start = time.perf_counter()
            outcome = run_sweep(spec, runner=runner, num_cpus=2, report=False, log=lambda line: None)
            return outcome, time.perf_counter() - start

        local_root = work / "local"
        local, local_s = run(str(local_root))
        tasks = len(local.state.states)
        files, size = _local_bytes(local_root / "cost")
        result["local"] = {"wall_s": round(local_s, 1), "files": files, "bytes": size}

        since = len(server.requests(bucket))
        first, first_s = run(uri)
        assert first.ok and len(first.state.states) == tasks, first.counts
        result["s3_run"], since = _phase(server, bucket, since, tasks)
        result["s3_run"]["wall_s"] = round(first_s, 1)
        again, again_s = run(uri)
        assert again.counts.get("cached") == tasks, again.counts
        result["s3_rerun"], since = _phase(server, bucket, since, tasks)
        result["s3_rerun"]["wall_s"] = round(again_s, 1)
        objects = server.objects(bucket)
        result["s3"] = {"objects": len(objects), "bytes": sum(objects.values())}
        result["tasks"] = tasks
    finally:
        if ray.is_initialized():
            ray.shutdown()
        server.stop()
    problems = []
    for phase, most in (("s3_run", MAX_REQUESTS_PER_TASK), ("s3_rerun", MAX_RERUN_REQUESTS_PER_TASK)):
        figures = result[phase]
        if figures["per_task"] > most:
            problems.append(f"{phase}: {figures['per_task']} requests per task > {most}")
        if figures["probes_per_task"] > MAX_PROBES_PER_TASK:
            problems.append(f"{phase}: {figures['probes_per_task']} LIST probes per task > {MAX_PROBES_PER_TASK}")
        for prefix, n in figures["table_prefix_lists"].items():
            if n > MAX_TABLE_LISTS:
                problems.append(f"{phase}: {prefix} listed {n} times in one run (> {MAX_TABLE_LISTS})")
    result["bound"] = {"max_requests_per_task": MAX_REQUESTS_PER_TASK,
                       "max_rerun_requests_per_task": MAX_RERUN_REQUESTS_PER_TASK,
                       "max_probes_per_task": MAX_PROBES_PER_TASK, "max_table_prefix_lists": MAX_TABLE_LISTS,
                       "problems": problems}
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=1))
    common.write_json("object_store", result, args.out, args.tag)
    if problems:
        print("bound broken: " + "; ".join(problems), file=sys.stderr)
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
