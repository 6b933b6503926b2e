"""The node types an autoscaler can start, read from its config (`orchestrator.run.node_types`), by hand:
Ray's defaults for what a `ray up` file leaves out, which of a KubeRay group's settings wins, and how the
head's autoscaler process is recognised. No cluster, no Ray."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.errors import SweepError
from orchestrator.run import node_types
from orchestrator.run.node_types import describe_resources, head_autoscaler_config, read_node_types
from tests.conftest import REPO


def _types(tmp_path, text: str, name: str = "cluster.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return {t.name: t for t in read_node_types(path).types}


def _kuberay(tmp_path, cluster: dict, kind: str = "RayCluster", key: str | None = None):
    """A KubeRay file: the cluster spec at `spec` (RayCluster) or at `spec.<key>` (RayJob, RayService)."""
    spec = {key: cluster} if key else cluster
    return _types(tmp_path, json.dumps({"apiVersion": "ray.io/v1", "kind": kind, "spec": spec}), "k.yaml")


def _group(name: str, **settings) -> dict:
    return {"groupName": name, **settings}


def _container(limits: dict) -> dict:
    return {"name": "ray", "resources": {"limits": limits}}


# ----- `ray up` cluster YAML

def test_a_ray_up_type_without_max_workers_may_grow_to_the_clusters_max_workers_and_else_to_two(tmp_path):
    """Ray's cluster YAML: a node type's `max_workers` is bounded only by the top-level `max_workers`,
    whose default is 2; `min_workers` defaults to 0."""
    given = _types(tmp_path, "max_workers: 5\nhead_node_type: head\navailable_node_types:\n"
                             "  head: {resources: {CPU: 0}}\n  gpu: {resources: {CPU: 1, GPU: 1}}\n")
    assert (given["gpu"].min_workers, given["gpu"].max_workers) == (0, 5)
    default = _types(tmp_path, "head_node_type: head\navailable_node_types:\n"
                               "  head: {resources: {CPU: 0}}\n  gpu: {resources: {CPU: 1, GPU: 1}}\n")
    assert (default["gpu"].min_workers, default["gpu"].max_workers) == (0, 2)


def test_the_head_type_is_never_a_worker_the_autoscaler_adds(tmp_path):
    """The head exists once: a `max_workers` written on it adds no nodes; its `min_workers` is read as given."""
    path = tmp_path / "cluster.yaml"
    path.write_text("head_node_type: head\navailable_node_types:\n"
                    "  head: {resources: {CPU: 2}, min_workers: 0, max_workers: 4}\n"
                    "  cpu: {resources: {CPU: 4}, min_workers: 1, max_workers: 3}\n")
    types = read_node_types(path)
    head = next(t for t in types.types if t.head)
    assert head.name == "head" and head.max_workers == 0 and head.min_workers == 0
    assert [(t.name, t.min_workers, t.max_workers) for t in types.workers] == [("cpu", 1, 3)]


# ----- KubeRay RayCluster / RayJob / RayService

def test_a_kuberay_groups_ray_start_params_win_over_its_containers_limits(tmp_path):
    """As the KubeRay autoscaler reads a group: `num-cpus` / `num-gpus` of rayStartParams first, the
    container's limits only where they are not given."""
    both = {"rayStartParams": {"num-cpus": "2", "num-gpus": "1"},
            "template": {"spec": {"containers": [_container({"cpu": "16", "nvidia.com/gpu": "4"})]}}}
    types = _kuberay(tmp_path, {"enableInTreeAutoscaling": True, "headGroupSpec": {},
                                "workerGroupSpecs": [_group("w", maxReplicas=3, **both)]})
    assert types["w"].amounts == {"CPU": 2.0, "GPU": 1.0}


def test_a_kuberay_group_reads_the_limits_of_its_first_container(tmp_path):
    """A sidecar listed after the Ray container does not say what the Ray node provides."""
    group = _group("w", maxReplicas=1, template={"spec": {"containers": [
        _container({"cpu": "8", "nvidia.com/gpu": "1"}), _container({"cpu": "250m"})]}})
    types = _kuberay(tmp_path, {"enableInTreeAutoscaling": True, "workerGroupSpecs": [group]})
    assert types["w"].amounts == {"CPU": 8.0, "GPU": 1.0}


def test_the_shipped_rayjob_head_runs_no_tasks_though_its_container_has_four_cpus():
    """cluster/rayjob.yaml: the head's rayStartParams say num-cpus "0" (limits cpu "4"); the gpu group has
    the limits cpu "8", nvidia.com/gpu "1" and grows from 0 to maxReplicas 8."""
    types = {t.name: t for t in read_node_types(REPO / "cluster" / "rayjob.yaml").types}
    assert types["headgroup"].head and types["headgroup"].amounts == {"CPU": 0.0}
    assert (types["gpu"].amounts, types["gpu"].min_workers, types["gpu"].max_workers) == (
        {"CPU": 8.0, "GPU": 1.0}, 0, 8)


def test_a_rayservice_cluster_config_gives_its_groups(tmp_path):
    """A RayService keeps its cluster under `spec.rayClusterConfig`."""
    types = _kuberay(tmp_path, {"enableInTreeAutoscaling": True, "headGroupSpec": {},
                                "workerGroupSpecs": [_group("w", minReplicas=1, maxReplicas=4,
                                                            rayStartParams={"num-cpus": "3"})]},
                     kind="RayService", key="rayClusterConfig")
    assert (types["w"].amounts, types["w"].min_workers, types["w"].max_workers) == ({"CPU": 3.0}, 1, 4)


def test_without_in_tree_autoscaling_a_group_has_exactly_its_replicas(tmp_path):
    """No autoscaler: a group keeps `replicas` Pods, whatever minReplicas / maxReplicas say."""
    group = _group("w", replicas=3, minReplicas=0, maxReplicas=10, rayStartParams={"num-cpus": "1"})
    fixed = _kuberay(tmp_path, {"headGroupSpec": {}, "workerGroupSpecs": [group]})
    assert (fixed["w"].min_workers, fixed["w"].max_workers) == (3, 3)


def test_an_autoscaled_group_without_max_replicas_grows_to_its_replicas(tmp_path):
    """KubeRay's maxReplicas defaults to the group's replicas; minReplicas to 0."""
    group = _group("w", replicas=2, rayStartParams={"num-cpus": "1"})
    types = _kuberay(tmp_path, {"enableInTreeAutoscaling": True, "workerGroupSpecs": [group]})
    assert (types["w"].min_workers, types["w"].max_workers) == (0, 2)


def test_custom_resources_of_a_group_add_to_its_cpus_and_gpus(tmp_path):
    group = _group("w", maxReplicas=1, rayStartParams={"num-cpus": "4", "num-gpus": "1",
                                                        "resources": '"{\\"accel\\": 2}"'})
    types = _kuberay(tmp_path, {"enableInTreeAutoscaling": True, "workerGroupSpecs": [group]})
    assert types["w"].amounts == {"CPU": 4.0, "GPU": 1.0, "accel": 2.0}


# ----- what a type is shown as

def test_resources_are_shown_cpu_and_gpu_first_without_memory_or_node_markers():
    """`CPU 4, GPU 1, a 1, b 2`: memory, the object store and Ray's `node:<ip>` markers are never asked for."""
    shown = describe_resources({"b": 2.0, "memory": 1e9, "GPU": 1.0, "object_store_memory": 5e8,
                                "node:10.0.0.1": 1.0, "node:__internal_head__": 1.0, "a": 1.0, "CPU": 4.0})
    assert shown == "CPU 4, GPU 1, a 1, b 2"


# ----- the head's autoscaler

def test_the_heads_autoscaler_is_found_among_processes_listed_before_it(tmp_path, monkeypatch):
    """Any number of other processes may come before the monitor in /proc; each is passed over."""
    def process(pid: str, *args: str) -> None:
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes("\0".join(args).encode() + b"\0")

    process("7", "python", "train.py", "--gcs-address=10.0.0.1:6379")
    process("9", "python", "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=10.0.0.1:6379",
            "--autoscaling-config=/etc/ray/cluster.yaml")
    monkeypatch.setattr(node_types.os, "listdir", lambda proc: ["self", "7", "9"])   # this order, on purpose
    assert head_autoscaler_config("10.0.0.1:6379", proc=str(tmp_path)) == "/etc/ray/cluster.yaml"
    assert Path(tmp_path / "9" / "cmdline").exists()


# ----- more of what a file says: counts, amounts, the cluster-wide cap, millicores

def test_the_clusters_max_workers_is_kept_as_the_cap_on_all_worker_nodes(tmp_path):
    """`ray up`'s top-level `max_workers` caps the sum of every type's workers (read as the cap; None where the
    file does not set it)."""
    text = "head_node_type: head\navailable_node_types:\n  head: {resources: {CPU: 0}}\n  gpu: {resources: {GPU: 1}}\n"
    (tmp_path / "capped.yaml").write_text("max_workers: 3\n" + text)
    (tmp_path / "open.yaml").write_text(text)
    assert read_node_types(tmp_path / "capped.yaml").max_workers == 3
    assert read_node_types(tmp_path / "open.yaml").max_workers is None


def test_a_type_that_may_start_no_node_is_no_worker_and_does_not_make_the_types_incomplete():
    """`workers`: the types the autoscaler can add (not the head, max_workers > 0); `complete`: every one of them
    says what it provides. A type of max 0 without resources counts for neither; one worker without resources
    among others with them makes the whole incomplete."""
    head = node_types.NodeType("head", (("CPU", 2.0),), head=True)
    gpu = node_types.NodeType("gpu", (("GPU", 1.0),), max_workers=2)
    idle = node_types.NodeType("idle", (), max_workers=0)
    cloud = node_types.NodeType("cloud", (), max_workers=3)
    types = node_types.NodeTypes((head, gpu, idle), "c.yaml")
    assert types.workers == (gpu,) and types.complete
    assert not node_types.NodeTypes((head, gpu, cloud), "c.yaml").complete


def test_a_node_type_is_described_with_its_range_of_nodes():
    assert node_types.NodeType("gpu", (("CPU", 4.0), ("GPU", 1.0)), min_workers=1, max_workers=4).describe() == \
        "gpu (CPU 4, GPU 1; 1-4 nodes)"
    assert node_types.NodeType("head", (), head=True).describe() == "head (resources not given; the head)"


@pytest.mark.parametrize("entry, needle", [
    ("{resources: {CPU: 1}, max_workers: 1.5}", "max_workers is 1.5; give a whole number >= 0"),
    ("{resources: {CPU: 1}, min_workers: -1}", "min_workers is -1; give a whole number >= 0"),
    ("{resources: {CPU: true}}", "resources.CPU is True; give a number >= 0"),
    ("{resources: {GPU: -1}}", "resources.GPU is -1; give a number >= 0"),
])
def test_a_count_that_is_not_a_whole_number_or_an_amount_that_is_not_a_number_is_refused(tmp_path, entry, needle):
    """A node count is a whole number >= 0 (1.5 nodes cannot start); an amount a number >= 0 (YAML's `true` is no
    amount, though Python counts it as 1)."""
    path = tmp_path / "cluster.yaml"
    path.write_text(f"head_node_type: head\navailable_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  w: {entry}\n")
    with pytest.raises(SweepError, match=re.escape(f"--autoscaler-config {path}: available_node_types.w.{needle}")):
        read_node_types(path)


def test_a_kuberay_cpu_limit_in_millicores_is_a_fraction_of_a_cpu(tmp_path):
    """Kubernetes quantities: `500m` is 0.5 CPU, `2` two CPUs, `1.5` one and a half."""
    groups = [_group(f"w{i}", maxReplicas=1, template={"spec": {"containers": [_container({"cpu": cpu})]}})
              for i, cpu in enumerate(("500m", "2", "1.5", "2500m"))]
    types = _kuberay(tmp_path, {"enableInTreeAutoscaling": True, "workerGroupSpecs": groups})
    assert [types[f"w{i}"].amounts["CPU"] for i in range(4)] == [0.5, 2.0, 1.5, 2.5]


def test_a_config_path_under_the_home_directory_is_read_from_there(tmp_path, monkeypatch):
    """`--autoscaler-config=~/cluster.yaml` (no shell expands `~` after `=`): the user's home, as every path
    mmc-sweep takes."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cluster.yaml").write_text("head_node_type: head\navailable_node_types:\n  head: {resources: {CPU: 1}}\n")
    assert [t.name for t in read_node_types("~/cluster.yaml").types] == ["head"]
