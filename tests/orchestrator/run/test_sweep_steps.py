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
from orchestrator.graph.dag import LABEL_KEYS, Graph, Resources, Task, build_graph
from orchestrator.run import sweep
from orchestrator.run.capacity import AutoscalerStatus, ClusterView
from orchestrator.run.signals import STOPS
from orchestrator.run.state import SweepState, TaskState
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.orchestrator.test_cli_errors import GOOD

LABELS = {k: None for k in LABEL_KEYS}


def _task(kind: str, name: str, *parents: Task) -> Task:
    return Task(kind, {"name": name}, tuple(p.id for p in parents), LABELS, Resources())


def _small():
    a, b = _task("pretrain", "a"), _task("pretrain", "b")
    ft = _task("finetune", "ft", a)
    path = _task("path_eval", "p", a, b)
    return Graph({t.id: t for t in (a, b, ft, path)}), (a, b, ft, path)


# ----- the outcome, the cache, the kinds left ---------------------------------------------------------

def test_a_run_is_ok_only_without_failed_and_without_skipped_tasks():
    def ok(**counts):
        return sweep.SweepOutcome(layout=None, state=None, counts=counts).ok
    assert ok(**{vocab.DONE: 3, vocab.FAILED: 0, vocab.SKIPPED: 0})
    assert not ok(**{vocab.DONE: 3, vocab.FAILED: 0, vocab.SKIPPED: 2})     # skipped because of an earlier run
    assert not ok(**{vocab.DONE: 3, vocab.FAILED: 1, vocab.SKIPPED: 0})


def test_verified_tasks_are_cached_and_only_broken_outputs_are_invalidated(monkeypatch):
    """A task whose outputs verify is cached; one whose stored output is broken is invalidated (and said so); one
    that never finished (no done.json) has nothing to invalidate."""
    graph, (a, b, ft, path) = _small()
    invalidated, logged = [], []
    monkeypatch.setattr(sweep.outputs, "invalidate", lambda layout, kind, task_id: invalidated.append(task_id))
    state = SweepState(graph)
    verified = {a.id: (True, ""), b.id: (False, "size mismatch in x"), ft.id: (False, "no done.json"),
                path.id: (False, "no done.json")}
    sweep.mark_cached(state, layout=None, verified=verified, log=logged.append)
    assert [t for t, s in state.states.items() if s.status == vocab.CACHED] == [a.id]
    assert invalidated == [b.id] and logged == [f"recomputing {b.id}: its stored output is not valid (size mismatch in x)"]
    assert sweep.unfinished_kinds(graph, verified) == ["pretrain", "finetune", "path_eval"]
    assert sweep.unfinished_kinds(graph, {**verified, b.id: (True, "")}) == ["finetune", "path_eval"]


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
    graph, (a, b, ft, path) = _small()
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
    tracker = SimpleNamespace(per_task=True, finish=lambda status, **kw: seen["finish"].append(status),
                              ui_command=lambda: None, browse_url=lambda: None)
    monkeypatch.setattr(sweep, "_start_tracking", lambda *args: tracker)
    monkeypatch.setattr(sweep, "TaskRecorder", lambda *args: SimpleNamespace(
        record=lambda t: None, on_status=lambda *a: None, close=lambda: None, table=SimpleNamespace(rows_of=None)))
    monkeypatch.setattr(sweep.compact, "compact_after_run", lambda layout_, log, rows_of, one_part: seen.update(one_part=one_part))
    monkeypatch.setattr(sweep, "_summarize", lambda outcome, log: [])

    def run(behave, notes: tuple[str, ...] = ()):
        monkeypatch.setattr(sweep, "run_graph", lambda state, *args, **kwargs: behave(state))
        verified = {t: (False, "no done.json") for t in graph.tasks}
        try:
            return sweep._run_locked(dataclasses.replace(spec, notes=notes), graph, layout, 0.0, verified, [],
                                     runner=vocab.REAL_RUNNER, report=False, log=seen["log"].append)
        finally:
            STOPS.stopping = False
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
