"""The steps of one `mmc-sweep run` (`orchestrator.run.sweep`) one at a time, without Ray: which tasks are
cached and which invalidated, the spec versions kept, what the wait for the cluster counts, how the cluster
is read, the outcome of a run whose Tune returned early, and the failures summary a user reads.

The run's own parts that need a cluster (Tune, the recorder's sinks, MLflow) are stand-ins; what is checked is
what the module's docstrings promise.
"""
from __future__ import annotations

import dataclasses

from types import SimpleNamespace

import pytest
import yaml

from orchestrator import vocab
from orchestrator.errors import SweepError
from orchestrator.graph.dag import Resources, build_graph
from orchestrator.run import sweep
from orchestrator.run.capacity import AutoscalerStatus, ClusterView
from orchestrator.run.signals import STOPS
from orchestrator.run.state import TaskState
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.orchestrator.test_cli_errors import GOOD
from tests.support.hand_graph import small_graph



# ----- the outcome ----------------------------------------------------------------------------------------

def test_a_run_is_ok_only_without_failed_and_without_skipped_tasks():
    def ok(**counts):
        return sweep.SweepOutcome(layout=None, state=None, counts=counts).ok
    assert ok(**{vocab.DONE: 3, vocab.FAILED: 0, vocab.SKIPPED: 0})
    assert not ok(**{vocab.DONE: 3, vocab.FAILED: 0, vocab.SKIPPED: 2})     # skipped because of an earlier run
    assert not ok(**{vocab.DONE: 3, vocab.FAILED: 1, vocab.SKIPPED: 0})


def test_each_new_version_archives_the_spec_it_replaces_under_the_next_number(tmp_path):
    """`spec-v<N>.yaml`: the earlier versions, numbered from 1; the current spec is version count + 1."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "s")
    storage = layout.storage
    assert sweep.archived_versions(layout) == 0
    for version, text in enumerate([b"first", b"second", b"third"], 1):
        storage.write_bytes(layout.spec_file(), text)
        assert sweep._archive_spec(layout) == layout.spec_version_file(version)
        assert sweep.archived_versions(layout) == version
    assert [storage.read_bytes(layout.spec_version_file(v)) for v in (1, 2, 3)] == [b"first", b"second", b"third"]


# ----- the cluster ------------------------------------------------------------------------------------

def test_the_wait_for_the_cluster_asks_for_the_unfinished_tasks_of_each_kind(monkeypatch):
    graph, (a, b, ft, path) = small_graph()
    seen = {}

    def wait_for_cluster(spec, kinds, read, *, wait_s, counts, ask, log):
        seen.update(kinds=kinds, wait_s=wait_s, counts=counts)
        return "view"

    monkeypatch.setattr(sweep.preflight, "wait_for_cluster", wait_for_cluster)
    monkeypatch.setattr(sweep.capacity, "ResourceRequest", lambda: SimpleNamespace(clear=lambda: seen.update(cleared=True)))
    verified = {a.id: (True, ""), b.id: (False, "no done.json"), ft.id: (False, "no done.json"), path.id: (False, "x")}
    view = sweep._wait_for_cluster(None, graph, verified, ["pretrain", "finetune", "path_eval"], read=None, wait_s=5.0,
                                   log=print)
    assert view == "view" and seen["counts"] == {"pretrain": 1, "finetune": 1, "path_eval": 1}
    assert seen["wait_s"] == 5.0 and seen["cleared"]


def test_a_local_ray_is_read_without_an_autoscaler_and_a_cluster_with_one(monkeypatch):
    reads = []
    monkeypatch.setattr(sweep, "read_cluster", lambda types, autoscaled: reads.append((types, autoscaled)) or ClusterView())
    monkeypatch.setattr(sweep, "_head_node_types", lambda log: "head's types")
    sweep._cluster_reader(None, local=True, log=print)()
    sweep._cluster_reader(None, local=False, log=print)()
    assert reads == [(None, False), ("head's types", True)]


def test_given_node_types_must_be_those_of_the_autoscaler_that_runs():
    """--autoscaler-config names node types; a cluster without an autoscaler, or whose autoscaler knows none of
    them, is refused with the flag, the file and the fix named; one that knows them passes."""
    types = SimpleNamespace(source="cluster.yaml", names=lambda: {"gpu_worker", "head"})
    sweep._check_autoscaler(types, ClusterView(autoscaler=AutoscalerStatus(active={"head": 1}, pending={"gpu_worker": 2})))
    with pytest.raises(SweepError, match=r"--autoscaler-config cluster.yaml names the node types gpu_worker, head, but "
                                         r"the cluster's autoscaler reports cpu_worker"):
        sweep._check_autoscaler(types, ClusterView(autoscaler=AutoscalerStatus(active={"cpu_worker": 1})))
    with pytest.raises(SweepError, match="the cluster runs no autoscaler"):
        sweep._check_autoscaler(types, ClusterView())


# ----- the end of a run -------------------------------------------------------------------------------

@pytest.fixture
def locked_run(tmp_path, monkeypatch):
    """`_run_locked` of a small spec whose tasks are all to run, with Tune replaced by `behave(state)`; the
    tracker's end, the compaction's `one_part` and the log are recorded."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({**GOOD, "mlflow": {"enabled": False}}, sort_keys=False))
    spec = load_spec(spec_path).with_top(storage=str(tmp_path / "runs"))
    graph = build_graph(spec)
    layout = SweepLayout(Storage(spec.storage), spec.name)
    seen = {"finish": [], "log": []}
    tracker = SimpleNamespace(per_task=True, finish=lambda status, **kw: seen["finish"].append(status) or
                              seen.update(finished_with=kw), ui_command=lambda: None, browse_url=lambda: None)
    monkeypatch.setattr(sweep, "_start_tracking", lambda *args: tracker)
    monkeypatch.setattr(sweep, "TaskRecorder", lambda *args: SimpleNamespace(
        record=lambda t: None, on_status=lambda *a: None, close=lambda: None, table=SimpleNamespace(rows_of=None)))
    monkeypatch.setattr(sweep.compact, "compact_after_run", lambda layout_, log, rows_of, one_part: seen.update(
        one_part=one_part, stopping=STOPS.stopping))
    monkeypatch.setattr(sweep, "_summarize", lambda outcome, log: [])

    def run(behave, notes: tuple[str, ...] = (), finished: tuple[str, ...] = (), start: float = 0.0):
        monkeypatch.setattr(sweep, "run_graph", lambda state, *args, **kwargs: behave(state))
        verified = {t: (t in finished, "" if t in finished else "no done.json") for t in graph.tasks}
        try:
            return sweep._run_locked(dataclasses.replace(spec, notes=notes), graph, layout, start, verified, [],
                                     runner=vocab.REAL_RUNNER, report=False, log=seen["log"].append)
        finally:
            STOPS.stopping = False
    seen["tracker"] = tracker
    return run, seen, graph


def _end_all(state, failed: str | None = None):
    for task_id in list(state.states):
        if state.states[task_id].status == vocab.PENDING:
            state.set_status(task_id, vocab.RUNNING)
            state.set_status(task_id, vocab.FAILED if task_id == failed else vocab.DONE, "boom" if task_id == failed else None)


def test_a_run_whose_tasks_all_finished_ends_its_parent_run_finished_and_compacts_into_one_part(locked_run):
    run, seen, graph = locked_run
    outcome = run(_end_all)
    assert outcome.ok and seen["finish"] == [vocab.MLFLOW_FINISHED] and seen["one_part"] is True


def test_a_run_says_what_its_spec_left_out_before_it_counts_its_tasks(locked_run):
    """`SweepSpec.notes` (a default pair the cue proportions cannot train) reach the run's log, before the
    line that counts the tasks, as `plan` prints them."""
    run, seen, graph = locked_run
    run(_end_all, notes=("`paths.pairs` (default): left out 'cue~nocue'",))
    heads = [i for i, line in enumerate(seen["log"]) if line.startswith(("note: ", "sweep `"))]
    assert [seen["log"][i][:6] for i in heads] == ["note: ", "sweep "], seen["log"]
    assert seen["log"][heads[0]] == "note: `paths.pairs` (default): left out 'cue~nocue'"


def test_a_run_with_a_failed_task_ends_its_parent_run_failed(locked_run):
    run, seen, graph = locked_run
    first = next(iter(graph.tasks))
    outcome = run(lambda state: _end_all(state, failed=first))
    assert not outcome.ok and outcome.counts[vocab.FAILED] == 1 and outcome.counts[vocab.SKIPPED] > 0
    assert seen["finish"] == [vocab.MLFLOW_FAILED]
    assert any(line.startswith("\n1 task(s) failed") for line in seen["log"])


def test_a_run_that_tune_left_with_tasks_pending_is_an_interrupt(locked_run):
    """Tune stops gracefully on Ctrl-C and returns: tasks not run yet (pending, none running) mean the run was
    interrupted: KeyboardInterrupt, the parent run KILLED, the fragments left for the next run's compaction."""
    run, seen, graph = locked_run
    first = next(iter(graph.tasks))

    def one_then_stop(state):
        state.set_status(first, vocab.RUNNING)
        state.set_status(first, vocab.DONE)

    with pytest.raises(KeyboardInterrupt):
        run(one_then_stop)
    assert seen["finish"] == [vocab.MLFLOW_KILLED] and seen["one_part"] is False


# ----- what the user reads after failures ---------------------------------------------------------------

def _printed(states: dict, skipped: int = 0) -> list[str]:
    lines: list[str] = []
    state = SimpleNamespace(states=states, count=lambda status: skipped if status == vocab.SKIPPED else 0)
    sweep._print_failures(SimpleNamespace(state=state), lines.append)
    return lines


@pytest.mark.parametrize("n, named, more", [(20, 20, []), (23, 20, ["  ... and 3 more (see the `tasks` table)"])])
def test_the_failures_summary_names_twenty_failed_tasks_by_their_errors_first_line(n, named, more):
    states = {f"t{i:02d}": TaskState(status=vocab.FAILED, error=f"OSError: disk {i}\nTraceback: ...") for i in range(n)}
    lines = _printed(states)
    assert lines[0] == f"\n{n} task(s) failed, 0 skipped because of them:"
    assert lines[1:1 + named] == [f"  - t{i:02d}: OSError: disk {i}" for i in range(named)]
    assert [line for line in lines if "more" in line] == more


def test_tasks_skipped_by_an_earlier_failure_are_reported_even_without_a_new_failure():
    lines = _printed({"t": TaskState(status=vocab.SKIPPED, error="skipped: inputs never became available")}, skipped=1)
    assert lines and lines[0] == "\n0 task(s) failed, 1 skipped because of them:"


# ----- the runner named by --runner -------------------------------------------------------------------

def test_a_runner_import_path_must_name_a_function():
    """`--runner package.module:function`: an attribute that exists but is no function (a string here) is
    refused before any work, with what a runner must be; a function is returned as it is."""
    from orchestrator.run.runners import RunnerError, plugin_runner
    from tests.support import runners

    with pytest.raises(RunnerError, match=r"`--runner`: 'tests.support.runners:BLOCK_ENV' is not a function"):
        plugin_runner("tests.support.runners:BLOCK_ENV")
    assert plugin_runner(runners.name("synthetic")) is runners.synthetic


@pytest.mark.parametrize("address, waited", [(None, 0), ("10.1.2.3:6379", 30.0)])
def test_only_a_cluster_at_an_address_is_waited_for(monkeypatch, tmp_path, address, waited):
    """`wait_for_nodes_s` is for nodes on their way to a cluster at an address (run_sweep's docstring); a local
    Ray this run starts has every node it will ever have, so its wait is 0 whatever the flag says."""
    from tests.conftest import write_spec

    class Reached(Exception):
        pass

    seen = {}

    def wait_for_cluster(spec, graph, verified, kinds, read, *, wait_s, log):
        seen.update(wait_s=wait_s, read=read)
        raise Reached

    monkeypatch.setattr(sweep.preflight, "check_ray_address", lambda address: None)
    monkeypatch.setattr(sweep, "_connect", lambda num_cpus, address: seen.update(address=address))
    monkeypatch.setattr(sweep, "_cluster_reader", lambda given, *, local, log: f"local={local}")
    monkeypatch.setattr(sweep, "_wait_for_cluster", wait_for_cluster)
    spec = load_spec(write_spec(tmp_path, "waits", cue_proportions=[0.0], finetune={"methods": []},
                                paths={"pairs": ["nocue~nocue:self"], "num_alphas": 2}))
    with pytest.raises(Reached):
        sweep.run_sweep(spec, ray_address=address, wait_for_nodes_s=30.0, report=False)
    assert seen == {"address": address, "read": f"local={address is None}", "wait_s": waited}


# ----- what the end of a run says and records -----------------------------------------------------------

def test_a_run_counts_the_tasks_already_finished_and_those_left_to_run(locked_run):
    """One task whose outputs verified is "already finished" (cached), every other one is "to run"."""
    run, seen, graph = locked_run
    first = next(iter(graph.tasks))
    run(_end_all, finished=(first,))
    counted = [line for line in seen["log"] if line.startswith("sweep `")]
    assert len(counted) == 1 and f"; 1 already finished, {len(graph.tasks) - 1} to run; " in counted[0]


def test_a_task_tune_left_running_means_an_interrupt_and_a_second_stop_signal_then_ends_at_once(locked_run):
    """Tune returned with a task still running (none pending): the run was interrupted (KeyboardInterrupt, parent
    run KILLED), and while the tables are compacted a stop signal counts as the second one (`STOPS.stopping`)."""
    run, seen, graph = locked_run
    last = list(graph.tasks)[-1]

    def leave_last_running(state):
        for task_id in list(state.states):
            state.set_status(task_id, vocab.RUNNING)
            if task_id != last:
                state.set_status(task_id, vocab.DONE)

    with pytest.raises(KeyboardInterrupt):
        run(leave_last_running)
    assert seen["finish"] == [vocab.MLFLOW_KILLED] and seen["one_part"] is False and seen["stopping"] is True


def test_a_finished_run_logs_its_task_counts_and_wall_time_on_its_parent_run(locked_run):
    """The parent run's metrics: `tasks_<status>` for each status and `wall_s`, the seconds since the run started
    (started 5 s before `_run_locked` here); a tracker with a run per task gets no copy of the tables."""
    import time

    run, seen, graph = locked_run
    outcome = run(_end_all, start=time.time() - 5.0)
    assert 5.0 <= outcome.wall_s < 60.0
    metrics = seen["finished_with"]["metrics"]
    assert metrics["wall_s"] == outcome.wall_s and metrics[f"tasks_{vocab.DONE}"] == len(graph.tasks)
    assert metrics[f"tasks_{vocab.FAILED}"] == 0 and seen["finished_with"]["tables"] is None
    assert any(line.startswith("finished in ") and f"{vocab.DONE} {len(graph.tasks)}" in line for line in seen["log"])


def test_the_command_that_serves_mlflow_and_the_address_of_its_runs_are_each_told_as_what_they_are(locked_run):
    run, seen, graph = locked_run
    seen["tracker"].ui_command = lambda: "mlflow ui --backend-store-uri sqlite:///x.db"
    seen["tracker"].browse_url = lambda: "http://127.0.0.1:5000/#/experiments/1"
    outcome = run(_end_all)
    assert outcome.mlflow_ui == "mlflow ui --backend-store-uri sqlite:///x.db"
    assert outcome.mlflow_url == "http://127.0.0.1:5000/#/experiments/1"
    assert seen["log"][-2:] == ["mlflow:  mlflow ui --backend-store-uri sqlite:///x.db",
                                "browse:  http://127.0.0.1:5000/#/experiments/1"]


def test_a_run_without_a_report_prints_the_summary_and_writes_no_report(locked_run, monkeypatch):
    run, seen, graph = locked_run
    summarized = []
    monkeypatch.setattr(sweep, "_summarize", lambda outcome, log: summarized.append(outcome) or [])
    monkeypatch.setattr(sweep, "_write_report", lambda *args: pytest.fail("a report written for report=False"))
    outcome = run(_end_all)
    assert summarized == [outcome] and outcome.report_html is None


@pytest.mark.parametrize("changed", [{"tasks": True}, {"tasks": True, "paths": False}])
def test_result_parts_mended_before_the_run_are_verified_again(locked_run, monkeypatch, changed):
    """`compact.repair` mended a damaged part (in one table; the others left as they were is enough): the outputs
    are verified again, and what now verifies is cached (here every task: nothing left to run) instead of being
    run again from the verdicts before the repair."""
    run, seen, graph = locked_run
    monkeypatch.setattr(sweep.compact, "repair",
                        lambda layout, log: {t: SimpleNamespace(changed=c) for t, c in changed.items()})
    monkeypatch.setattr(sweep, "verify_all", lambda graph_, layout: {t: (True, "") for t in graph_.tasks})
    try:
        outcome = run(lambda state: None)      # Tune runs nothing: a task left pending would mean an interrupt
    except KeyboardInterrupt:
        pytest.fail("tasks whose outputs verified after the repair were left to run")
    assert outcome.ok and outcome.counts[vocab.CACHED] == len(graph.tasks)
    assert any(f"{len(graph.tasks)} already finished, 0 to run" in line for line in seen["log"])


# ----- from the spec to the cluster: what `run_sweep` hands on -----------------------------------------------

@pytest.fixture
def up_to_the_run(monkeypatch, tmp_path):
    """`run_sweep` of a tiny spec with Ray, the cluster and the locked run replaced by recorders: returns
    `go(view, read_view, ray_address, check_cluster, runner, **spec_sections)` -> what each step was given."""
    from tests.conftest import write_spec

    seen = {}

    def go(view=None, read_view=None, ray_address=None, check_cluster=None, runner=vocab.REAL_RUNNER, **sections):
        seen.clear()
        monkeypatch.setattr(sweep.preflight, "check_ray_address", lambda address: None)
        monkeypatch.setattr(sweep.preflight, "check_tracking_server",
                            lambda uri: seen.setdefault("tracking_checked", []).append(uri))
        monkeypatch.setattr(sweep, "_connect", lambda num_cpus, address: seen.update(address=address))
        monkeypatch.setattr(sweep, "_cluster_reader", lambda given, *, local, log: lambda: read_view)
        monkeypatch.setattr(sweep, "_wait_for_cluster", lambda *args, **kwargs: view)
        monkeypatch.setattr(sweep.preflight, "check_cluster", check_cluster or
                            (lambda spec, layout, resources, kinds, grows: seen.update(checked=resources, grows=grows)))
        monkeypatch.setattr(sweep, "_run_locked", lambda *args, concurrency, **kwargs: seen.update(concurrency=concurrency))
        spec = load_spec(write_spec(tmp_path, "handed", **{"cue_proportions": [0.0], "finetune": {"methods": []},
                                                           "paths": {"pairs": ["nocue~nocue:self"], "num_alphas": 2},
                                                           **sections}))
        sweep.run_sweep(spec, runner=runner, ray_address=ray_address, wait_for_nodes_s=0, report=False)
        return seen
    return go


def test_the_run_follows_the_cluster_it_waited_for_at_most_max_concurrent_at_once(up_to_the_run):
    """The concurrency starts from the view the wait returned (16 CPUs; the cluster is not read again at once, where
    it would say 1 CPU) and is bounded by the spec's max_concurrent (3)."""
    sixteen = ClusterView(({"CPU": 16.0},), {"CPU": 16.0})
    one = ClusterView(({"CPU": 1.0},), {"CPU": 1.0})
    seen = up_to_the_run(view=sixteen, read_view=one, max_concurrent=3)
    assert seen["concurrency"].limit(Resources(cpus=1)) == 3
    seen = up_to_the_run(view=sixteen, read_view=one, max_concurrent=None)
    assert seen["concurrency"].limit(Resources(cpus=1)) == 16


def test_the_cluster_is_checked_against_what_its_autoscaler_can_grow_it_to(up_to_the_run):
    """A head without GPUs whose autoscaler can start two 1-GPU workers: the resources checked have 2 GPUs."""
    from orchestrator.run.node_types import NodeType, NodeTypes

    head = {"CPU": 1.0, "node:__internal_head__": 1.0}
    types = NodeTypes((NodeType("head", (("CPU", 1.0),), head=True),
                       NodeType("gpu_worker", (("CPU", 1.0), ("GPU", 1.0)), max_workers=2)), "cluster.yaml")
    view = ClusterView((head,), dict(head), types, AutoscalerStatus(active={"head": 1}))
    seen = up_to_the_run(view=view, read_view=view, ray_address="10.1.2.3:6379")
    assert seen["checked"]["GPU"] == 2.0 and "GPU" not in view.now()
    assert seen["grows"] is True          # the nodes it starts join after the check: local paths get a warning


def test_the_address_given_wins_over_ray_address(up_to_the_run, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.9.9.9:6379")
    view = ClusterView(({"CPU": 4.0},), {"CPU": 4.0})
    assert up_to_the_run(view=view, read_view=view, ray_address="10.1.2.3:6379")["address"] == "10.1.2.3:6379"
    assert up_to_the_run(view=view, read_view=view)["address"] == "10.9.9.9:6379"


def test_a_finished_sweep_connects_to_no_ray(up_to_the_run, monkeypatch):
    """Every task's outputs verify: nothing is left to do, so Ray is not started (its ~10 s) and the run has no
    concurrency to follow."""
    monkeypatch.setattr(sweep, "verify_all", lambda graph, layout: {t: (True, "") for t in graph.tasks})
    seen = up_to_the_run()
    assert "address" not in seen and seen["concurrency"] is None


def test_a_tracking_server_is_not_checked_when_tracking_is_off(up_to_the_run):
    """`mlflow.enabled: false` with a `tracking_uri` left in the spec: no server is asked (it need not answer)."""
    view = ClusterView(({"CPU": 4.0},), {"CPU": 4.0})
    seen = up_to_the_run(view=view, read_view=view, mlflow={"enabled": False, "tracking_uri": "http://127.0.0.1:9"})
    assert seen["tracking_checked"] == [None]


def test_a_run_refused_at_the_cluster_check_leaves_no_directory_behind(up_to_the_run, tmp_path):
    """run_sweep's docstring: an MmcError is raised "before any work, leaving nothing behind": the storage
    directories this run created are removed again."""
    def refuse(spec, layout, resources, kinds, grows):
        raise SweepError("the cluster cannot run this sweep")

    view = ClusterView(({"CPU": 4.0},), {"CPU": 4.0})
    with pytest.raises(SweepError, match="cannot run this sweep"):
        up_to_the_run(view=view, read_view=view, check_cluster=refuse)
    assert not (tmp_path / "runs").exists()


# ----- stop signals (`signals.StopSignals`), handlers set and put back without raising a signal -----------------


# ----- the sweep's MLflow parent run ----------------------------------------------------------------------

def test_the_parent_run_is_the_current_spec_version_and_carries_the_sixteen_digit_spec_hash(tmp_path, monkeypatch):
    """With two earlier specs archived (`spec-v1`, `spec-v2`) the current one is version 3 (`archived_versions` + 1);
    its spec hash is the first 16 hex digits of the spec's sha256 (docs/ANALYSIS.md, `spec_hash`), the one the
    tasks table records; the git revision's label is tagged, `unknown` without one."""
    from orchestrator.provenance import SourceRevision
    from orchestrator.spec.sweep_spec import spec_hash

    started = []

    class Tracker:
        def __init__(self, uri, experiment_name):
            self.uri, self.experiment_name = uri, experiment_name

        def start(self, run):
            started.append(run)

    monkeypatch.setattr(sweep.tracking, "MlflowTracker", Tracker)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(GOOD, sort_keys=False))
    spec = load_spec(spec_path).with_top(storage=str(tmp_path / "runs"))
    layout = SweepLayout(Storage(spec.storage), spec.name)
    for version in (1, 2):
        layout.storage.write_bytes(layout.spec_version_file(version), b"earlier")
    graph = build_graph(spec)
    tracker = sweep._start_tracking(spec, layout, graph, print, SourceRevision("ab" * 20))
    assert isinstance(tracker, Tracker) and tracker.experiment_name == spec.name
    run = started[0]
    assert run.version == 3 and run.sweep == spec.name and run.graph is graph
    assert len(run.spec_hash) == 16 and run.spec_hash == spec_hash(spec)[:16]
    assert int(run.spec_hash, 16) >= 0                                   # hex digits
    assert run.git_commit == "ab" * 20 and run.git_rev == ("ab" * 20)[:12]
    sweep._start_tracking(spec, layout, graph, print, None)
    assert started[1].git_rev is None and started[1].git_commit is None
    assert started[0].tags["mmc.storage"] == layout.root
    # on an object store: the sweep's URI with its scheme, credentials redacted (no endpoint is contacted)
    remote = SweepLayout(Storage("s3://AKIAEXAMPLE:SECRETEXAMPLE@bucket/runs?endpoint_override=127.0.0.1:9"), spec.name)
    monkeypatch.setattr(sweep, "archived_versions", lambda layout: 0)
    monkeypatch.setattr(sweep, "_tracking_uri", lambda spec, layout: "http://127.0.0.1:9")
    sweep._start_tracking(spec, remote, graph, print, None)
    assert started[2].tags["mmc.storage"] == f"s3://***@bucket/runs/{spec.name}"


def test_a_runner_that_names_no_function_is_refused_before_anything_is_written(up_to_the_run, tmp_path):
    """`--runner package.module:attribute` naming no function: one clear error (RunnerError, exit 2) before the
    spec is even planned, and no directory is made."""
    from orchestrator.run.runners import RunnerError

    view = ClusterView(({"CPU": 4.0},), {"CPU": 4.0})
    with pytest.raises(RunnerError, match="is not a function"):
        up_to_the_run(view=view, read_view=view, runner="tests.support.runners:BLOCK_ENV")
    assert not (tmp_path / "runs").exists()


def test_node_types_given_for_the_cluster_are_checked_against_the_autoscaler_it_runs(monkeypatch):
    """`_cluster_reader(given, ...)`: node types given (--autoscaler-config) are "checked against the autoscaler
    that runs" before the reader is returned: a cluster without an autoscaler refuses them at once."""
    types = SimpleNamespace(source="cluster.yaml", names=lambda: {"gpu_worker"})
    monkeypatch.setattr(sweep, "read_cluster", lambda types_, autoscaled: ClusterView())
    with pytest.raises(SweepError, match="--autoscaler-config cluster.yaml: the cluster runs no autoscaler"):
        sweep._cluster_reader(types, local=False, log=print)
    running = ClusterView(autoscaler=AutoscalerStatus(active={"gpu_worker": 1}))
    monkeypatch.setattr(sweep, "read_cluster", lambda types_, autoscaled: running)
    assert sweep._cluster_reader(types, local=False, log=print)() is running


def test_the_failures_summary_tells_errors_that_would_recur_from_those_a_rerun_retries():
    """Failures of a deterministic kind (a DivergenceError) are named as such, and only failures of another
    kind get the advice to rerun; where every failure would recur, no rerun is advised."""
    recur = {"a": TaskState(status=vocab.FAILED, error="DivergenceError: loss is nan at epoch 2")}
    lines = _printed({**recur, "b": TaskState(status=vocab.FAILED, error="OSError: disk full")})
    assert [line.split(" would fail")[0] for line in lines if "would fail the same way" in line] == \
        ["1 of them (DivergenceError)"]
    assert lines[-1] == "Rerun the same command to retry the others; finished tasks are not recomputed."
    lines = _printed(recur)
    assert any(line.startswith("1 of them (DivergenceError)") for line in lines)
    assert not any(line.startswith("Rerun the same command") for line in lines)


# ----- what a run records again, where it logs, and what it never shows (blind hunt 41) -------------------------

def test_a_finished_task_whose_tasks_row_is_missing_is_recorded_again_and_one_with_its_row_is_not(locked_run,
                                                                                                  monkeypatch):
    """A driver killed between a task's done.json and its `tasks` row: the next run finds the task cached and
    writes its row; a cached task whose row is there is not written twice."""
    run, seen, graph = locked_run
    first, second = list(graph.tasks)[:2]
    recorded = []
    monkeypatch.setattr(sweep, "TaskRecorder", lambda *args: SimpleNamespace(
        record=recorded.append, on_status=lambda *a: None, close=lambda: None, table=SimpleNamespace(rows_of=None)))
    monkeypatch.setattr(sweep.tables, "verify_fragment", lambda layout, table, task_id: task_id == second)
    run(_end_all, finished=(first, second))
    assert recorded == [first]


def _tracked_uri(tmp_path, monkeypatch, name: str, **mlflow) -> tuple[str, SweepLayout]:
    """The URI `_start_tracking` hands MLflow for a spec whose `mlflow` section is `mlflow`."""
    from tests.conftest import write_spec

    uris = []

    class Tracker:
        def __init__(self, uri, experiment_name):
            uris.append(uri)

        def start(self, run):
            pass

    monkeypatch.setattr(sweep.tracking, "MlflowTracker", Tracker)
    spec = load_spec(write_spec(tmp_path, name, mlflow={"enabled": True, **mlflow}))
    layout = SweepLayout(Storage(spec.storage), spec.name)
    sweep._start_tracking(spec, layout, build_graph(spec), print, None)
    return uris[0], layout


def test_a_tracking_server_in_the_spec_is_where_the_sweep_logs_and_without_one_its_own_store(tmp_path, monkeypatch):
    uri, _ = _tracked_uri(tmp_path, monkeypatch, "served", tracking_uri="http://127.0.0.1:5000")
    assert uri == "http://127.0.0.1:5000"
    uri, layout = _tracked_uri(tmp_path, monkeypatch, "own")
    assert uri == layout.mlflow_uri()


def test_an_unavailable_tracking_server_is_warned_of_without_its_credentials(tmp_path, monkeypatch, caplog):
    """Results still land in Parquet; the warning (read by a Python API caller's own log handlers too) names the
    server with its credentials redacted."""
    import logging

    from tests.conftest import write_spec

    def refuse(uri, experiment_name):
        raise ConnectionError(f"cannot reach {uri}")

    monkeypatch.setattr(sweep.tracking, "MlflowTracker", refuse)
    spec = load_spec(write_spec(tmp_path, "down", mlflow={"enabled": True,
                                                          "tracking_uri": "http://u:SECRETfake1@127.0.0.1:9"}))
    layout = SweepLayout(Storage(spec.storage), spec.name)
    with caplog.at_level(logging.WARNING, logger=sweep.__name__):
        tracker = sweep._start_tracking(spec, layout, build_graph(spec), print, None)
    assert isinstance(tracker, sweep.tracking.NullTracker)
    warned = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert warned and all("SECRETfake1" not in line for line in warned)
    assert "http://***@127.0.0.1:9" in warned[0]


def test_a_tracking_uri_set_while_mlflow_is_off_is_warned_of_and_one_in_use_is_not(up_to_the_run, caplog):
    import logging

    view = ClusterView(({"CPU": 4.0},), {"CPU": 4.0})
    said = "`mlflow.enabled` is false: nothing is logged to MLflow"
    with caplog.at_level(logging.WARNING, logger=sweep.__name__):
        up_to_the_run(view=view, read_view=view, mlflow={"enabled": False, "tracking_uri": "http://127.0.0.1:5000"})
    assert any(said in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=sweep.__name__):
        up_to_the_run(view=view, read_view=view, mlflow={"enabled": True, "tracking_uri": "http://127.0.0.1:5000"})
    assert not any(said in r.getMessage() for r in caplog.records)


def test_a_ray_that_cannot_be_reached_is_refused_without_the_credentials_its_error_quotes(monkeypatch):
    """The SweepError reaches a Python API caller as it is: the address and Ray's first line, both redacted."""
    import contextlib

    def init_ray(num_cpus, address):
        raise ConnectionError("could not connect to http://u:SECRETfake2@10.0.0.1:8265\nmore")

    monkeypatch.setattr(sweep, "init_ray", init_ray)
    monkeypatch.setattr(sweep, "ray_processes_apart", contextlib.nullcontext)
    with pytest.raises(SweepError) as refused:
        sweep._connect(None, "u:SECRETfake2@10.0.0.1:6379")
    assert "SECRETfake2" not in str(refused.value)
    assert "could not connect to http://***@10.0.0.1:8265; check --address" in str(refused.value)


def test_the_reports_clusters_page_goes_to_mlflow_with_the_report_and_its_figures(monkeypatch):
    from orchestrator.report import build as report

    rep = SimpleNamespace(html="r/report.html", figures=["r/a.png"], clusters="r/clusters.html", summary_table=None,
                          text="")
    monkeypatch.setattr(report, "write_report", lambda layout, provenance: rep)
    monkeypatch.setattr(sweep, "torch_version", lambda: "x")
    outcome = SimpleNamespace(layout=SimpleNamespace(storage=SimpleNamespace(shown=lambda p: p)), wall_s=1.0)
    spec = SimpleNamespace()
    monkeypatch.setattr(sweep, "short_hash", lambda spec: "0" * 16)
    assert sweep._write_report(outcome, spec, None, print) == ["r/report.html", "r/a.png", "r/clusters.html"]
    rep.clusters = None
    assert sweep._write_report(outcome, spec, None, print) == ["r/report.html", "r/a.png"]
