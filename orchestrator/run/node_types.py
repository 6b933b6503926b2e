"""The node types an autoscaler can start: what each node of a type provides and how many it may add.

Ray 2.60 gives a driver no API for them: the autoscaler reads them from its config file (`ray up`
starts it with `--autoscaling-config=~/ray_bootstrap_config.yaml` on the head) or from the RayCluster
resource (KubeRay), and reports only node *counts* per type to the GCS. So they are read from that
file: the one the head's autoscaler process was started with, found when the driver runs on the head
(`ray job submit`, cluster/submit.sh), or the file given with `--autoscaler-config`: a `ray up`
cluster YAML (`available_node_types`) or a KubeRay RayCluster / RayJob YAML (`workerGroupSpecs`),
e.g. cluster/cluster.yaml and cluster/rayjob.yaml.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import SweepError
from orchestrator.spec.yaml_io import YamlError, parse_yaml, read_text

SCHEDULING_RESOURCES = ("CPU", "GPU")       # shown first; memory and object store are never asked for
HIDDEN_RESOURCES = ("memory", "object_store_memory")
AUTOSCALER_CONFIG_FLAG = "--autoscaler-config"


@dataclass(frozen=True)
class NodeType:
    """One kind of node: its Ray resources per node, and how many the autoscaler keeps and may start."""

    name: str
    resources: tuple[tuple[str, float], ...]     # sorted (name, amount); () when the file does not say
    min_workers: int = 0
    max_workers: int = 0
    head: bool = False

    @property
    def amounts(self) -> dict[str, float]:
        return dict(self.resources)

    def describe(self) -> str:
        shown = describe_resources(self.amounts) or "resources not given"
        count = "the head" if self.head else f"{self.min_workers}-{self.max_workers} nodes"
        return f"{self.name} ({shown}; {count})"


@dataclass(frozen=True)
class NodeTypes:
    """The node types of one autoscaling config, and where they were read."""

    types: tuple[NodeType, ...]
    source: str
    max_workers: int | None = None      # the cluster-wide cap on worker nodes (`ray up`'s top-level `max_workers`)

    @property
    def workers(self) -> tuple[NodeType, ...]:
        return tuple(t for t in self.types if not t.head and t.max_workers > 0)

    @property
    def complete(self) -> bool:
        """Every worker type says what it provides (a `ray up` type with `resources: {}` is filled in by the
        cloud provider from its instance type, which this file does not know)."""
        return all(t.resources for t in self.workers)

    def names(self) -> set[str]:
        return {t.name for t in self.types}

    def describe(self) -> str:
        return ", ".join(t.describe() for t in self.types)


def describe_resources(amounts: dict[str, float]) -> str:
    """`CPU 4, GPU 1, fake_gpu 1` (memory and object store left out)."""
    keys = [k for k in SCHEDULING_RESOURCES if k in amounts] + sorted(
        k for k in amounts if k not in SCHEDULING_RESOURCES and k not in HIDDEN_RESOURCES and not k.startswith("node:"))
    return ", ".join(f"{k} {amounts[k]:g}" for k in keys)


# ----- reading a file

def read_node_types(path: str | os.PathLike, flag: str = AUTOSCALER_CONFIG_FLAG) -> NodeTypes:
    """The node types of a `ray up` cluster YAML or a KubeRay RayCluster / RayJob YAML (JSON is YAML too).
    SweepError, naming `flag` and the file, when it is neither."""
    where = f"{flag} {path}"
    try:
        raw = parse_yaml(read_text(Path(path).expanduser(), "autoscaling config"))
    except YamlError as exc:
        raise SweepError(f"{where}: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("available_node_types"), dict):
        return _ray_up_types(raw, str(path), where)
    cluster = _kuberay_cluster_spec(raw)
    if cluster is not None:
        return _kuberay_types(cluster, str(path), where)
    raise SweepError(f"{where} is neither a `ray up` cluster YAML (with `available_node_types`) nor a KubeRay "
                     "RayCluster or RayJob YAML (with `workerGroupSpecs`); give the file the cluster was started "
                     "with, e.g. cluster/cluster.yaml or cluster/rayjob.yaml")


def _count(value, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise SweepError(f"{where}: {what} is {value!r}; give a whole number >= 0")
    return int(value)


def _amounts(raw, what: str, where: str) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise SweepError(f"{where}: {what} is {raw!r}; give a mapping such as {{CPU: 4, GPU: 1}}")
    out = []
    for name, amount in raw.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise SweepError(f"{where}: {what}.{name} is {amount!r}; give a number >= 0")
        out.append((str(name), float(amount)))
    return tuple(sorted(out))


def _ray_up_types(raw: dict, source: str, where: str) -> NodeTypes:
    head = raw.get("head_node_type")
    types = []
    for name, entry in raw["available_node_types"].items():
        if not isinstance(entry, dict):
            raise SweepError(f"{where}: available_node_types.{name} is not a mapping")
        is_head = name == head
        types.append(NodeType(
            name=str(name), resources=_amounts(entry.get("resources"), f"available_node_types.{name}.resources", where),
            min_workers=_count(entry.get("min_workers", 0), f"available_node_types.{name}.min_workers", where),
            max_workers=0 if is_head else _count(entry.get("max_workers", raw.get("max_workers", 2)),
                                                 f"available_node_types.{name}.max_workers", where),
            head=is_head))
    cap = raw.get("max_workers")
    return NodeTypes(tuple(types), source, None if cap is None else _count(cap, "max_workers", where))


def _kuberay_cluster_spec(raw) -> dict | None:
    """`spec` of a RayCluster, `spec.rayClusterSpec` of a RayJob (or RayService's)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("spec"), dict):
        return None
    spec = raw["spec"]
    cluster = spec.get("rayClusterSpec", spec.get("rayClusterConfig", spec))
    return cluster if isinstance(cluster, dict) and "workerGroupSpecs" in cluster else None


_K8S_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")


def _k8s_cpus(value) -> float | None:
    match = _K8S_CPU.match(str(value).strip())
    if not match:
        return None
    return float(match.group(1)) / (1000 if match.group(2) else 1)


def _group_resources(group: dict, what: str, where: str) -> tuple[tuple[str, float], ...]:
    """What a KubeRay group's Ray node provides, as the KubeRay autoscaler reads it: `rayStartParams`
    (num-cpus, num-gpus, resources) first, else the first container's limits (cpu, nvidia.com/gpu)."""
    params = group.get("rayStartParams") or {}
    containers = (((group.get("template") or {}).get("spec") or {}).get("containers") or [{}])
    limits = ((containers[0] or {}).get("resources") or {}).get("limits") or {}
    amounts: dict[str, float] = {}
    cpus = params.get("num-cpus", limits.get("cpu"))
    if cpus is not None:
        amounts["CPU"] = _k8s_cpus(cpus) if _k8s_cpus(cpus) is not None else _bad(what, "cpu", cpus, where)
    gpus = params.get("num-gpus", limits.get("nvidia.com/gpu"))
    if gpus is not None:
        try:
            amounts["GPU"] = float(gpus)
        except (TypeError, ValueError):
            _bad(what, "num-gpus", gpus, where)
    custom = params.get("resources")
    if custom:
        text = str(custom).strip().strip("'").strip('"').replace('\\"', '"')
        try:
            extra = json.loads(text)
        except ValueError:
            _bad(what, "rayStartParams.resources", custom, where)
        amounts.update(dict(_amounts(extra, f"{what}.rayStartParams.resources", where)))
    return tuple(sorted(amounts.items()))


def _bad(what: str, key: str, value, where: str):
    raise SweepError(f"{where}: {what}.{key} is {value!r}; give a number")


def _kuberay_types(cluster: dict, source: str, where: str) -> NodeTypes:
    autoscaling = bool(cluster.get("enableInTreeAutoscaling"))
    head_group = cluster.get("headGroupSpec") or {}
    types = [NodeType("headgroup", _group_resources(head_group, "headGroupSpec", where), head=True)]
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        what = f"workerGroupSpecs[{i}]"
        if not isinstance(group, dict):
            raise SweepError(f"{where}: {what} is not a mapping")
        replicas = _count(group.get("replicas", 0), f"{what}.replicas", where)
        most = _count(group.get("maxReplicas", replicas), f"{what}.maxReplicas", where) if autoscaling else replicas
        fewest = _count(group.get("minReplicas", 0), f"{what}.minReplicas", where) if autoscaling else replicas
        types.append(NodeType(str(group.get("groupName", f"group{i}")), _group_resources(group, what, where),
                              min_workers=fewest, max_workers=most))
    return NodeTypes(tuple(types), source)


# ----- the head's autoscaler

MONITOR_SCRIPTS = ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")


def head_autoscaler_config(gcs_address: str, proc: str = "/proc") -> str | None:
    """The `--autoscaling-config` file of the autoscaler of the cluster at `gcs_address` (host:port), when it
    runs on this machine (the driver runs on the head); None elsewhere or when it has none."""
    port = gcs_address.rsplit(":", 1)[-1]
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            args = Path(proc, pid, "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any(a.endswith(MONITOR_SCRIPTS) for a in args):
            continue
        given = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.startswith("--") and "=" in a}
        if given.get("--gcs-address", "").rsplit(":", 1)[-1] == port and given.get("--autoscaling-config"):
            return os.path.expanduser(given["--autoscaling-config"])
    return None
