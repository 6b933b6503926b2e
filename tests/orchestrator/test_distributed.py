"""Multi-worker training through Ray Train (DDP, gloo on CPU) and tasks placed by custom resources
on a simulated multi-node cluster."""

from __future__ import annotations

import pytest
import torch

from orchestrator import outputs, schedule as S, sinks
from orchestrator.graph import build_graph
from orchestrator.layout import Storage, SweepLayout
from orchestrator.spec import load_spec
from orchestrator.sweep import run_sweep
from orchestrator.work import SLEEP_S_ENV_VAR
from tasks import data as data_lib
from tasks.evaluate import evaluate_sets
from tasks.models import build_model
from tests.conftest import write_spec

ONLY_PRETRAIN = {"cue_proportions": [0.0], "finetune": {"methods": []}, "paths": {"pairs": []}}


@pytest.fixture
def ray_2cpu():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    S.init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def test_two_worker_pretrain_runs_through_ray_train(ray_2cpu, tmp_path):
    # 2 workers x 0.5 CPU + 0.01 CPU for the trial fit on 2 CPUs (a 1-CPU trial would hang)
    path = write_spec(tmp_path, "ddp", **ONLY_PRETRAIN, pretrain={"epochs": 2},
                      resources={"pretrain": {"cpus": 0.5, "workers": 2}})
    spec = load_spec(path)
    graph = build_graph(spec)
    (task_id, task), = graph.tasks.items()
    assert task.resources.workers == 2
    outcome = run_sweep(spec, spec_text=path.read_text(), num_cpus=2, report=False)
    assert outcome.ok and outcome.counts["done"] == 1, outcome.counts
    layout = outcome.layout

    row = sinks.read_table(layout, "tasks").iloc[0]
    assert row.task_id == task_id and row.status == "finished" and row.num_workers == 2
    assert row.device == "ray-train x2"
    curves = sinks.read_table(layout, "train_curves")
    assert sorted(curves["epoch"]) == [0, 1] and set(curves["task_id"]) == {task_id}

    # rank 0 wrote the checkpoint it evaluated: re-evaluating it here gives the stored rows
    tensors, meta = outputs.load_checkpoint(layout, "pretrain", task_id)
    assert meta["task_id"] == task_id
    data = data_lib.load_cue_data(data_lib.DataSettings(**task.config["data"]))
    model = build_model(task.config["model"]["name"], data.num_classes, data.in_channels,
                        task.config["model"].get("width"))
    model.load_state_dict(tensors)
    expected = {r["eval_set"]: r for r in evaluate_sets(model, data.eval_sets)}
    stored = sinks.read_table(layout, "evaluations").set_index("eval_set")
    assert set(stored.index) == set(expected)
    for eval_set, r in expected.items():
        torch.testing.assert_close(float(stored.loc[eval_set, "loss"]), r["loss"], rtol=1e-4, atol=1e-5)
        assert float(stored.loc[eval_set, "acc"]) == pytest.approx(r["acc"])
    assert outputs.verify_outputs(layout, task) == (True, "")


@pytest.fixture
def cluster(monkeypatch):
    """A head without the custom resource and two nodes with one `fake_gpu` each."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv(SLEEP_S_ENV_VAR, "1.0")      # the nodes' workers inherit it
    small = 80 * 1024 ** 2
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": small,
                                                      "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1, resources={"fake_gpu": 1}, object_store_memory=small) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c, {n.node_id for n in nodes}
    finally:
        ray.shutdown()
        c.shutdown()


def test_custom_resources_place_tasks_on_matching_nodes(cluster, tmp_path):
    _, gpu_nodes = cluster
    wants = {"cpus": 0.5, "custom": {"fake_gpu": 1}}
    path = write_spec(tmp_path, "nodes", paths={"pairs": ["cue~nocue"], "kinds": ["linear", "aligned"],
                                                "alignments": ["weight"]},
                      finetune={"methods": []}, max_concurrent=4,
                      resources={k: wants for k in ("pretrain", "align", "path_eval")})
    spec = load_spec(path)
    assert S.cluster_resources().get("fake_gpu") == 2
    from orchestrator.spec import check_resources
    assert check_resources(spec, S.cluster_resources()) == []
    graph = build_graph(spec)
    layout = SweepLayout(Storage(str(tmp_path / "runs")), spec.name)
    ctx = S.TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep=spec.name, runner="sleep")
    state = S.SweepState(graph)
    S.run_graph(state, layout, ctx, max_concurrent=spec.max_concurrent)
    assert state.counts()[S.DONE] == len(graph), state.progress_line(4)

    nodes = {t: outputs.read_marker(layout, task)["meta"]["node_id"] for t, task in graph.tasks.items()}
    assert set(nodes.values()) <= gpu_nodes              # never on the head (no fake_gpu there)
    roots = [t for t, task in graph.tasks.items() if not task.parents]
    assert {nodes[t] for t in roots} == gpu_nodes        # the two roots ran side by side, one per node
    times = [(s.result["metrics"]["started_at"], s.result["metrics"]["finished_at"])
             for s in state.states.values()]
    events = sorted([(a, 1) for a, _ in times] + [(b, -1) for _, b in times])
    level, peak = 0, 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 2                                     # 2 fake_gpu in all, although max_concurrent is 4


def test_check_resources_names_a_missing_custom_resource():
    from orchestrator.spec import check_resources, parse_spec

    spec = parse_spec("name: x\nresources: {pretrain: {custom: {fake_gpu: 1}, workers: 2}}\n")
    problems = check_resources(spec, {"CPU": 4, "fake_gpu": 1})
    assert any("`resources.pretrain.custom.fake_gpu`" in p and "has 1" in p for p in problems), problems
    assert check_resources(spec, {"CPU": 4, "fake_gpu": 2}) == []


def test_killed_training_worker_is_replaced_and_the_task_resumes(tmp_path, monkeypatch):
    """Rank 1 dies (os._exit) after epoch 1 of 3; Ray Train restarts the worker group, the task
    resumes from its epoch-1 checkpoint and finishes with every curve row exactly once."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("MMC_CRASH_WORKER_AT_EPOCH", "pretrain-:1")   # env reaches the Ray workers
    monkeypatch.setenv("MMC_CRASH_MARKER_DIR", str(markers))
    S.init_ray(num_cpus=2)
    try:
        path = write_spec(tmp_path, "crash", **ONLY_PRETRAIN, pretrain={"epochs": 3},
                          resources={"pretrain": {"cpus": 0.5, "workers": 2}})
        spec = load_spec(path)
        (task_id, _), = build_graph(spec).tasks.items()
        outcome = run_sweep(spec, spec_text=path.read_text(), num_cpus=2, report=False)
    finally:
        ray.shutdown()
    assert (markers / f"mmc-crashed-{task_id}").exists(), "the injected worker crash did not happen"
    assert outcome.ok and outcome.counts["done"] == 1, outcome.counts
    layout = outcome.layout
    row = sinks.read_table(layout, "tasks").iloc[0]
    assert row.status == "finished" and row.device == "ray-train x2"
    curves = sinks.read_table(layout, "train_curves")
    assert sorted(curves["epoch"]) == [0, 1, 2], "curve rows missing or duplicated after the resume"
    assert len(sinks.read_table(layout, "evaluations")) == 4
    assert outputs.verify_outputs(layout, build_graph(spec).tasks[task_id])[0]
