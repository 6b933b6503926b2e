"""Scale: whole sweeps of 1k-20k tasks (synthetic or no-op runner), the driver's cost per task, files and reads.

    python -m bench.scale                                  # 1k, 4.1k, 20k tasks + planning at 100k (~30+ min)
    python -m bench.scale --tasks 1000,5000 --repeats 2
    python -m bench.scale --tasks 1000 --runner noop --before REV   # also the code of git REV, alternating
    python -m bench.scale --quick                          # 1 seed (48 tasks), planning at 1k
    python -m bench.scale --tasks 100000 --plan-tasks 0    # the 10^5 headline (~20+ min on 2 calm cores)
    python -m bench.scale --mlflow-runs 10000,100000       # MLflow alone: child runs logged and searched
    python -m bench.scale --compaction DIR                 # compaction alone (DIR: bench.fabricate --uncompacted)

Sizes are whole seeds of the built-in default sweep (`mmc-sweep plan 'seeds=[...]'`), as many as come
closest to the size asked for (`tasks_per_seed()`: 48 now, 36 when the figures of a0f3d9b were taken; 1,000
tasks = 21 seeds = 1,008 tasks). Every run is a fresh process (`python -m bench.scale --one ...`) holding its own
local Ray (2 CPUs, max_concurrent 2), so that what it reports is the driver's own:
- wall: `run_sweep` from the call to the return, the compaction of its results included: the bundles
  the recording thread compacts while the run goes (`compact_bundle_s`, `compact_bundles`) and the tail
  at its end (`compact_end_s`; `compact_s` is both, `compact_cpu_s` their CPU), and the markers the
  recording thread indexes with each bundle and at the end (`index_markers_s`, wall); Ray's start is timed
  apart (`ray_init_s`);
- driver CPU per task: user+sys CPU of the driver process (`getrusage(RUSAGE_SELF)`: the Tune controller,
  the searcher, the recording thread with MLflow, the compaction, the summary) over the run, divided by
  its tasks;
  Ray's own processes (raylet, GCS, the trial workers) are not in it;
- driver peak RSS (`ru_maxrss` when the tasks have ended, before this script reads anything; `peak_rss_run_mib`;
  during the compaction at the end, which merges every table into one part: `peak_rss_compact_end_mib`), its
  course over the run (`rss_samples_mib`: seconds, MiB, of which shared memory, every second), the RSS then by kind
  (`rss_parts_mib`: anonymous, file-backed, shared) and around each bundle compacted during the run
  (`rss_bundles_mib`); with `--tracemalloc` also the Python heap then and its biggest owners by file:line
  (`tracemalloc_top`; slow; `MMC_BENCH_TRACE_FILE=F` writes them to F at once); with `MMC_BENCH_TRIM=1`, after
  those figures, what `gc.collect`, `malloc_trim` and Arrow's `release_unused` hand back and Python's own
  allocator's arenas (`pymalloc`); files per result table after the run, and the time to read every table
  with `orchestrator.results.tables.read_table`, from what the run left before the compaction at its end
  (read just before it: that read is subtracted from the run's wall and CPU) and from parts (after, one
  table at a time, each timed: `read_table_s`; and after the commands below, by a fresh process as a
  user's analysis reads them: `read_table_fresh_s`). Above `--sample-above` tasks (20,000) the fragments of a
  sample of the tasks (1 in tasks/10,000, by a hash of the task id) are read one at a time and the time
  projected to all fragments, and the rows compared and digested are the sample's: memory stays that of
  one table (reading every fragment of 10^5 tasks at once held 8.4 GiB and took longer than the run).
After each run, as a user would: `mmc-sweep status` and `mmc-sweep report` on the sweep, each a fresh
process (wall time: `status_s`, `report_s`); MLflow: the wall and CPU time of the tracker's child runs
inside the run (`mlflow_log_s`), then listing every child run of the sweep's parent, the UI's first page
and a filtered search (`mlflow_search_*`); a sha256 of every table's rows and values without the
run-specific columns (`tables_sha256`), compared across all runs of a size (before and after must agree).
`--mlflow-runs N`: no sweep, only the child runs of an N-task sweep (the synthetic runner's metrics and
curves) logged through the tracker into SQLite in the recorder's batches, then the same searches
(`MMC_MLFLOW_TASK_RUNS` decides per-task or per-kind runs, as in a sweep).
Planning: `build_graph` of a 100,000-task spec (2,000 seeds, via the `seeds=[...]` override).
With `--before REV` (and `--after REV`, default: this working tree), `orchestrator/` and `tasks/` of that
git revision are exported to a temporary directory and run the same sweeps (before b0cc1ad+1 there is
no compaction and no synthetic runner: use `--runner noop`);
variants alternate (A B, B A, ...) and medians are reported.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

RESULT_PREFIX = "SCALE-RESULT "


def parse_args(argv=None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--tasks", default="1000,4100,20000", help="sweep sizes (tasks; rounded to whole seeds)")
    p.add_argument("--runner", default="synthetic", choices=["synthetic", "noop"])
    p.add_argument("--plan-tasks", type=int, default=100_000, help="size of the planned sweep (0: none)")
    p.add_argument("--max-concurrent", type=int, default=2)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--no-mlflow", action="store_true", help="runs without MLflow tracking")
    p.add_argument("--before", default=None, help="git revision to compare with (its orchestrator/ and tasks/)")
    p.add_argument("--after", default=None, help="with --before: the revision to compare it with (default: this tree)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    p.add_argument("--one", type=int, default=None, help=argparse_hidden())
    p.add_argument("--storage", default=None, help=argparse_hidden())
    p.add_argument("--profile", default=None, help="(with --one) write a cProfile of the driver here")
    p.add_argument("--tracemalloc", action="store_true",
                   help="also trace the driver's Python allocations (`tracemalloc`, slow): the top owners by "
                        "file:line when the tasks have ended (`tracemalloc_top`) next to the RSS then")
    p.add_argument("--mlflow-runs", default=None,
                   help="instead of sweeps: log this many tasks' child runs (e.g. 10000,100000) through the "
                        "tracker into SQLite and time the logging and the searches of them")
    p.add_argument("--no-commands", action="store_true", help="skip timing `mmc-sweep status` and `report`")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="keep the sweep's storage in DIR (new or empty; one size, one run) for later reads and "
                        "commands (`bench.read_side DIR/scale`)")
    p.add_argument("--compaction", default=None, metavar="DIR",
                   help="instead of sweeps: time the compaction of a copy of the uncompacted sweep DIR "
                        "(`bench.fabricate --uncompacted`), as `--compaction-mode` says")
    p.add_argument("--compaction-mode", default="bundles", choices=["end", "rows-at-end", "bundles"],
                   help="end: every fragment at the end (what an earlier revision does too); rows-at-end: the "
                        "same with the `tasks` rows handed in as the driver keeps them; bundles: that, in "
                        "bundles of `compact.bundle_tasks(n)` tasks in the plan's order, the last one at the end")
    p.add_argument("--sample-above", type=int, default=20_000,
                   help="above this many tasks, fragments are read and tables digested for a sample of the "
                        "tasks only (1 in tasks/10,000 by a hash of the task id; memory stays bounded)")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.plan_tasks = "50", min(args.plan_tasks, 1000)
    args.repeats = args.repeats or 1
    return args


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def tasks_per_seed() -> int:
    """Tasks one seed adds to the built-in default sweep (of the code that runs)."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import load_spec

    return len(build_graph(load_spec(None, ["seeds=[0]"])))


def seeds_for(tasks: int) -> int:
    return max(1, round(tasks / tasks_per_seed()))


# --------------------------------------------------------------------------- one run, in its own process

def one_run(args) -> dict:
    """Run one sweep here and return its figures (called in a fresh process)."""
    from orchestrator import vocab
    from orchestrator.results import tables
    from orchestrator.run.schedule import init_ray
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.run.sweep import run_sweep

    import orchestrator

    try:
        from orchestrator.results import compact
        if Path(orchestrator.__file__).parent not in Path(compact.__file__).parents:
            compact = None        # an editable install found it in the repository, not in the revision run
    except ImportError:           # the code of an earlier revision
        compact = None
    seeds = seeds_for(args.one)
    sample = sample_of(seeds * tasks_per_seed(), args.sample_above)
    storage = args.storage or tempfile.mkdtemp(prefix="mmc-bench-scale-")
    os.environ.setdefault("MMC_PROGRESS_INTERVAL_S", "30")
    measured: dict = {}
    if compact is not None:   # the run compacts when it ends; read its fragments first (timed apart)
        real_compact = compact.compact_after_run

        def compact_after_run(layout, log=print, **kwargs):
            measured["files_before_compaction"] = _files(layout, tables, vocab)
            measured["peak_rss_run_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            measured["rss_tasks_ended_mib"] = rss.now_mib()
            measured["rss_parts_mib"] = rss.parts_mib()
            measured.update(rss.summary())
            if args.tracemalloc:
                measured.update(traced_owners())
                if os.environ.get("MMC_BENCH_TRACE_FILE"):   # at once: the rest of the run takes a while
                    Path(os.environ["MMC_BENCH_TRACE_FILE"]).write_text(json.dumps(measured, default=str))
            if os.environ.get("MMC_BENCH_TRIM"):   # how much of the RSS is freed memory not handed back
                import ctypes
                import gc

                import pyarrow as pa

                measured["pymalloc"] = pymalloc_stats()
                gc.collect()
                measured["rss_after_gc_mib"] = rss.now_mib()
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                measured["rss_after_malloc_trim_mib"] = rss.now_mib()
                pa.default_memory_pool().release_unused()
                measured["rss_after_arrow_release_mib"] = rss.now_mib()
                if os.environ.get("MMC_BENCH_TRACE_FILE"):
                    Path(os.environ["MMC_BENCH_TRACE_FILE"]).write_text(json.dumps(measured, default=str))
            cpu = _cpu()
            read_s, measured["rows"], measured["read_fragments_read"] = _read_fragments(layout, tables, vocab,
                                                                                        sample)
            fragments = sum(measured["files_before_compaction"].values())   # (parts too, if any: a few)
            measured["read_fragments_s"] = read_s * fragments / max(1, measured["read_fragments_read"])
            measured["read_fragments_measured_s"] = read_s
            measured["read_fragments_cpu_s"] = _cpu() - cpu
            cpu, wall = _cpu(), time.perf_counter()
            with RssPeak() as peak:     # a finished run merges every table into one part here
                done = real_compact(layout, log, **kwargs)
            measured["compact_end_s"], measured["compact_end_cpu_s"] = time.perf_counter() - wall, _cpu() - cpu
            measured["peak_rss_compact_end_mib"] = peak.mib
            return done

        compact.compact_after_run = compact_after_run
        if hasattr(compact, "compact_bundle"):   # the RSS around each bundle the recording thread compacts
            real_bundle = compact.compact_bundle

            def compact_bundle(*a, **kwargs):
                before = rss.now_mib()
                try:
                    return real_bundle(*a, **kwargs)
                finally:
                    measured.setdefault("rss_bundles_mib", []).append(
                        {"before": before, "after": rss.now_mib(),
                         "peak_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})

            compact.compact_bundle = compact_bundle
    try:   # the recording thread's share of the driver's CPU
        from orchestrator.run import recording
        real_close = recording.TaskRecorder.close

        def close(self):
            real_close(self)
            bundles = getattr(self, "compact_cpu_s", 0.0)   # the bundles it compacted while the run went
            measured["recorder_cpu_s"] = measured.get("recorder_cpu_s", 0.0) + self.thread_cpu_s - bundles
            measured["compact_bundles"] = measured.get("compact_bundles", 0) + getattr(self, "compactions", 0)
            measured["compact_bundle_cpu_s"] = measured.get("compact_bundle_cpu_s", 0.0) + bundles
            measured["compact_bundle_s"] = measured.get("compact_bundle_s", 0.0) + getattr(self, "compact_s", 0.0)
            measured["release_memory_s"] = measured.get("release_memory_s", 0.0) + getattr(self, "release_s", 0.0)
            measured["index_markers_s"] = measured.get("index_markers_s", 0.0) + getattr(self, "index_s", 0.0)
            self.thread_cpu_s = 0.0
            if hasattr(self, "compact_cpu_s"):
                self.compactions, self.compact_s, self.compact_cpu_s = 0, 0.0, 0.0
            self.index_s = 0.0

        recording.TaskRecorder.close = close
    except (ImportError, AttributeError):
        pass
    try:   # MLflow's share: the tracker's child runs, timed where the recording thread calls it
        from orchestrator.run import tracking
        real_ended = tracking.MlflowTracker.tasks_ended

        def tasks_ended(self, ended):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return real_ended(self, ended)
            finally:
                measured["mlflow_log_s"] = measured.get("mlflow_log_s", 0.0) + time.perf_counter() - wall
                measured["mlflow_log_cpu_s"] = measured.get("mlflow_log_cpu_s", 0.0) + time.thread_time() - cpu

        tracking.MlflowTracker.tasks_ended = tasks_ended
    except (ImportError, AttributeError):
        pass
    overrides = [f"seeds={list(range(seeds))}", f"storage={storage}", "name=scale",
                 f"max_concurrent={args.max_concurrent}"]
    if args.no_mlflow:
        overrides.append("mlflow.enabled=false")
    spec = load_spec(None, overrides)
    start = time.perf_counter()
    init_ray(num_cpus=args.num_cpus)
    ray_init_s = time.perf_counter() - start
    measured["rss_before_run_mib"] = rss.now_mib()
    rss.start()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(1)
    load_before = os.getloadavg()[0]
    cpu0, wall0 = _cpu(), time.perf_counter()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    outcome = run_sweep(spec, runner=common.runner(args.runner), num_cpus=args.num_cpus, report=False, log=_quiet)
    run_s, run_cpu = time.perf_counter() - wall0, _cpu() - cpu0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    layout = outcome.layout
    n = len(outcome.state.states)
    result = {"tasks": n, "seeds": seeds, "runner": args.runner, "mlflow": not args.no_mlflow,
              "counts": outcome.counts, "ray_init_s": ray_init_s, "loadavg_1m_before": load_before,
              "loadavg_1m_after": os.getloadavg()[0]}
    result["files"] = _files(layout, tables, vocab)
    result["read_s"], result["read_table_s"], rows, result["tables_sha256"] = read_and_digest(
        layout, tables, vocab, sample)
    result["digest_tasks"] = "all" if sample is None else f"1 in {sample.stride} by task id hash"
    if compact is None:   # (keeps what was measured otherwise: the recorder's CPU)
        measured.update({"files_before_compaction": result["files"], "read_fragments_s": result["read_s"],
                         "rows": rows, "compact_end_s": 0.0, "compact_end_cpu_s": 0.0})
    measured["compact_s"] = measured.get("compact_end_s", 0.0) + measured.get("compact_bundle_s", 0.0)
    measured["compact_cpu_s"] = measured.get("compact_end_cpu_s", 0.0) + measured.get("compact_bundle_cpu_s", 0.0)
    if not same_rows(measured["rows"], rows):
        raise AssertionError("the tables' rows differ before and after the compaction")
    measured["rows"] = {t: r if isinstance(r, int) else sum(r.values()) for t, r in measured["rows"].items()}
    result.update(measured)
    # the fragments were read inside the run, for this benchmark only: not part of the run's figures
    read_cpu = measured.get("read_fragments_cpu_s", 0.0)
    result["wall_s"] = result["run_s"] = run_s - (measured.get("read_fragments_measured_s", 0.0) if compact is not None
                                                  else 0.0)
    result["driver_cpu_s"] = result["run_cpu_s"] = run_cpu - read_cpu
    result["driver_cpu_per_task_ms"] = 1e3 * result["driver_cpu_s"] / max(n, 1)
    result["wall_per_task_ms"] = 1e3 * result["wall_s"] / max(n, 1)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # with this script's reads
    result.setdefault("peak_rss_run_mib", result["peak_rss_mib"])
    overhead = _overheads(layout, tables, vocab)
    result["overhead_median_s"], result["overhead_p95_s"] = overhead
    if not args.no_mlflow:
        result.update(search_children(layout.mlflow_uri(), "scale"))
    if not args.no_commands:
        result.update(time_commands(layout.storage.local_path(layout.root), args.timeout))
    result["read_table_fresh_s"] = time_fresh_reads(layout.storage.local_path(layout.root), args.timeout)
    return result


class RssSampler:
    """The driver's resident memory now (`/proc/self/statm`) and, sampled every `every_s` on a thread, its
    course over the run: where the peak came (`rss_samples_mib`: (seconds, MiB, of which shared memory MiB),
    at most ~200 kept)."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.samples, self.started = every_s, [], time.perf_counter()
        self._stop = None

    @staticmethod
    def now_mib() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:
            return float("nan")

    @staticmethod
    def parts_mib() -> dict:
        """The RSS by kind (`/proc/self/status`): anonymous (the heaps), file-backed (libraries, mapped files),
        shared memory (Ray's object store, mapped into every worker and the driver)."""
        try:
            with open("/proc/self/status") as f:
                return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in f
                        if line.startswith(("RssAnon", "RssFile", "RssShmem"))}
        except OSError:
            return {}

    def start(self) -> None:
        import threading

        self.started, self._stop = time.perf_counter(), threading.Event()
        threading.Thread(target=self._sample, name="bench-rss", daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append((round(time.perf_counter() - self.started, 1), round(self.now_mib(), 1),
                                 round(self.parts_mib().get("RssShmem", 0.0), 1)))

    def summary(self) -> dict:
        if self._stop is not None:
            self._stop.set()
        step = max(1, len(self.samples) // 200)
        top = max(self.samples, key=lambda s: s[1], default=(None, None))
        return {"rss_samples_mib": self.samples[::step], "rss_max_sampled_mib": top[1], "rss_max_sampled_at_s": top[0]}


rss = RssSampler()


class RssPeak:
    """The driver's greatest resident memory while the block runs (sampled every 0.1 s on a thread; `ru_maxrss`
    cannot tell a step's peak from the earlier ones): `mib`."""

    def __init__(self):
        import threading

        self.mib, self._stop = RssSampler.now_mib(), threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-rss-peak", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.mib = max(self.mib, RssSampler.now_mib())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.mib = round(max(self.mib, RssSampler.now_mib()), 1)


def pymalloc_stats() -> dict:
    """Python's small-object allocator (`sys._debugmallocstats`): the arenas it holds from the system and
    the bytes in live blocks; the difference is freed memory it cannot hand back (an arena goes back only
    when every block in it is free)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    stats = {}
    for line in text.splitlines():
        name, _, value = line.rpartition("=")
        name = name.strip().strip("#").strip()
        if name in ("arenas allocated current", "bytes in allocated blocks", "bytes in available blocks") \
                and value.strip().replace(",", "").isdigit():
            stats[name] = int(value.strip().replace(",", ""))
    return stats


def traced_owners(top: int = 40) -> dict:
    """What `tracemalloc` holds now: its total (Python's own allocations; the rest of the RSS is Ray's and
    the libraries' native memory), its peak, and the biggest owners by file:line and by file."""
    import tracemalloc

    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    current, peak = tracemalloc.get_traced_memory()

    def rows(key: str) -> list:
        return [{"where": str(s.traceback[0]) if key == "lineno" else s.traceback[0].filename,
                 "mib": round(s.size / 2**20, 2), "blocks": s.count} for s in snapshot.statistics(key)[:top]]

    return {"tracemalloc_mib": current / 2**20, "tracemalloc_peak_mib": peak / 2**20,
            "tracemalloc_top": rows("lineno"), "tracemalloc_files": rows("filename")}


def time_commands(sweep_dir: str, timeout: float) -> dict:
    """`mmc-sweep status` and `mmc-sweep report` on the finished sweep, each a fresh process (wall time)."""
    out = {}
    for name, command in (("status", ["status", sweep_dir]), ("report", ["report", sweep_dir])):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "orchestrator", *command], capture_output=True, text=True,
                              timeout=timeout)
        out[f"{name}_s"] = time.perf_counter() - start
        if proc.returncode != 0:
            out[f"{name}_error"] = (proc.stderr or proc.stdout)[-500:]
    return out


def time_fresh_reads(sweep_dir: str, timeout: float) -> dict[str, float]:
    """Every table read whole, one at a time, by a fresh process after the run, as a user's analysis reads
    it (`read_table_fresh_s`: `bench.read_side`'s `reads` step, wall seconds; `read_table_s` is the same read
    inside the driver's process right after the run, Ray still up)."""
    proc = subprocess.run([sys.executable, "-m", "bench.read_side", sweep_dir, "--one", "--steps", "reads"],
                          cwd=str(common.REPO), capture_output=True, text=True, timeout=timeout, check=True)
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name[len("read "):]: m["wall_s"] for name, m in measured.items()
            if name.startswith("read ") and "," not in name}


def search_children(uri: str, experiment: str) -> dict:
    """What a user of MLflow waits for: every child run of the sweep's parent (paged, as the client does),
    the UI's first page (100 runs, newest first) and a filtered search (one kind's runs above a metric)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.`mmc.role` = 'sweep'", max_results=1)
    out = {}
    start, token, runs = time.perf_counter(), None, 0
    while True:
        page = client.search_runs([exp.experiment_id], max_results=50_000, page_token=token,
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        runs += len(page)
        token = page.token
        if not token:
            break
    out["mlflow_runs"], out["mlflow_search_all_s"] = runs, time.perf_counter() - start
    start = time.perf_counter()
    client.search_runs([exp.experiment_id], max_results=100, order_by=["attributes.start_time DESC"])
    out["mlflow_first_page_s"] = time.perf_counter() - start
    start = time.perf_counter()
    found = client.search_runs([exp.experiment_id], max_results=1000,
                               filter_string="tags.task_kind = 'path_eval' AND metrics.`barrier.cue.loss.chord` > 0.5")
    out["mlflow_search_filtered_s"], out["mlflow_search_filtered_runs"] = time.perf_counter() - start, len(found)
    return out


# --------------------------------------------------------------------------- MLflow alone, at 10^4-10^5 runs

def mlflow_only(tasks: int, directory: str) -> dict:
    """Child runs of a `tasks`-task sweep (the synthetic runner's metrics and step series, nothing written
    to the tables) logged through `MlflowTracker.tasks_ended` in the recorder's batches, into SQLite; then
    `search_children`. Run in a fresh process per size."""
    import torch

    from orchestrator.graph.dag import build_graph
    from orchestrator.run import recording, tracking
    from orchestrator.run.work import TaskEnv
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.storage.layout import Storage, SweepLayout
    from tests.support import runners

    seeds = seeds_for(tasks)
    graph = build_graph(load_spec(None, [f"seeds={list(range(seeds))}", "name=scale"]))
    env = TaskEnv(layout=SweepLayout(Storage(directory), "scale"), device=torch.device("cpu"))
    uri = f"sqlite:///{directory}/mlflow.db"
    tracker = tracking.MlflowTracker(uri, "scale")
    tracker.start(tracking.SweepRun(graph=graph, sweep="scale", version=1, spec_hash="bench"))
    ids = list(graph.tasks)
    wall, cpu, made = 0.0, 0.0, 0.0
    for start in range(0, len(ids), recording.BATCH_SIZE):
        t0 = time.perf_counter()
        batch = []
        for task_id in ids[start:start + recording.BATCH_SIZE]:
            task = graph.tasks[task_id]
            out = runners.synthetic(task, env)
            now = time.time()
            batch.append(recording.EndedTask(task, "done", None, 0.01, now - 0.01, now, "cpu", out.metrics,
                                             [tuple(x) for x in out.steps]))
        made += time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        tracker.tasks_ended(batch)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
    tracker.finish("FINISHED")
    db = Path(directory) / "mlflow.db"
    result = {"tasks": len(ids), "mlflow_log_s": wall, "mlflow_log_cpu_per_run_ms": 1e3 * cpu / len(ids),
              "mlflow_log_per_run_ms": 1e3 * wall / len(ids), "db_mib": db.stat().st_size / 2**20,
              "synthetic_outputs_s": made}
    result.update(search_children(uri, "scale"))
    return result


def _quiet(line: str) -> None:
    if line.startswith(("sweep `", "finished in", "compacted")):
        print(line, file=sys.stderr, flush=True)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _files(layout, tables, vocab) -> dict[str, int]:
    out = {}
    for table in vocab.TABLES:
        directory = Path(layout.storage.local_path(layout.table_dir(table)))
        out[table] = sum(1 for p in directory.iterdir() if p.is_file()) if directory.exists() else 0
    return out


class Sample:
    """Task ids in a deterministic sample: 1 in `stride` by a hash of the id (the same tasks in every run)."""

    def __init__(self, stride: int):
        self.stride = stride

    def __contains__(self, task_id: str) -> bool:
        import hashlib

        return int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) % self.stride == 0

    def of(self, ids) -> list:
        return [t for t in ids if t in self]


def sample_of(tasks: int, above: int) -> Sample | None:
    """The tasks whose rows the benchmark reads from their fragments and digests (None: every task): up to
    `above` tasks all of them; above, 1 in `tasks // 10,000` (~10,000 tasks; at least 1 in 2), the same
    tasks in every run of a size (before and after compare the same sample). Reading every fragment of
    10^5 tasks held 8.4 GiB and took longer than the run."""
    return None if tasks <= above else Sample(max(2, tasks // 10_000))


def _read_fragments(layout, tables, vocab, sample) -> tuple[float, dict, int]:
    """Every table read from what the run left before the compaction at its end (with `sample`: only the
    sample's fragments, one at a time): seconds, rows (per table; with `sample`, per table and task),
    fragments read."""
    start = time.perf_counter()
    if sample is None:
        rows = {table: len(tables.read_table(layout, table)) for table in vocab.TABLES}
        return time.perf_counter() - start, rows, sum(_files(layout, tables, vocab).values())
    from orchestrator.results.manifest import list_table

    rows: dict = {}
    for table in vocab.TABLES:
        rows[table] = {t: len(tables.read_fragment(layout, table, t))
                       for t in sorted(sample.of(list_table(layout, table).fragments))}
    return time.perf_counter() - start, rows, sum(len(r) for r in rows.values())


RUN_SPECIFIC = ("duration_s", "started_at", "finished_at", "mlflow_run_id", "host", "git_rev", "versions",
                "torch_version", "device")   # columns that differ between two runs of the same sweep


def read_and_digest(layout, tables, vocab, sample) -> tuple[float, dict[str, float], dict, dict[str, str]]:
    """Every table read whole (`tables.read_table`, one at a time: memory holds one table), timed; then
    the rows of the sampled tasks (every task with `sample` None) counted (per table; with `sample`, per
    table and task) and digested: sha256 of the rows (in the readers' order: by task id, then as written)
    and values, the columns that differ from run to run left out: equal before and after a change that
    keeps the results."""
    import hashlib

    total, each, rows, digests = 0.0, {}, {}, {}
    for table in vocab.TABLES:
        start = time.perf_counter()
        frame = tables.read_table(layout, table)
        each[table] = time.perf_counter() - start
        total += each[table]
        if sample is None:
            rows[table] = len(frame)
        else:
            frame = frame[frame["task_id"].isin(sample.of(frame["task_id"].unique()))]
            rows[table] = {str(k): int(v) for k, v in frame.groupby("task_id", sort=False).size().items()}
        frame = frame.drop(columns=[c for c in RUN_SPECIFIC if c in frame.columns])
        digests[table] = hashlib.sha256(frame.to_json(orient="split", index=False, double_precision=15).encode()).hexdigest()
        del frame
    return total, each, rows, digests


def same_rows(before: dict, after: dict) -> bool:
    """The rows read before the compaction (per table, or per table and sampled task that still had its
    fragment) are the rows after it."""
    return all(before[t] == after[t] if isinstance(before[t], int) else
               all(after[t].get(task, 0) == n for task, n in before[t].items()) for t in before)


def _overheads(layout, tables, vocab) -> tuple[float | None, float | None]:
    import pandas as pd

    t = tables.read_table(layout, vocab.TASKS)
    t = t[t["status"] == "finished"]
    if t.empty:
        return None, None
    held = pd.to_datetime(t["finished_at"], utc=True) - pd.to_datetime(t["started_at"], utc=True)
    overhead = (held.dt.total_seconds() - t["duration_s"].astype(float)).dropna().sort_values()
    return float(overhead.median()), float(overhead.quantile(0.95))


# --------------------------------------------------------------------------- compaction alone

def compaction_only(directory: str, mode: str) -> dict:
    """Compaction of a copy of an uncompacted sweep (`bench.fabricate --uncompacted`): CPU and wall of
    each phase. `bundles`/`rows-at-end`: the `tasks` rows handed in as the recorder keeps them (parsed
    here, outside the timed part); `bundles`: fragments appear bundle by bundle in the plan's order
    (parents first, as tasks end) and each bundle is compacted as the recording thread does it."""
    import shutil

    from orchestrator import vocab
    from orchestrator.results import compact, manifest, tables
    from orchestrator.results.plan import read_plan
    from orchestrator.storage.layout import open_sweep_dir

    work = tempfile.mkdtemp(prefix="mmc-bench-compaction-")
    root = os.path.join(work, "sweep")
    shutil.copytree(directory, root)
    layout = open_sweep_dir(root)
    out: dict = {"mode": mode, "loadavg_1m_before": os.getloadavg()[0]}
    try:
        if mode == "end":
            cpu, wall = _cpu(), time.perf_counter()
            done = compact.compact(layout)
            phases = [{"tasks": None, "tail": True, "cpu_s": _cpu() - cpu, "wall_s": time.perf_counter() - wall,
                       "fragments": sum(d.absorbed for d in done.values())}]
        else:
            order = list(read_plan(layout)["task_id"])
            bundle = compact.bundle_tasks(len(order)) if mode == "bundles" else len(order)
            held, files = os.path.join(work, "held"), {}
            for table in vocab.TABLES:
                os.makedirs(os.path.join(held, table))
                for task_id, stamp in manifest.list_table(layout, table).fragments.items():
                    aside = os.path.join(held, table, os.path.basename(stamp.path))
                    os.rename(stamp.path, aside)
                    files.setdefault(task_id, []).append((table, aside, stamp.path))
            phases = []
            for start in range(0, len(order), bundle):
                chunk, kept = order[start:start + bundle], {}
                for task_id in chunk:
                    for table, aside, path in files.get(task_id, []):
                        os.rename(aside, path)
                        if table == vocab.TASKS:
                            data = Path(path).read_bytes()
                            kept[path] = (manifest.sha256_hex(data), len(data),
                                          tables.parse_fragment(table, data, task_id))
                tail = start + bundle >= len(order)
                cpu, wall = _cpu(), time.perf_counter()
                done = compact.compact(layout, rows_of=kept.get, running=not tail)
                phases.append({"tasks": len(chunk), "tail": tail, "cpu_s": _cpu() - cpu,
                               "wall_s": time.perf_counter() - wall, "fragments": sum(d.absorbed for d in done.values())})
            out["bundle"] = bundle
        out.update(phases=phases, cpu_s=sum(p["cpu_s"] for p in phases), wall_s=sum(p["wall_s"] for p in phases),
                   fragments=sum(p["fragments"] for p in phases), files=compact.files_per_table(layout),
                   end_cpu_s=phases[-1]["cpu_s"], end_wall_s=phases[-1]["wall_s"],
                   loadavg_1m_after=os.getloadavg()[0])
        out["cpu_per_fragment_ms"] = 1e3 * out["cpu_s"] / max(1, out["fragments"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"compaction ({mode}) of {out['fragments']} fragments: CPU {out['cpu_s']:.1f} s "
          f"({out['cpu_per_fragment_ms']:.2f} ms per fragment), wall {out['wall_s']:.1f} s; at the end: CPU "
          f"{out['end_cpu_s']:.1f} s, wall {out['end_wall_s']:.1f} s; files per table {out['files']}", flush=True)
    return out


# --------------------------------------------------------------------------- the parent

def export_revision(rev: str) -> str:
    """`orchestrator/` and `tasks/` of `rev` in a temporary directory (PYTHONPATH'd before the repo)."""
    directory = tempfile.mkdtemp(prefix=f"mmc-bench-rev-{rev[:10]}-")
    archive = subprocess.run(["git", "archive", rev, "orchestrator", "tasks"], cwd=common.REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def spawn(args, tasks: int, code: str | None) -> dict:
    command = [sys.executable, "-m", "bench.scale", "--one", str(tasks), "--runner", args.runner,
               "--max-concurrent", str(args.max_concurrent), "--num-cpus", str(args.num_cpus)]
    if args.no_mlflow:
        command.append("--no-mlflow")
    if args.no_commands:
        command.append("--no-commands")
    if args.tracemalloc:
        command.append("--tracemalloc")
    command += ["--sample-above", str(args.sample_above)]
    # `python -m` puts the working directory first on sys.path: run an earlier revision from its own
    # directory (its orchestrator/ and tasks/), with this repository after it for `bench`
    cwd = code or str(common.REPO)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (code, str(common.REPO)) if p)}
    env.pop("RAY_ADDRESS", None)
    if code is not None:
        which = subprocess.run([sys.executable, "-c", "import orchestrator; print(orchestrator.__file__)"], cwd=cwd,
                               env=env, capture_output=True, text=True).stdout.strip()
        if not which.startswith(code):
            raise RuntimeError(f"the earlier revision would not be the code that runs (orchestrator from {which})")
    if args.keep:
        proc = subprocess.run([*command, "--storage", args.keep], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="mmc-bench-scale-") as storage:
            proc = subprocess.run([*command, "--storage", storage], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"run of {tasks} tasks failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def mlflow_sizes(args) -> dict:
    """`--mlflow-runs N,M`: each size in a fresh process (`--one N --mlflow-runs N`)."""
    env = common.environment()
    payload: dict = {"benchmark": "scale-mlflow", "command": common.command_line(), "environment": env, "sizes": {}}
    for tasks in [int(x) for x in args.mlflow_runs.split(",")]:
        proc = subprocess.run([sys.executable, "-m", "bench.scale", "--one", str(tasks), "--mlflow-runs", str(tasks)],
                              cwd=str(common.REPO), capture_output=True, text=True, timeout=args.timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"MLflow run of {tasks} tasks failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][len(RESULT_PREFIX):])
        result["loadavg_1m_after"] = os.getloadavg()[0]
        payload["sizes"][str(tasks)] = result
        print(f"{result['tasks']:>7} child runs: logged in {result['mlflow_log_s']:.1f} s "
              f"({result['mlflow_log_per_run_ms']:.2f} ms/run, CPU {result['mlflow_log_cpu_per_run_ms']:.2f} ms/run), "
              f"database {result['db_mib']:.0f} MiB; search all children {result['mlflow_search_all_s']:.1f} s, "
              f"first page {result['mlflow_first_page_s']:.2f} s, filtered {result['mlflow_search_filtered_s']:.2f} s; "
              f"load {result['loadavg_1m_after']:.1f}", flush=True)
    common.write_json("scale-mlflow", payload, args.out, args.tag)
    return payload


def planning(target: int, repeats: int) -> dict:
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import load_spec

    seeds = seeds_for(target)
    times, load = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        spec = load_spec(None, [f"seeds={list(range(seeds))}"])
        load.append(time.perf_counter() - start)
        start = time.perf_counter()
        graph = build_graph(spec)
        times.append(time.perf_counter() - start)
    print(f"planning: {len(graph)} tasks ({seeds} seeds): load_spec {common.median(load):.2f} s, build_graph "
          f"{common.median(times):.2f} s", flush=True)
    return {"tasks": len(graph), "seeds": seeds, "build_graph_s": common.summary(times),
            "load_spec_s": common.summary(load)}


FIGURES = ("wall_s", "run_s", "driver_cpu_per_task_ms", "recorder_cpu_s", "compact_cpu_s", "compact_end_s",
           "compact_end_cpu_s", "compact_bundle_s", "compact_bundle_cpu_s", "compact_bundles", "peak_rss_run_mib", "peak_rss_compact_end_mib", "peak_rss_mib", "read_fragments_s", "read_s", "compact_s",
           "overhead_median_s", "overhead_p95_s", "mlflow_log_s", "mlflow_log_cpu_s", "mlflow_search_all_s",
           "mlflow_first_page_s", "status_s", "report_s")


def medians(runs: list[dict]) -> dict:
    out = {k: statistics.median(r[k] for r in runs) for k in FIGURES if all(r.get(k) is not None for r in runs)}
    out["files"] = runs[-1]["files"]
    out["files_before_compaction"] = runs[-1]["files_before_compaction"]
    out["tasks"] = runs[-1]["tasks"]
    if all(r.get("read_table_fresh_s") for r in runs):
        out["read_table_fresh_s"] = {t: statistics.median(r["read_table_fresh_s"][t] for r in runs)
                                     for t in runs[-1]["read_table_fresh_s"]}
    return out


def describe(name: str, m: dict) -> str:
    files = max(m["files"].values())
    return (f"{name:>8} {m['tasks']:>6} tasks: wall {m['wall_s']:7.1f} s ({1e3 * m['wall_s'] / m['tasks']:5.1f} ms/task), "
            f"driver CPU {m['driver_cpu_per_task_ms']:5.1f} ms/task, peak RSS {m['peak_rss_run_mib']:6.0f} MiB"
            + (f" ({m['peak_rss_compact_end_mib']:.0f} MiB compacting at the end)" if m.get("peak_rss_compact_end_mib")
               else "") + ", "
            f"<= {files} files/table (from {max(m['files_before_compaction'].values())}), read all tables "
            f"{m['read_s']:.2f} s (fragments {m['read_fragments_s']:.2f} s)"
            + (f", slowest table read by a fresh process {max(m['read_table_fresh_s'].values()):.2f} s"
               if m.get("read_table_fresh_s") else "") + f", compaction {m['compact_s']:.1f} s "
            f"(CPU {m.get('compact_cpu_s', 0):.1f} s; at the end {m.get('compact_end_s', 0):.1f} s, CPU "
            f"{m.get('compact_end_cpu_s', 0):.1f} s; {m.get('compact_bundles', 0):.0f} bundles during the run)"
            + "".join(f", {label} {m[key]:.1f} s" for key, label in (
                ("mlflow_log_s", "MLflow logging"), ("mlflow_search_all_s", "MLflow search of the children"),
                ("status_s", "`status`"), ("report_s", "`report`")) if m.get(key) is not None))


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.one is not None:
        if args.mlflow_runs:
            with tempfile.TemporaryDirectory(prefix="mmc-bench-mlflow-") as directory:
                print(RESULT_PREFIX + json.dumps(mlflow_only(args.one, directory), default=str), flush=True)
            return {}
        print(RESULT_PREFIX + json.dumps(one_run(args), default=str), flush=True)
        return {}
    if args.mlflow_runs:
        return mlflow_sizes(args)
    if args.compaction:
        payload = {"benchmark": "scale-compaction", "command": common.command_line(),
                   "environment": common.environment(), "result": compaction_only(args.compaction, args.compaction_mode)}
        common.write_json("scale-compaction", payload, args.out, args.tag)
        return payload
    if args.keep and (args.before or args.repeats not in (None, 1) or "," in args.tasks
                      or (os.path.isdir(args.keep) and os.listdir(args.keep))):
        raise SystemExit(f"--keep {args.keep}: one size, one run, no --before, and a new or empty directory")
    env = common.environment()
    print(f"{env['cpu']}; {env['cpu_count']} CPUs; load {env['loadavg_1m']}", flush=True)
    payload: dict = {"benchmark": "scale", "command": common.command_line(), "environment": env,
                     "runner": args.runner, "mlflow": not args.no_mlflow, "max_concurrent": args.max_concurrent}
    if args.plan_tasks:
        payload["planning"] = planning(args.plan_tasks, max(1, min(args.repeats, 3)))
    variants = {"after": None}
    if args.before:
        variants = {"before": export_revision(args.before),
                    "after": export_revision(args.after) if args.after else None}
        payload["before_rev"], payload["after_rev"] = args.before, args.after or "working tree"
    payload["sizes"] = {}
    for tasks in [int(x) for x in args.tasks.split(",")]:
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                result = spawn(args, tasks, variants[name])
                runs[name].append(result)
                print(f"  {name} round {r + 1}: {json.dumps({k: result.get(k) for k in FIGURES})} "
                      f"load {result['loadavg_1m_before']:.1f}-{result['loadavg_1m_after']:.1f}", flush=True)
        payload["sizes"][str(tasks)] = {name: {"median": medians(rs), "runs": rs} for name, rs in runs.items()}
        digests = {json.dumps(r.get("tables_sha256"), sort_keys=True) for rs in runs.values() for r in rs}
        if len(runs) > 1 or args.repeats > 1:
            same = len(digests) == 1
            payload["sizes"][str(tasks)]["tables_identical"] = same
            print(f"tables of every run {'identical' if same else 'DIFFER'} (rows and values, run-specific columns "
                  "left out)", flush=True)
        for name, rs in runs.items():
            print(describe(name, medians(rs)), flush=True)
    payload["loadavg_1m_end"] = os.getloadavg()[0]
    common.write_json("scale", payload, args.out, args.tag)
    return payload


if __name__ == "__main__":
    main()
