"""One `mmc-sweep run`: spec → graph → cache check → Ray → tables, MLflow, summary, report.

The driver owns the `tasks` table and MLflow (one writer for the SQLite store); trials write
checkpoints and the other result fragments themselves. A lock file keeps two drivers off one
sweep directory; a killed driver leaves only finished tasks behind (each behind its `done.json`),
so rerunning the same command resumes.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import shutil
import subprocess
import tempfile
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from orchestrator import outputs, sinks
from orchestrator.graph import Graph, Task, build_graph, canonical_json
from orchestrator.layout import Storage, SweepLayout
from orchestrator.schedule import (CACHED, DONE, FAILED, PENDING, SKIPPED, ProgressPrinter, SweepState,
                                   TrialContext, cluster_resources, init_ray, run_graph)
from orchestrator.spec import SweepSpec, check_resources

MLFLOW_STATUS = {DONE: "FINISHED", CACHED: "FINISHED", FAILED: "FAILED", SKIPPED: "KILLED"}  # skipped: never ran
STATUS_IN_TABLE = {DONE: "finished", CACHED: "finished", FAILED: "failed", SKIPPED: "skipped"}


class SweepError(RuntimeError):
    """A problem found before any task ran (storage, lock, resources); the CLI exits 2."""


@dataclass
class SweepOutcome:
    layout: SweepLayout
    state: SweepState
    summary: object = None            # pandas DataFrame of aggregate barrier statistics
    report_html: str | None = None
    mlflow_ui: str | None = None
    wall_s: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.counts.get(FAILED, 0) == 0 and self.counts.get(SKIPPED, 0) == 0


def git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def spec_hash(spec: SweepSpec) -> str:
    """Short form of `orchestrator.spec.spec_hash` (what determines results, not where they live)."""
    from orchestrator.spec import spec_hash as full_spec_hash

    return full_spec_hash(spec)[:16]


def open_layout(spec: SweepSpec) -> SweepLayout:
    """The sweep's layout on its storage; a storage URI that pyarrow cannot open is a SweepError."""
    try:
        return SweepLayout(Storage(spec.storage), spec.name)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad URIs
        reason = (str(exc).strip().splitlines() or [""])[0]   # pyarrow's first line; the rest is a search log
        raise SweepError(f"storage {spec.storage!r} cannot be opened: {type(exc).__name__}: {reason}. "
                         "Give a local directory or a pyarrow.fs URI (s3://bucket/runs, gs://bucket/runs, "
                         "file:///abs/path) in `storage` or with --storage.") from exc


def new_directories(layout: SweepLayout) -> list[str]:
    """The directories up to the sweep root that do not exist yet, outermost first."""
    storage = layout.storage
    try:
        local = storage.local_path(layout.root)
        if local is None:   # object stores: only the root and the sweep "directory" are ours
            return [path for path in (storage.root, layout.root) if not storage.exists(path)]
        missing = []
        for path in (local, *local.parents):
            if path.exists():
                break
            missing.append(str(path))
        return missing[::-1]
    except Exception:  # noqa: BLE001 - check_storage reports an unreachable storage
        return []


def remove_new_directories(layout: SweepLayout, created: list[str]) -> None:
    """Undo `created` directories that are still empty (a run stopped before any work)."""
    storage = layout.storage
    for path in reversed(created):
        try:
            if storage.is_local:
                os.rmdir(path)      # only ever removes an empty directory
            elif storage.exists(path) and not storage.listdir(path):
                storage.delete(path)
        except Exception:  # noqa: BLE001 - best effort (not empty, already gone); never mask the real error
            pass


def check_storage(layout: SweepLayout) -> None:
    """Fail before any work if the storage is missing, unwritable or full; leaves nothing behind."""
    created = new_directories(layout)
    probe = layout.storage.join(layout.root, f"probe-{uuid.uuid4().hex}")
    try:
        layout.storage.write_bytes(probe, b"mmc-sweep storage probe\n")
        layout.storage.delete(probe)
    except Exception as exc:  # noqa: BLE001
        raise SweepError(f"storage `{layout.root}` is not writable: {type(exc).__name__}: {exc}. "
                         "Give a writable local directory or a pyarrow.fs URI (s3://, gs://, file://) "
                         "in `storage` or with --storage.") from exc
    finally:
        remove_new_directories(layout, created)


def check_data(spec: SweepSpec) -> None:
    """Fail before any work if a real dataset's files are not under a local `data.root`.

    Only presence is checked here (cheap); the files are parsed, through the restricted
    unpickler, by the tasks that use them."""
    from tasks import datasets as raw

    root = spec_data_root(spec)
    if root is None or "://" in root:
        return   # built-in dataset, or a remote root that the workers read
    groups = {"dominoes": ("cifar10", "fashion_mnist")}.get(spec.data.dataset, (spec.data.dataset,))
    missing: list[str] = []
    for group in groups:
        if group == "fashion_mnist":
            missing += _missing_fashion_files(Path(root))
        elif group in ("cifar10", "cifar100"):
            missing += [str(p) for p in raw.expected_files(group, root) if not p.is_file()]
    if missing:
        shown = "\n  - ".join(missing[:6]) + (f"\n  ... and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise SweepError(f"dataset `{spec.data.dataset}` is not under data.root {root}; missing:\n  - {shown}\n"
                         f"Fetch it with `mmc-sweep data download {spec.data.dataset} --root {root}`.")


FASHION_SEARCH = ("fashion-mnist", "FashionMNIST/raw", ".")   # where tasks.datasets looks for the IDX files


def _missing_fashion_files(root: Path) -> list[str]:
    missing = []
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        if not any((root / sub / name).is_file() for sub in FASHION_SEARCH for name in (stem, stem + ".gz")):
            missing.append(str(root / FASHION_SEARCH[0] / (stem + ".gz")))
    return missing


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_holder(storage: Storage, path: str) -> dict:
    try:
        return json.loads(storage.read_bytes(path))
    except (OSError, ValueError):
        return {}


def _lock_is_stale(other: dict) -> bool:
    """A lock of a dead process on this host (a killed driver); unreadable locks count as live."""
    if not other:
        return False
    return other.get("host") == socket.gethostname() and not _pid_alive(int(other.get("pid", -1)))


def _lock_busy_error(layout: SweepLayout, other: dict) -> SweepError:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(other.get("started_at", 0)))
    who = (f"pid {other.get('pid')} on {other.get('host')}, started {started}" if other
           else "its lock file is being written or unreadable")
    return SweepError(f"another `mmc-sweep run` ({who}) is using {layout.root}. Wait for it to finish, "
                      f"or delete {layout.lock_file()} if that run is gone.")


def _acquire_lock(layout: SweepLayout, me: dict) -> None:
    storage, path = layout.storage, layout.lock_file()
    data = json.dumps(me).encode()
    local = storage.local_path(path)
    if local is None:    # object stores have no exclusive create: write, then read back
        other = _lock_holder(storage, path) if storage.exists(path) else {}
        if other and not _lock_is_stale(other):
            raise _lock_busy_error(layout, other)
        storage.write_bytes(path, data)
        if _lock_holder(storage, path).get("pid") != me["pid"]:
            raise _lock_busy_error(layout, _lock_holder(storage, path))
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)   # atomic: one winner
        except FileExistsError:
            other = _lock_holder(storage, path)
            if not _lock_is_stale(other):
                raise _lock_busy_error(layout, other) from None
            local.unlink(missing_ok=True)   # a killed driver's lock: take it over
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    raise _lock_busy_error(layout, _lock_holder(storage, path))


@contextmanager
def sweep_lock(layout: SweepLayout):
    """Refuse a second driver on the same sweep directory; a stale lock (dead pid) is taken over.

    Local storage uses an exclusive create, so of two drivers started at once exactly one wins."""
    storage, path = layout.storage, layout.lock_file()
    me = {"pid": os.getpid(), "host": socket.gethostname(), "user": getpass.getuser(), "started_at": time.time()}
    _acquire_lock(layout, me)
    try:
        yield
    finally:
        try:
            if _lock_holder(storage, path).get("pid") == me["pid"]:
                storage.delete(path)
        except Exception:  # noqa: BLE001 - the lock is advisory; never mask the real error
            pass


def verify_all(graph: Graph, layout: SweepLayout) -> dict[str, tuple[bool, str]]:
    """`outputs.verify_outputs` of every task (reads and hashes every output file once)."""
    return {task_id: outputs.verify_outputs(layout, task) for task_id, task in graph.tasks.items()}


def mark_cached(state: SweepState, layout: SweepLayout, log=print,
                verified: dict[str, tuple[bool, str]] | None = None) -> None:
    """Tasks with verified outputs are cached; broken outputs are invalidated and recomputed."""
    verified = verified if verified is not None else verify_all(state.graph, layout)
    for task_id, task in state.graph.tasks.items():
        ok, reason = verified[task_id]
        if ok:
            state.states[task_id].status = CACHED
        elif reason != "no done.json":
            log(f"recomputing {task_id}: its stored output is not valid ({reason})")
            outputs.invalidate(layout, task)


def task_row(task: Task, status: str, *, spec_hash_: str, rev: str | None, error: str | None = None,
             duration_s: float | None = None, device: str | None = None, mlflow_run_id: str | None = None,
             cached: bool = False, started_at: float | None = None) -> dict:
    names = set(sinks.SCHEMAS["tasks"].names)
    row = {
        **{k: v for k, v in task.labels.items() if k in names},
        "task_id": task.id, "kind": task.kind, "status": status, "parents": list(task.parents),
        "spec_hash": spec_hash_, "duration_s": duration_s, "device": device, "git_rev": rev,
        "torch_version": torch.__version__, "cached": cached, "mlflow_run_id": mlflow_run_id, "error": error,
        "host": socket.gethostname(), "num_workers": task.resources.workers,
        "config_json": canonical_json(task.config), "finished_at": time.time(),
        "started_at": started_at,
    }
    return row


class TaskRecorder:
    """Writes the `tasks` row and the MLflow child run of every task as it finishes."""

    def __init__(self, layout: SweepLayout, state: SweepState, spec: SweepSpec, mlflow_sink, parent_run_id,
                 rev: str | None):
        self.layout, self.state, self.spec = layout, state, spec
        self.mlflow, self.parent_run_id, self.rev = mlflow_sink, parent_run_id, rev
        self.hash = spec_hash(spec)
        self._recorded: dict[str, str] = {}   # task id -> status already recorded in this invocation

    def record(self, task_id: str) -> None:
        """Write the task's row and MLflow run, once per task and final status in this invocation."""
        task = self.state.graph.tasks[task_id]
        s = self.state.states[task_id]
        status = STATUS_IN_TABLE[s.status]
        if self._recorded.get(task_id) == status:
            return   # e.g. a skipped task reached again from a second failed ancestor
        self._recorded[task_id] = status
        result = s.result or {}
        run_id = None
        if self.mlflow is not None:
            try:
                run_id = self._log_mlflow(task, s, result)
            except Exception as exc:  # noqa: BLE001 - tracking must never lose computed results
                print(f"warning: MLflow logging failed for {task_id}: {exc}", file=sys.stderr)
        row = task_row(task, status, spec_hash_=self.hash, rev=self.rev, error=s.error,
                       duration_s=s.duration_s, device=result.get("device"), mlflow_run_id=run_id,
                       cached=s.status == CACHED, started_at=s.started_at)
        sinks.write_fragment(self.layout, "tasks", task_id, [row])

    def _log_mlflow(self, task: Task, s, result: dict) -> str:
        metrics, curves, artifacts = dict(result.get("metrics") or {}), [], []
        if s.status in (DONE, CACHED):
            marker = outputs.read_marker(self.layout, task) or {}
            metrics.update(marker.get("metrics") or {})
            tables = marker.get("tables", [])
            if "train_curves" in tables:
                df = sinks.read_fragment(self.layout, "train_curves", task.id)
                for row in df.itertuples():
                    curves.append((f"train_{row.split}_loss", int(row.epoch), float(row.loss)))
                    if row.acc == row.acc and row.acc is not None:
                        curves.append((f"train_{row.split}_acc", int(row.epoch), float(row.acc)))
            if "evaluations" in tables:
                for row in sinks.read_fragment(self.layout, "evaluations", task.id).itertuples():
                    metrics[f"eval.{row.eval_set}.acc"] = float(row.acc)
                    metrics[f"eval.{row.eval_set}.loss"] = float(row.loss)
            if "paths" in tables:
                try:
                    artifacts = self._path_plot(task)
                except Exception as exc:  # noqa: BLE001
                    print(f"warning: path plot for {task.id} failed: {exc}", file=sys.stderr)
        params = {"kind": task.kind, "task_id": task.id, **{k: v for k, v in task.labels.items() if v is not None},
                  "config": task.config, "resources": {"cpus": task.resources.cpus, "gpus": task.resources.gpus,
                                                        "workers": task.resources.workers}}
        if s.duration_s is not None:
            metrics["duration_s"] = s.duration_s
        try:
            return self.mlflow.log_task(self.parent_run_id, task.kind, task.id, params=params, metrics=metrics,
                                        curves=curves, artifacts=artifacts,
                                        status=MLFLOW_STATUS[s.status], error=s.error)
        finally:
            for path in artifacts:   # the plot's temporary directory: MLflow has its copy now
                shutil.rmtree(Path(path).parent, ignore_errors=True)

    def _path_plot(self, task: Task) -> list[str]:
        from orchestrator import plots

        df = sinks.read_fragment(self.layout, "paths", task.id)
        fig = plots.plot_path(df, task.labels.get("pair_type"), task.labels.get("path_kind"),
                              task.labels.get("alignment"))
        directory = Path(tempfile.mkdtemp(prefix="mmc-plot-"))
        path = directory / f"path_{task.id}.png"
        fig.savefig(path, dpi=100)
        import matplotlib.pyplot as plt
        plt.close(fig)
        return [str(path)]


def run_sweep(spec: SweepSpec, *, spec_text: str | None = None, runner: str = "real", num_cpus: int | None = None,
              ray_address: str | None = None, report: bool = True, log=print) -> SweepOutcome:
    """Run (or resume) a sweep; never raises for task failures (see `SweepOutcome.ok`)."""
    start = time.time()
    graph = build_graph(spec)
    check_data(spec)
    layout = open_layout(spec)
    created = new_directories(layout)
    check_storage(layout)
    try:
        with sweep_lock(layout):
            # A finished sweep (every output verified) needs no cluster: skip Ray's ~10 s start.
            verified = verify_all(graph, layout)
            if not all(ok for ok, _ in verified.values()):
                init_ray(num_cpus=num_cpus, address=ray_address)
                problems = check_resources(spec, cluster_resources())
                if problems:
                    raise SweepError("the cluster cannot run this sweep:\n  - " + "\n  - ".join(problems))
            return _run_locked(spec, graph, layout, start, spec_text=spec_text, runner=runner,
                               report=report, log=log, verified=verified)
    except SweepError:
        remove_new_directories(layout, created)   # refused before any work: leave nothing behind
        raise


def _run_locked(spec: SweepSpec, graph: Graph, layout: SweepLayout, start: float, *, spec_text: str | None,
                runner: str, report: bool, log, verified: dict | None = None) -> SweepOutcome:
    """The body of `run_sweep` once the lock is held and the cluster fits the sweep."""
    layout.storage.write_bytes(layout.spec_file(), (spec_text or spec_yaml(spec)).encode())
    state = SweepState(graph)
    mark_cached(state, layout, log, verified)
    n_cached = state.count(CACHED)
    log(f"sweep `{spec.name}`: {len(graph.tasks)} tasks ({_kind_counts(graph)}); "
        f"{n_cached} already finished, {state.count(PENDING)} to run; storage {layout.root}")
    mlflow_sink, parent_run_id = _start_mlflow(spec, layout, state, log)
    rev = git_rev()
    recorder = TaskRecorder(layout, state, spec, mlflow_sink, parent_run_id, rev)
    for task_id, s in state.states.items():
        if s.status == CACHED and not sinks.verify_fragment(layout, "tasks", task_id):
            recorder.record(task_id)   # a driver killed between done.json and the tasks row
    ctx = TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep=spec.name, runner=runner,
                       data_root=spec_data_root(spec))

    def finished(task_id: str) -> None:
        recorder.record(task_id)
        for child in graph.descendants(task_id):
            if state.states[child].status == SKIPPED:
                recorder.record(child)

    progress = ProgressPrinter(state, spec.max_concurrent)
    run_graph(state, layout, ctx, max_concurrent=spec.max_concurrent, on_finish=finished, progress=progress)
    for task_id, s in state.states.items():   # pending tasks that could never run
        if s.status == SKIPPED and not sinks.verify_fragment(layout, "tasks", task_id):
            recorder.record(task_id)
    outcome = SweepOutcome(layout=layout, state=state, counts=state.counts(), wall_s=time.time() - start)
    _summarize(outcome, log)
    if report:
        _write_report(outcome, spec, spec_text, rev, mlflow_sink, parent_run_id, log)
    if mlflow_sink is not None:
        mlflow_sink.finish_parent(parent_run_id, status="FINISHED" if outcome.ok else "FAILED",
                                  metrics={f"tasks_{k}": v for k, v in outcome.counts.items()} |
                                  {"wall_s": outcome.wall_s})
        outcome.mlflow_ui = mlflow_ui_command(layout)
    _print_failures(outcome, log)
    log(f"finished in {outcome.wall_s:.1f}s: " + ", ".join(f"{k} {v}" for k, v in outcome.counts.items()))
    log(f"results: {layout.storage.join(layout.root, 'results')}")
    if outcome.report_html:
        log(f"report:  {outcome.report_html}")
    if outcome.mlflow_ui:
        log(f"browse:  {outcome.mlflow_ui}")
    return outcome


def spec_yaml(spec: SweepSpec) -> str:
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def spec_data_root(spec: SweepSpec) -> str | None:
    data = getattr(spec, "data", None)
    return getattr(data, "root", None)


def _kind_counts(graph: Graph) -> str:
    return ", ".join(f"{k} {v}" for k, v in graph.counts().items())


def _start_mlflow(spec: SweepSpec, layout: SweepLayout, state: SweepState, log):
    cfg = getattr(spec, "mlflow", None)
    if cfg is not None and not getattr(cfg, "enabled", True):
        return None, None
    uri = (getattr(cfg, "tracking_uri", None) if cfg is not None else None) or layout.mlflow_uri()
    try:
        sink = sinks.MlflowSink(uri, experiment_name=spec.name)
        run_id = sink.start_parent(
            params={"sweep": spec.name, "tasks": len(state.graph.tasks), "spec_hash": spec_hash(spec),
                    "storage": layout.root, "max_concurrent": spec.max_concurrent},
            tags={"mmc.spec_hash": spec_hash(spec), "mmc.git_rev": git_rev() or "unknown"})
        return sink, run_id
    except Exception as exc:  # noqa: BLE001 - results still land in Parquet
        log(f"warning: MLflow tracking at {uri} unavailable ({exc}); results go to Parquet only")
        return None, None


def mlflow_ui_command(layout: SweepLayout) -> str:
    return f"mlflow ui --backend-store-uri {layout.mlflow_uri()} --host 127.0.0.1 --port 5000"


def _summarize(outcome: SweepOutcome, log) -> None:
    from orchestrator import stats

    barriers = sinks.read_table(outcome.layout, "barriers")
    if barriers.empty:
        return
    summary = stats.summarize(barriers)
    outcome.summary = summary
    loss = summary[(summary["metric"] == "loss") & (summary["definition"] == "chord")]
    log("\nloss barrier (chord), mean over seeds [95% bootstrap CI]:")
    log(stats.format_table(loss))
    evaluations = sinks.read_table(outcome.layout, "evaluations")
    tasks = sinks.read_table(outcome.layout, "tasks")
    if not evaluations.empty:
        try:
            table = stats.finetune_table(evaluations, tasks)
            log("\naccuracy on the counterfactual test sets (mean ± std over seeds):")
            log(stats.format_table(table.text))
        except Exception as exc:  # noqa: BLE001
            log(f"(fine-tuning table unavailable: {exc})")


def _write_report(outcome, spec, spec_text, rev, mlflow_sink, parent_run_id, log) -> None:
    from orchestrator import report

    try:
        rep = report.write_report(outcome.layout, spec_text=spec_text or spec_yaml(spec), summary=outcome.summary,
                                  provenance={"spec_hash": spec_hash(spec), "git_rev": rev,
                                              "torch": torch.__version__, "wall_s": outcome.wall_s},
                                  planned=len(outcome.state.graph.tasks))
        outcome.report_html = str(rep.html)
        if mlflow_sink is not None:
            files = [outcome.report_html, *[str(f) for f in rep.figures]]
            mlflow_sink.log_artifacts(parent_run_id, files)
    except Exception as exc:  # noqa: BLE001 - a report failure must not hide finished results
        log(f"warning: report failed: {type(exc).__name__}: {exc}")


def _print_failures(outcome: SweepOutcome, log) -> None:
    failed = [(tid, s) for tid, s in outcome.state.states.items() if s.status == FAILED]
    skipped = outcome.state.count(SKIPPED)
    if not failed and not skipped:
        return
    log(f"\n{len(failed)} task(s) failed, {skipped} skipped because of them:")
    for tid, s in failed[:20]:
        first = (s.error or "").strip().splitlines()[0] if s.error else "unknown error"
        log(f"  - {tid}: {first}")
    if len(failed) > 20:
        log(f"  ... and {len(failed) - 20} more (see the `tasks` table)")
    log("Rerun the same command to retry them; finished tasks are not recomputed.")
