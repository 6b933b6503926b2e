"""What the cluster can run and how many trials follow it, without a cluster: node types read from
autoscaling configs (`node_types`), views of a cluster (`capacity.ClusterView`), the bounded wait of
the preflight (`preflight.wait_for_cluster`, a fake clock), and the searcher's trials in flight as
nodes join and leave (`DagSearcher` with a `capacity.Concurrency` over views the test changes).
The same on a real autoscaling cluster: tests/orchestrator/run/test_autoscaling.py."""
from __future__ import annotations

import io
import json
import types
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.errors import SweepError
from orchestrator.graph.dag import Resources, build_graph
from orchestrator.run import capacity, preflight, schedule as S, state as sweep_state, sweep
from orchestrator.run.capacity import AutoscalerStatus, ClusterView, Concurrency
from orchestrator.run.node_types import NodeType, NodeTypes, head_autoscaler_config, read_node_types
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.vocab import DONE, RUNNING
from tests.conftest import write_spec
from tests.support.clock import FakeClock

HEAD = {"CPU": 0.0, "memory": 1e9, "node:__internal_head__": 1.0}
GPU_NODE = {"CPU": 1.0, "GPU": 1.0, "memory": 1e9}
GPU_WORKER = NodeType("gpu_worker", (("CPU", 1.0), ("GPU", 1.0)), min_workers=0, max_workers=2)
TYPES = NodeTypes((NodeType("head", (("CPU", 0.0),), head=True), GPU_WORKER), "cluster.yaml")
AUTOSCALER = AutoscalerStatus(active={"head": 1})


def _view(*workers: dict, types: NodeTypes | None = TYPES, autoscaler=AUTOSCALER, joining: dict | None = None,
          pending: dict | None = None) -> ClusterView:
    """A cluster of the head and `workers`; `joining`: one more node listed whose resources are not counted yet."""
    nodes = [HEAD, *workers] + ([joining] if joining else [])
    visible: dict[str, float] = {}
    for node in (HEAD, *workers):
        for k, v in node.items():
            visible[k] = visible.get(k, 0.0) + v
    if pending is not None and autoscaler is not None:
        autoscaler = AutoscalerStatus(autoscaler.active, pending)
    return ClusterView(tuple(nodes), visible, types if autoscaler is not None else None, autoscaler)


def _spec(tmp_path, **resources):
    return load_spec(write_spec(tmp_path, resources={k: v for k, v in resources.items()}))


# ----- node types from files

def test_a_ray_up_config_gives_each_node_type_with_its_resources_and_counts(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("max_workers: 3\nhead_node_type: head\navailable_node_types:\n"
                    "  head: {resources: {CPU: 0}, node_config: {}}\n"
                    "  gpu: {resources: {CPU: 4, GPU: 1, accel_a10g: 1}, min_workers: 1, max_workers: 8}\n"
                    "  cpu: {resources: {}, max_workers: 2}\n")
    types = read_node_types(path)
    assert [(t.name, t.amounts, t.min_workers, t.max_workers, t.head) for t in types.types] == [
        ("head", {"CPU": 0.0}, 0, 0, True), ("gpu", {"CPU": 4.0, "GPU": 1.0, "accel_a10g": 1.0}, 1, 8, False),
        ("cpu", {}, 0, 2, False)]
    assert types.max_workers == 3 and not types.complete     # `cpu` leaves its resources to the cloud
    assert types.describe() == ("head (CPU 0; the head), gpu (CPU 4, GPU 1, accel_a10g 1; 1-8 nodes), "
                                "cpu (resources not given; 0-2 nodes)")


def test_a_kuberay_rayjob_gives_its_groups(tmp_path):
    path = tmp_path / "rayjob.yaml"
    path.write_text(json.dumps({"kind": "RayJob", "spec": {"rayClusterSpec": {
        "enableInTreeAutoscaling": True,
        "headGroupSpec": {"rayStartParams": {"num-cpus": "0"}},
        "workerGroupSpecs": [
            {"groupName": "gpu", "replicas": 0, "minReplicas": 0, "maxReplicas": 4, "rayStartParams": {},
             "template": {"spec": {"containers": [{"resources": {"limits": {"cpu": "8", "nvidia.com/gpu": "1"}}}]}}},
            {"groupName": "small", "maxReplicas": 2,
             "rayStartParams": {"num-cpus": "500m", "resources": '"{\\"fake\\": 2}"'}}]}}}))
    types = read_node_types(path)
    assert [(t.name, t.amounts, t.min_workers, t.max_workers) for t in types.types] == [
        ("headgroup", {"CPU": 0.0}, 0, 0), ("gpu", {"CPU": 8.0, "GPU": 1.0}, 0, 4),
        ("small", {"CPU": 0.5, "fake": 2.0}, 0, 2)]
    fixed = json.loads(path.read_text())
    fixed["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] = False   # a fixed cluster: replicas, not max
    path.write_text(json.dumps(fixed))
    assert [t.max_workers for t in read_node_types(path).workers] == []


@pytest.mark.parametrize("text, needle", [
    ("[1, 2]", "neither a `ray up` cluster YAML"),
    ("available_node_types: {w: {resources: {GPU: -1}, max_workers: 1}}", "available_node_types.w.resources.GPU is -1"),
    ("available_node_types: {w: {resources: {GPU: 1}, max_workers: 1.5}}", "available_node_types.w.max_workers is 1.5"),
    ("available_node_types: {w: 3}", "available_node_types.w is not a mapping"),
    ("a: [", "invalid YAML"),
])
def test_a_bad_autoscaling_config_is_refused_naming_the_flag_and_the_file(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SweepError, match="--autoscaler-config") as caught:
        read_node_types(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(SweepError, match="cannot read the autoscaling config"):
        read_node_types(tmp_path / "missing.yaml")


def test_the_heads_autoscaler_config_is_found_by_the_clusters_gcs_port(tmp_path):
    def process(pid: int, *args: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes("\0".join(args).encode() + b"\0")

    process(10, "python", "-u", "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=10.0.0.1:6380",
            "--autoscaling-config=/other.yaml")                                  # another cluster's
    process(11, "python", "other.py", "--gcs-address=10.0.0.1:6379", "--autoscaling-config=/nope.yaml")
    process(12, "python", "-u", "/x/ray/autoscaler/v2/monitor.py", "--logs-dir=/l", "--gcs-address=10.0.0.1:6379",
            "--autoscaling-config=~/ray_bootstrap_config.yaml")
    (tmp_path / "self").mkdir()
    found = head_autoscaler_config("127.0.0.1:6379", proc=str(tmp_path))
    assert found == str(Path("~/ray_bootstrap_config.yaml").expanduser())
    assert head_autoscaler_config("127.0.0.1:7000", proc=str(tmp_path)) is None


# ----- views of a cluster

def test_a_view_knows_what_the_cluster_has_now_and_can_grow_to():
    view = _view()
    assert view.can_grow and not view.starting and view.now()["nodes"] == [HEAD]
    grown = view.at_most()
    assert grown["GPU"] == 2 and grown["CPU"] == 2 and grown["nodes"] == [HEAD, GPU_WORKER.amounts, GPU_WORKER.amounts]
    assert view.slots({"CPU": 1, "GPU": 1}) == 2 and view.slots({"CPU": 0.5, "GPU": 0.5}) == 4
    assert view.slots({"CPU": 1, "GPU": 0.5}) == 2  # the scarcest resource: 2 CPUs, though GPUs for 4
    assert view.slots({"CPU": 0.5}) == 4
    assert view.slots({"CPU": 1, "GPU": 1, "fake": 1}) == 0
    capped = _view(types=NodeTypes(TYPES.types, "c.yaml", max_workers=1))
    assert capped.at_most()["GPU"] == 1             # the cluster-wide max_workers
    fixed = _view(GPU_NODE, autoscaler=None)        # no autoscaler: what it has
    assert not fixed.can_grow and fixed.slots({"CPU": 1, "GPU": 1}) == 1 and fixed.at_most() == fixed.now()
    joining = _view(GPU_NODE, joining=GPU_NODE, autoscaler=None)
    assert joining.registering and joining.starting and joining.summary() == "3 nodes, 1 CPUs, 1 GPUs, 1 starting"
    launching = _view(pending={"gpu_worker": 2})
    assert launching.starting and launching.summary() == "1 node, 0 CPUs, 0 GPUs, 2 starting"


# ----- the preflight's wait

def _wait(spec, views, wait_s=600.0, ask=None):
    """`wait_for_cluster` over a sequence of views (the last repeats) with a fake clock."""
    clock, said, reads = FakeClock(), [], []

    def read():
        reads.append(clock.now)
        return views[min(len(reads) - 1, len(views) - 1)]

    kinds = ["pretrain", "finetune", "path_eval"]
    try:
        view = preflight.wait_for_cluster(spec, kinds, read, wait_s=wait_s, counts={"pretrain": 2}, ask=ask,
                                          log=said.append, sleep=clock.sleep, clock=clock)
    except SweepError as exc:
        return exc, said, clock.now
    return view, said, clock.now


def test_a_gpu_sweep_on_a_cpu0_head_whose_autoscaler_starts_gpu_nodes_goes_at_once(tmp_path):
    spec = _spec(tmp_path, **{k: {"cpus": 1, "gpus": 1} for k in ("pretrain", "finetune", "path_eval")})
    assert preflight.check_resources(spec, _view().now(), ["pretrain"])      # the head alone has no GPU ...
    view, said, waited = _wait(spec, [_view()])
    assert isinstance(view, ClusterView) and waited == 0                      # ... yet it is accepted, at once
    assert said == ["cluster: 1 node, 0 CPUs, 0 GPUs now; its autoscaler can start gpu_worker (CPU 1, GPU 1; "
                    "0-2 nodes).\nThe sweep asks it for pretrain: up to 2 at once x {CPU 1, GPU 1}; finetune: up to "
                    "2 at once x {CPU 1, GPU 1}; path_eval: up to 2 at once x {CPU 1, GPU 1}. Tasks wait until nodes "
                    "have joined (on a cloud, the first ones take minutes); the autoscaler removes idle nodes again."]


def test_what_no_node_type_could_run_is_refused_at_once_naming_the_node_types(tmp_path):
    spec = _spec(tmp_path, pretrain={"cpus": 1, "gpus": 2}, finetune={"cpus": 1, "custom": {"tpu": 1}})
    error, said, waited = _wait(spec, [_view()])
    assert isinstance(error, SweepError) and waited == 0 and said == []
    assert str(error) == (
        "the cluster cannot run this sweep, even with every node its autoscaler can start (node types considered: "
        "head (CPU 0; the head), gpu_worker (CPU 1, GPU 1; 0-2 nodes)):\n"
        "  - `resources.pretrain.gpus`: 2 per worker but the largest node has 1; use at most 1\n"
        "  - `resources.finetune.custom.tpu`: 1 workers x 1 but the cluster has 0 of `tpu`; start nodes with that "
        "resource or remove it")


def test_data_parallel_workers_are_judged_by_the_nodes_the_autoscaler_can_start_trainer_included(tmp_path):
    """A CPU-0 head and up to 2 gpu_workers (1 CPU, 1 GPU): 2 workers x (0.5 CPU, 1 GPU) go on two started
    nodes, the trainer's 0.01 CPU beside one of them; 2 workers x (1 CPU, 1 GPU) leave it no CPU on any
    node the cluster can ever have, and are refused at once instead of waiting forever."""
    fits = _spec(tmp_path, pretrain={"cpus": 0.5, "gpus": 1, "workers": 2})
    view, _, waited = _wait(fits, [_view()])
    assert isinstance(view, ClusterView) and waited == 0
    full = _spec(tmp_path, pretrain={"cpus": 1, "gpus": 1, "workers": 2})
    error, said, waited = _wait(full, [_view()])
    assert isinstance(error, SweepError) and waited == 0 and said == []
    assert "`resources.pretrain`: 2 workers x 1 cpus + 0.01 for the trainer = 2.01 cpus but the cluster has 2 " \
           "(its largest node 1)" in str(error) and "even with every node its autoscaler can start" in str(error)


def test_without_nodes_on_their_way_the_refusal_is_todays_and_immediate(tmp_path):
    spec = _spec(tmp_path, pretrain={"cpus": 1, "gpus": 1})
    error, said, waited = _wait(spec, [_view(autoscaler=None)])
    assert isinstance(error, SweepError) and waited == 0 and said == []
    assert str(error).startswith("the cluster cannot run this sweep:\n  - `resources.pretrain.gpus`: 1 but the "
                                 "cluster has no GPU")


def test_a_node_that_is_still_joining_is_waited_for(tmp_path):
    spec = _spec(tmp_path, pretrain={"cpus": 1, "gpus": 1})
    joining = _view(autoscaler=None, joining=GPU_NODE)      # listed, its GPU not counted yet
    joined = _view(GPU_NODE, autoscaler=None)
    view, said, waited = _wait(spec, [joining, joining, joining, joined])
    assert view is joined and waited == 3 * preflight.WAIT_POLL_S
    assert len(said) == 1 and said[0].startswith("waiting for nodes (0 of at most 600 s; a node is joining): the "
                                                 "cluster has 2 nodes, 0 CPUs, 0 GPUs, 1 starting; missing: ")


def test_nodes_that_never_come_are_waited_for_at_most_the_limit(tmp_path):
    spec = _spec(tmp_path, pretrain={"cpus": 1, "gpus": 1})
    launching = _view(types=None, pending={"gpu_worker": 1})   # an autoscaler is starting a node, types unknown
    asked = []
    error, said, waited = _wait(spec, [launching], wait_s=30, ask=asked.append)
    assert isinstance(error, SweepError) and waited == 30
    assert str(error).startswith("the cluster cannot run this sweep (waited 30 s for nodes; --wait-for-nodes 30):")
    assert said[0].startswith("waiting for nodes (0 of at most 30 s; the autoscaler is starting 1 gpu_worker)")
    assert len(said) == 2                                    # every WAIT_REPORT_S, not every poll
    assert asked == [[{"CPU": 1.0, "GPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}]]   # one task of each kind, once


def test_an_autoscaler_of_unknown_types_is_asked_and_given_time_to_react(tmp_path):
    spec = _spec(tmp_path, pretrain={"cpus": 1, "gpus": 1, "workers": 2})
    idle = _view(types=None)                                 # it runs, starts nothing, its node types unknown
    asked = []
    error, said, waited = _wait(spec, [idle], ask=asked.append)
    assert isinstance(error, SweepError) and waited == preflight.AUTOSCALER_REACT_S
    # a pretraining's trainer and both its workers, ...
    assert asked == [[{"CPU": 0.01}] + [{"CPU": 1.0, "GPU": 1.0}] * 2 + [{"CPU": 1.0}] * 2]
    assert "the autoscaler was asked for nodes" in said[0]
    roomy = {**GPU_NODE, "CPU": 2.0}                         # a CPU beside each worker's: room for the trainer
    started = _view(roomy, roomy, types=None)
    view, _, waited = _wait(spec, [idle, idle, started], ask=asked.append)
    assert view is started and waited == 2


def test_an_autoscaler_config_given_for_a_cluster_without_that_autoscaler_is_refused():
    with pytest.raises(SweepError, match="the cluster runs no autoscaler"):
        sweep._check_autoscaler(TYPES, _view(autoscaler=None))
    with pytest.raises(SweepError, match="names the node types gpu_worker, head, but the cluster's autoscaler "
                                         "reports node_1, node_2"):
        sweep._check_autoscaler(TYPES, _view(autoscaler=AutoscalerStatus({"node_1": 1, "node_2": 1})))
    sweep._check_autoscaler(TYPES, _view())


# ----- trials in flight follow the cluster

class Views:
    """A Concurrency over a view the test replaces (re-read on every question: refresh_s=0)."""

    def __init__(self, view: ClusterView, max_concurrent=None):
        self.view = view
        self.concurrency = Concurrency(lambda: self.view, max_concurrent, refresh_s=0)


def _gpu_graph(tmp_path):
    gpu = {"cpus": 1, "gpus": 1}
    return build_graph(load_spec(write_spec(tmp_path, seeds=[0, 1, 2], finetune={"methods": []},
                                            paths={"pairs": ["cue~nocue"], "kinds": ["linear"], "alignments": []},
                                            resources={"pretrain": gpu, "finetune": gpu, "path_eval": {"cpus": 1}})))


def _suggest_all(searcher, prefix: str) -> list[list[str]]:
    out = []
    while (config := searcher.suggest(f"{prefix}{len(out)}")) is not None:
        out.append(config["task_ids"])
    return out


def test_trials_in_flight_follow_the_gpus_as_nodes_join_and_leave(tmp_path):
    graph = _gpu_graph(tmp_path)
    state = sweep_state.SweepState(graph)
    fixed = Views(_view(GPU_NODE, autoscaler=None))           # no autoscaler: one GPU node
    searcher = S.DagSearcher(state, concurrency=fixed.concurrency)
    first = _suggest_all(searcher, "a")
    assert len(first) == 1                                    # 6 pretrainings ready, 1 GPU
    fixed.view = _view(GPU_NODE, GPU_NODE, GPU_NODE, autoscaler=None)   # two nodes join
    assert len(_suggest_all(searcher, "b")) == 2
    fixed.view = _view(GPU_NODE, autoscaler=None)             # two leave: nothing new until trials end
    assert _suggest_all(searcher, "c") == []
    for trial in ("a0", "b0", "b1"):
        searcher.on_trial_complete(trial, S.pack_results({t: S.TaskResult(DONE, 1.0)
                                                          for t in searcher.tasks_of(trial)}))
    kinds = [graph.tasks[b[0]].kind for b in _suggest_all(searcher, "d")]
    assert kinds.count("pretrain") == 1                       # one GPU again (and the path eval now ready: CPUs)


def test_with_an_autoscaler_trials_wait_for_the_nodes_it_can_start(tmp_path):
    graph = _gpu_graph(tmp_path)
    state = sweep_state.SweepState(graph)
    grows = Views(_view())                                    # the head alone; gpu_worker x 2 can start
    searcher = S.DagSearcher(state, concurrency=grows.concurrency)
    assert len(_suggest_all(searcher, "a")) == 2              # the demand for both nodes, not one at a time
    bounded = Views(_view(), max_concurrent=1)
    other = S.DagSearcher(sweep_state.SweepState(graph), concurrency=bounded.concurrency)
    assert len(_suggest_all(other, "a")) == 1                 # max_concurrent bounds it


def test_a_cpu_task_goes_before_a_gpu_task_that_waits_for_room(tmp_path):
    graph = _gpu_graph(tmp_path)
    state = sweep_state.SweepState(graph)
    pretrains = [t for t, task in graph.tasks.items() if task.kind == "pretrain"]
    for task_id in pretrains[2:]:                             # one seed's pretrainings done: its path eval is ready
        state.set_status(task_id, DONE)
    views = Views(_view(GPU_NODE, {"CPU": 4.0}, autoscaler=None))
    searcher = S.DagSearcher(state, concurrency=views.concurrency)
    kinds = [graph.tasks[bundle[0]].kind for bundle in _suggest_all(searcher, "a")]
    assert kinds.count("pretrain") == 1 and {"finetune", "path_eval"} & set(kinds)
    assert "path_eval" in kinds                               # a CPU task, although GPU tasks come first in order
    assert all(state.states[t].status == RUNNING for t in searcher.tasks_of("a0"))


def test_the_progress_line_ends_with_the_clusters_nodes_and_gpus(tmp_path):
    graph = _gpu_graph(tmp_path)
    views = Views(_view(GPU_NODE, pending={"gpu_worker": 1}))
    out = io.StringIO()
    sweep_state.ProgressPrinter(sweep_state.SweepState(graph), views.concurrency.typical, stream=out,
                                cluster=views.concurrency.summary).maybe_print(force=True)
    assert out.getvalue().rstrip().endswith("| cluster 2 nodes, 1 CPUs, 1 GPUs, 1 starting")


def test_concurrency_rereads_the_cluster_only_when_its_view_is_old():
    reads, now = [], [0.0]
    concurrency = Concurrency(lambda: reads.append(now[0]) or _view(GPU_NODE, autoscaler=None), refresh_s=5,
                              clock=lambda: now[0])
    gpu = Resources(cpus=1, gpus=1)
    assert concurrency.limit(gpu) == 1 and concurrency.limit(gpu) == 1 and reads == [0.0]
    now[0] = 5.0
    assert concurrency.limit(gpu) == 1 and reads == [0.0, 5.0]


def test_a_crashed_task_is_started_again_only_where_the_autoscaler_read_afresh_can_start_a_node_for_it():
    """`can_replace` (before a task whose trial crashed is started again) reads the cluster anew, within
    `refresh_s` too: a GPU task on a cluster that cannot grow is not (its node died and stays dead, even where
    it is still listed alive), where an autoscaler can start a GPU node it is, and a task asking for a resource
    no node type has is not."""
    now = [0.0]
    views = [_view(GPU_NODE, autoscaler=None), _view(GPU_NODE, autoscaler=None), _view()]
    reads = []
    concurrency = Concurrency(lambda: reads.append(now[0]) or views[min(len(reads) - 1, 2)], refresh_s=60,
                              clock=lambda: now[0])
    gpu = Resources(cpus=1, gpus=1)
    assert concurrency.limit(gpu) == 1 and reads == [0.0]
    assert concurrency.can_replace(gpu) is False and len(reads) == 2    # read again at once; a fixed cluster
    assert concurrency.can_replace(gpu) is True and len(reads) == 3     # an autoscaler can start a GPU node
    assert concurrency.can_replace(Resources(cpus=1, custom=(("spot_a", 1.0),))) is False


# ----- the command line

@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e9"])
def test_a_bad_wait_for_nodes_is_refused(tmp_path, capsys, value):
    spec = write_spec(tmp_path)
    assert cli.main(["run", str(spec), "--wait-for-nodes", value]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: --wait-for-nodes") and "give seconds between 0 and 86400" in err
    assert not (tmp_path / "runs").exists()


def test_an_unreadable_autoscaler_config_is_refused_before_anything_is_written(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert cli.main(["run", str(spec), "--autoscaler-config", str(tmp_path / "nope.yaml")]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: --autoscaler-config {tmp_path / 'nope.yaml'}: cannot read the autoscaling config")
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_the_wait_default_is_declared_once():
    assert cli.build_parser().parse_args(["run"]).wait_for_nodes == capacity.DEFAULT_WAIT_FOR_NODES_S
    assert sweep.run_sweep.__kwdefaults__["wait_for_nodes_s"] == capacity.DEFAULT_WAIT_FOR_NODES_S


# ----- what a view counts, by hand

def test_node_types_whose_resources_the_config_leaves_to_the_cloud_cannot_be_grown_to():
    """A worker type with `resources: {}` is filled in by the cloud provider: what it adds is unknown."""
    unknown = NodeTypes((NodeType("head", (("CPU", 0.0),), head=True), NodeType("cpu", (), max_workers=2)), "c.yaml")
    view = _view(types=unknown)
    assert not unknown.complete and not view.can_grow and view.at_most() == view.now()


def test_what_the_cluster_grows_to_is_its_head_plus_every_worker_type_at_its_maximum():
    """A head with 2 CPUs (listed after a worker started by hand) + gpu_worker x 2 (1 CPU, 1 GPU each)."""
    head = {"CPU": 2.0, "memory": 1e9, "node:__internal_head__": 1.0}
    view = ClusterView((GPU_NODE, head), {"CPU": 3.0, "GPU": 1.0, "memory": 2e9}, TYPES, AUTOSCALER)
    grown = view.at_most()
    assert (grown["CPU"], grown["GPU"]) == (4.0, 2.0) and view.slots({"CPU": 1.0}) == 4


def test_the_cluster_wide_worker_cap_counts_the_largest_nodes_of_each_resource_first():
    """At most 2 workers in all: one 4-GPU node (its maximum) and then one 1-GPU node = 5 GPUs; for CPUs the
    8-CPU small nodes first: 2 x 8 = 16."""
    big = NodeType("big", (("CPU", 1.0), ("GPU", 4.0)), max_workers=1)
    small = NodeType("small", (("CPU", 8.0), ("GPU", 1.0)), max_workers=3)
    view = _view(types=NodeTypes((NodeType("head", (("CPU", 0.0),), head=True), big, small), "c.yaml", max_workers=2))
    grown = view.at_most()
    assert (grown["GPU"], grown["CPU"]) == (5.0, 16.0)
    uncapped = _view(types=NodeTypes((NodeType("head", (("CPU", 0.0),), head=True), big, small), "c.yaml"))
    assert uncapped.at_most()["GPU"] == 4.0 + 3 * 1.0


def test_the_nodes_a_task_may_be_placed_on_follow_the_cluster_wide_worker_cap_of_each_type():
    """`at_most()["nodes"]` lists each node the autoscaler may start: a type's `max_workers` of them, but never
    more than the cluster-wide `max_workers` (the cap applies to each type alone)."""
    big = NodeType("big", (("CPU", 1.0), ("GPU", 4.0)), max_workers=1)
    small = NodeType("small", (("CPU", 8.0), ("GPU", 1.0)), max_workers=3)
    head = NodeType("head", (("CPU", 0.0),), head=True)
    capped = _view(types=NodeTypes((head, big, small), "c.yaml", max_workers=2)).at_most()["nodes"]
    assert capped[1:] == [big.amounts, small.amounts, small.amounts]
    uncapped = _view(types=NodeTypes((head, big, small), "c.yaml")).at_most()["nodes"]
    assert uncapped[1:] == [big.amounts, small.amounts, small.amounts, small.amounts]


def test_nodes_up_now_beyond_the_config_count_in_what_the_cluster_grows_to():
    """Five GPU nodes started by hand, while the config allows two gpu_workers: the cluster has at least 5."""
    view = _view(*[GPU_NODE] * 5)
    assert view.at_most()["GPU"] == 5.0 and view.slots({"CPU": 1.0, "GPU": 1.0}) == 5


def test_slots_count_fractional_resources_exactly():
    """0.3 CPUs hold three tasks of 0.1 CPU (0.3 / 0.1 is 2.9999999999999996 in floating point)."""
    view = ClusterView(({"CPU": 0.3},), {"CPU": 0.3})
    assert view.slots({"CPU": 0.1}) == 3 and view.slots({"CPU": 0.1, "GPU": 0.0}) == 3


def test_a_task_holds_every_workers_resources():
    resources = Resources(cpus=2, gpus=0.5, workers=3, custom=(("tpu", 1.0),))
    assert capacity.worker_resources(resources) == {"CPU": 2, "GPU": 0.5, "tpu": 1.0}
    assert capacity.demand_of(resources) == {"CPU": 6, "GPU": 1.5, "tpu": 3.0}
    assert capacity.demand_of(Resources(cpus=1)) == {"CPU": 1}
    assert capacity.kind_of(resources) == "GPU" and capacity.kind_of(Resources(cpus=4)) == "CPU"


def test_a_cluster_that_cannot_be_read_keeps_its_last_view_and_at_least_one_trial_runs():
    answers = [_view(GPU_NODE, GPU_NODE, autoscaler=None)]

    def read():
        if not answers:
            raise ConnectionError("the GCS is briefly unreachable")
        return answers.pop()

    concurrency = Concurrency(read, refresh_s=0)
    gpu = Resources(cpus=1, gpus=1)
    assert concurrency.limit(gpu) == 2 and concurrency.limit(gpu) == 2      # the second read failed
    blind = Concurrency(read, refresh_s=0)                                   # never read: an empty cluster
    assert blind.limit(gpu) == 1 and blind.typical() == 1 and blind.summary() == "cluster 0 nodes, 0 CPUs, 0 GPUs"


def test_the_typical_limit_is_the_one_cpu_tasks_bounded_by_max_concurrent_and_at_least_one():
    four = _view({"CPU": 4.0}, autoscaler=None)
    assert Concurrency(lambda: four).typical() == 4 and Concurrency(lambda: four, 2).typical() == 2
    none = _view(GPU_NODE, autoscaler=None)
    assert Concurrency(lambda: none).limit(Resources(cpus=1, gpus=2)) == 1        # no slot: still one at a time
    assert Concurrency(lambda: _view(autoscaler=None)).typical() == 1              # the head has 0 CPUs


# ----- the autoscaler's status (its readers given what Ray would answer)

def _status(monkeypatch, v1_report: dict | None = None, v2=None):
    import ray
    from ray.autoscaler.v2 import sdk, utils
    from ray.experimental import internal_kv

    monkeypatch.setattr(utils, "is_autoscaler_v2", lambda fetch_from_server=False: v2 is not None)
    raw = json.dumps({"autoscaler_report": v1_report}).encode() if v1_report is not None else None
    monkeypatch.setattr(internal_kv, "_internal_kv_get", lambda key: raw)
    monkeypatch.setattr(sdk, "get_cluster_status", lambda address: v2)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(gcs_address="127.0.0.1:6379"))
    return capacity.read_autoscaler_status()


def test_the_v1_autoscalers_report_gives_the_nodes_it_is_launching_and_starting_per_type(monkeypatch):
    status = _status(monkeypatch, {"active_nodes": {"head": 1}, "pending_launches": {"gpu": 2, "cpu": 0},
                                   "pending_nodes": [["id1", "10.0.0.5", "gpu", "setting-up"],
                                                     ["id2", "10.0.0.6", "big", "waiting-for-ssh"]]})
    assert status == AutoscalerStatus({"head": 1}, {"gpu": 3, "big": 1}, "v1")
    assert status.types == {"head", "gpu", "big"} and status.describe_pending() == "1 big, 3 gpu"


def test_the_v2_autoscalers_status_counts_each_launch_of_several_nodes(monkeypatch):
    node = lambda name: types.SimpleNamespace(ray_node_type_name=name)   # noqa: E731
    v2 = types.SimpleNamespace(active_nodes=[node("head")], idle_nodes=[node("gpu")],
                               pending_launches=[types.SimpleNamespace(ray_node_type_name="gpu", count=3)],
                               pending_nodes=[node("cpu")])
    assert _status(monkeypatch, v2=v2) == AutoscalerStatus({"head": 1, "gpu": 1}, {"gpu": 3, "cpu": 1}, "v2")


def test_only_the_read_only_autoscaler_of_a_cluster_without_a_config_counts_as_none(monkeypatch):
    assert _status(monkeypatch, {"active_nodes": {"node_1": 1, "node_2": 1}}) is None
    assert _status(monkeypatch, {"active_nodes": {"node_1": 1, "gpu_worker": 1}}) is not None
    assert _status(monkeypatch, {"active_nodes": {"node_1": 1}, "pending_launches": {"node_2": 1}}) is not None
    assert _status(monkeypatch, None) is None


def test_a_resource_request_is_cleared_once_after_the_wait(monkeypatch):
    from ray.autoscaler import sdk

    asked = []
    monkeypatch.setattr(sdk, "request_resources", lambda bundles: asked.append(bundles))
    request = capacity.ResourceRequest()
    request.clear()
    assert asked == []                               # nothing asked: nothing to clear
    request([{"CPU": 1.0, "GPU": 1.0}])
    request.clear()
    request.clear()
    assert asked == [[{"CPU": 1.0, "GPU": 1.0}], []] and request.bundles is None


# ----- reading the cluster, and how often (its readers given what Ray would answer)

def test_only_alive_nodes_count_and_a_local_ray_is_read_without_asking_for_an_autoscaler(monkeypatch):
    """`read_cluster`: "the alive nodes with their resources": a node Ray lists as dead adds nothing; with
    `autoscaled=False` (a local Ray this run started) the autoscaler's status is not read at all."""
    import ray

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}},
                                               {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}])
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(capacity, "read_autoscaler_status", lambda: pytest.fail("a local Ray's autoscaler read"))
    view = capacity.read_cluster(TYPES, autoscaled=False)
    assert view.nodes == ({"CPU": 2.0},) and view.autoscaler is None and not view.registering
    monkeypatch.setattr(capacity, "read_autoscaler_status", lambda: AUTOSCALER)
    assert capacity.read_cluster(TYPES).autoscaler == AUTOSCALER


def test_the_view_a_concurrency_starts_from_is_fresh_and_the_cluster_is_reread_every_five_seconds():
    """docs/FAILURES.md: the trials in flight "are recomputed from the cluster every 5 s". A concurrency given the
    view the preflight waited for uses it until 5 s have passed, then reads the cluster."""
    now, reads = [100.0], []
    two = _view(GPU_NODE, GPU_NODE, autoscaler=None)
    concurrency = Concurrency(lambda: reads.append(now[0]) or _view(GPU_NODE, autoscaler=None), view=two,
                              clock=lambda: now[0])
    gpu = Resources(cpus=1, gpus=1)
    now[0] = 104.9
    assert concurrency.limit(gpu) == 2 and reads == []
    now[0] = 105.0
    assert concurrency.limit(gpu) == 1 and reads == [105.0]


def test_the_wait_for_nodes_defaults_to_ten_minutes():
    """README and docs/FAILURES.md: `--wait-for-nodes` seconds, "default 600"."""
    assert capacity.DEFAULT_WAIT_FOR_NODES_S == 600


def test_a_cluster_whose_nodes_are_not_listed_is_read_as_one_node_of_what_it_counts():
    """`now()` as `preflight.check_resources` reads it: with no node listed, what the scheduler counts is one node
    (not no node at all, which would leave the largest node empty)."""
    view = ClusterView((), {"CPU": 4.0, "GPU": 1.0})
    assert view.now()["nodes"] == [{"CPU": 4.0, "GPU": 1.0}]
    assert view.now()["CPU"] == 4.0


def test_a_node_is_joining_only_while_resources_a_task_can_ask_for_are_not_counted_yet():
    """`registering` compares what tasks ask for (CPUs, GPUs, memory, custom resources), not the `node:<ip>`
    labels Ray gives each node: a node whose label alone is missing from the counts has joined."""
    labelled = {"CPU": 1.0, "node:10.0.0.5": 1.0}
    assert not ClusterView((labelled,), {"CPU": 1.0}).registering
    assert ClusterView((labelled,), {"node:10.0.0.5": 1.0}).registering


def test_a_node_that_is_joining_while_the_autoscaler_starts_nodes_is_one_of_those_it_starts():
    """`summary`: the nodes starting are those the autoscaler reports; a node still joining counts as one more only
    when the autoscaler reports none (it is then a node started by hand)."""
    both = _view(GPU_NODE, joining=GPU_NODE, pending={"gpu_worker": 2})
    assert both.registering and both.pending_nodes == 2
    assert both.summary().endswith(", 2 starting")


def test_a_tasks_bundles_are_placed_largest_first_so_the_trainers_sliver_takes_what_is_left():
    """Two GPU workers and their trainer's sliver of a CPU on two one-GPU nodes, one with a sliver to spare:
    the workers are placed first, one per node, and the sliver goes where room is left (placed first, it would
    take the CPU one worker needs)."""
    bundles = capacity.task_bundles("pretrain", Resources(cpus=1, gpus=1, workers=2))
    assert capacity.fits_on_nodes(bundles, [{"CPU": 1.0, "GPU": 1.0}, {"CPU": 1.01, "GPU": 1.0}])
    assert not capacity.fits_on_nodes(bundles, [{"CPU": 1.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}])


def test_bundles_that_fill_a_node_exactly_fit_it_whatever_the_floating_point_sum():
    """4 + 4 + 0.01 CPUs on a node of 8.01: the sum in floating point is a hair off, and still fits."""
    assert capacity.fits_on_nodes([{"CPU": 4.0}, {"CPU": 4.0}, {"CPU": 0.01}], [{"CPU": 8.01}])
    assert not capacity.fits_on_nodes([{"CPU": 4.0}, {"CPU": 4.0}, {"CPU": 0.02}], [{"CPU": 8.01}])
