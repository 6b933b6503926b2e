"""Multi-worker training through Ray Train (DDP, gloo on CPU): a worker killed mid-task is replaced
and the task resumes from its checkpoint (shown by the epochs each attempt trains, and by final
weights equal to an uninterrupted run); tasks placed by custom resources on a simulated multi-node
cluster. Inside the Ray workers, the test runners (tests/support/runners.py) record what each attempt did."""

from __future__ import annotations


import pytest
import torch

from orchestrator import vocab
from orchestrator.results import outputs, tables
from orchestrator.run import schedule as S, state as sweep_state
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.run.sweep import run_sweep
from tasks import data as data_lib
from tasks.evaluate import evaluate_sets
from tasks.models import ModelSettings, build_model
from tasks.settings import from_identity
from tests.conftest import NODE_START_TIMEOUT_S, start_local_ray, wait_for_resources, write_spec
from tests.support import runners
from tests.support.runners import CRASH_ENV, CRASH_MARKER_DIR_ENV, WAIT_ENV, hook_env, resumed_from, trained_epochs

pytestmark = pytest.mark.slow    # a two-worker Ray Train pretraining in the module fixture (~1 min)

ONLY_PRETRAIN = {"cue_proportions": [0.0], "finetune": {"methods": []}, "paths": {"pairs": ["nocue~nocue:self"],
                                                                                   "num_alphas": 2}}
# Ray Train's controller looks at its workers every 2 s by default; a tiny task's run ends sooner noticed
TRAIN_POLL = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}
TWO_WORKERS = {"pretrain": {"cpus": 0.5, "workers": 2}, "path_eval": {"cpus": 0.5}}


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    """The same two-worker pretrain task run twice on a local Ray: first with rank 1 dying once right
    after epoch 1 of 3 (`MMC_CRASH_WORKER_AT_EPOCH`), then uninterrupted (the crash happens once per
    task id). Returns (task, crashed outcome, uninterrupted outcome, events dir, crash marker dir)."""
    import ray

    tmp = tmp_path_factory.mktemp("ddp")
    events, markers = tmp / "events", tmp / "markers"
    markers.mkdir()
    spec = load_spec(write_spec(tmp, "ddp", **ONLY_PRETRAIN, pretrain={"epochs": 3}, resources=TWO_WORKERS))
    (task,) = [t for t in build_graph(spec).tasks.values() if t.kind == "pretrain"]
    env = hook_env(events, **{CRASH_ENV: f"{task.id}:1", CRASH_MARKER_DIR_ENV: str(markers)},
                   **TRAIN_POLL)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)            # before Ray starts: its workers inherit them
        start_local_ray(2)
        try:
            crashed = run_sweep(spec.with_top(storage=str(tmp / "crashed")), report=False, runner=runners.name("real"))
            clean = run_sweep(spec.with_top(storage=str(tmp / "clean")), report=False, runner=runners.name("real"))
        finally:
            ray.shutdown()
    return task, crashed, clean, events, markers


def test_two_worker_pretrain_runs_through_ray_train_and_writes_what_it_evaluated(train_runs):
    task, _, outcome, _, _ = train_runs
    assert outcome.ok and outcome.counts[vocab.DONE] == 2, outcome.counts     # the pretrain and its self path
    layout = outcome.layout
    row = tables.read_fragment(layout, vocab.TASKS, task.id).iloc[0]
    assert row.status == vocab.FINISHED and row.num_workers == 2 and row.device == "ray-train x2"
    curves = tables.read_fragment(layout, vocab.TRAIN_CURVES, task.id)
    assert sorted(curves["epoch"]) == [0, 1, 2]

    # rank 0 wrote the checkpoint it evaluated: re-evaluating it here gives the stored rows
    tensors, meta = outputs.load_checkpoint(layout, "pretrain", task.id)
    assert meta["task_id"] == task.id
    unversioned = {k: v for k, v in task.config["data"].items() if k != "version"}   # the data's version
    data = data_lib.load_cue_data(from_identity(data_lib.DataSettings, unversioned))
    m = from_identity(ModelSettings, {k: v for k, v in task.config["model"].items() if k != "version"})
    model = build_model(m.name, data.num_classes, data.in_channels, m.width)
    model.load_state_dict(tensors)
    expected = {r["eval_set"]: r for r in evaluate_sets(model, data.eval_sets)}
    stored = tables.read_fragment(layout, vocab.EVALUATIONS, task.id).set_index("eval_set")
    assert set(stored.index) == set(expected)
    for eval_set, r in expected.items():
        torch.testing.assert_close(float(stored.loc[eval_set, "loss"]), r["loss"], rtol=1e-4, atol=1e-5)
        assert float(stored.loc[eval_set, "acc"]) == pytest.approx(r["acc"])
    assert outputs.verify_outputs(layout, task.kind, task.id) == (True, "")


def test_killed_training_worker_is_replaced_and_the_task_resumes_from_its_checkpoint(train_runs):
    """Rank 1 dies (os._exit) right after epoch 1; Ray Train restarts the worker group. The new group
    must be handed the last checkpoint and train only the remaining epochs; the weights then equal an
    uninterrupted run's, and every curve row is there exactly once."""
    task, crashed, clean, events, markers = train_runs
    assert (markers / f"mmc-crashed-{task.id}").exists(), "the injected worker crash did not happen"
    assert crashed.ok and crashed.counts[vocab.DONE] == 2, crashed.counts

    starts = resumed_from(events, task.id)
    attempts = trained_epochs(events, task.id)
    assert len(starts) == len(attempts) == 3, (starts, attempts)        # crashed, resumed, uninterrupted
    assert starts[0] is None and attempts[0] == [0, 1]
    # the injected crash comes after epoch 1's checkpoint was reported (and, for the crash to be at a
    # known point, processed by Ray Train): the new group must start at epoch 2
    assert starts[1] == 2, f"the restarted workers did not resume from epoch 1's checkpoint (started from {starts[1]})"
    assert attempts[1] == [2]
    assert starts[2] is None and attempts[2] == [0, 1, 2]

    resumed = outputs.load_checkpoint(crashed.layout, "pretrain", task.id)[0]
    uninterrupted = outputs.load_checkpoint(clean.layout, "pretrain", task.id)[0]
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name
    curves = tables.read_fragment(crashed.layout, vocab.TRAIN_CURVES, task.id)
    assert sorted(curves["epoch"]) == [0, 1, 2], "curve rows missing or duplicated after the resume"
    again = tables.read_fragment(clean.layout, vocab.TRAIN_CURVES, task.id).sort_values("epoch")
    assert curves.sort_values("epoch")["loss"].tolist() == pytest.approx(again["loss"].tolist(), abs=0)
    assert outputs.verify_outputs(crashed.layout, task.kind, task.id)[0]


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    """A head without the custom resource and two nodes with one `fake_gpu` each; their workers run
    the `events` runner, the two root tasks waiting for each other."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    events = tmp_path / "events"
    for key, value in hook_env(events, **{WAIT_ENV: "pretrain:2"}).items():
        monkeypatch.setenv(key, value)      # the nodes' workers inherit it
    small = 80 * 1024 ** 2
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "object_store_memory": small,
                                                      "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1, num_gpus=0, resources={"fake_gpu": 1}, object_store_memory=small)
             for _ in range(2)]
    c.wait_for_nodes(timeout=NODE_START_TIMEOUT_S)
    ray.init(address=c.address, log_to_driver=False)
    wait_for_resources({"CPU": 3, "fake_gpu": 2})   # both nodes counted, as the sweep's preflight reads them
    try:
        yield c, {n.node_id for n in nodes}
    finally:
        ray.shutdown()
        c.shutdown()


def test_custom_resources_place_tasks_on_matching_nodes(cluster, tmp_path):
    from orchestrator.run import preflight
    _, gpu_nodes = cluster
    wants = {"cpus": 0.5, "custom": {"fake_gpu": 1}}
    path = write_spec(tmp_path, "nodes", paths={"pairs": ["cue~nocue"], "kinds": ["linear", "aligned"],
                                                "alignments": ["weight"]},
                      finetune={"methods": []}, max_concurrent=4,
                      resources={k: wants for k in ("pretrain", "align", "path_eval")})
    spec = load_spec(path)
    assert S.cluster_resources().get("fake_gpu") == 2
    assert preflight.check_resources(spec, S.cluster_resources(), list(vocab.TASK_KINDS)) == []
    graph = build_graph(spec)
    layout = SweepLayout(Storage(str(tmp_path / "runs")), spec.name)
    ctx = S.TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep=spec.name, runner=runners.name("events"))
    state = sweep_state.SweepState(graph)
    S.run_graph(state, layout, ctx, max_concurrent=spec.max_concurrent)
    assert state.counts()[vocab.DONE] == len(graph), state.progress_line(4)

    nodes = {t: outputs.read_marker(layout, task.kind, t)["meta"]["node_id"] for t, task in graph.tasks.items()}
    assert set(nodes.values()) <= gpu_nodes              # never on the head (no fake_gpu there)
    roots = [t for t, task in graph.tasks.items() if not task.parents]
    assert {nodes[t] for t in roots} == gpu_nodes        # the two roots ran side by side, one per node ...
    assert [state.states[t].result.metrics["partners"] for t in roots] == [2, 2]
    # ... and never more than the 2 fake_gpu allow, although max_concurrent is 4
    assert max(s.result.metrics["running_at_start"] for s in state.states.values()) <= 2
