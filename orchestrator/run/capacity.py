"""What the Ray cluster can run now, what it can grow to, and how many trials the sweep keeps in flight.

`read_cluster` returns a `ClusterView`: the alive nodes with their resources (`ray.nodes()`), what the
scheduler counts (`ray.cluster_resources()`: a node that has just joined is listed a moment before its
resources count there), the autoscaler's node types (`node_types`), and the autoscaler's status, what
`ray status` shows: the v1 autoscaler's report in the GCS (internal KV `__autoscaling_status`; `ray up`
clusters) or, for the v2 autoscaler (KubeRay's), `ray.autoscaler.v2.sdk.get_cluster_status`. From the
status comes which nodes it is starting; a cluster without an autoscaler (or with the read-only one
`ray start` runs) has none.

`Concurrency` turns views into the number of trials in flight (running or waiting for resources), per
resource kind (tasks that ask for GPUs, and the others), as many as the scarcest resource they ask for
allows, re-read every `REFRESH_S` as nodes join and leave, bounded by `max_concurrent`. Where an autoscaler can add nodes of known types, the count is
what the cluster can grow to: trials waiting for resources are the demand the autoscaler starts nodes
for, so a cluster that is only its head grows to what the sweep can use at once instead of one node
(and one task) at a time.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from orchestrator.run.node_types import NodeTypes

REFRESH_S = 5.0                      # how old a view the concurrency may use
DEFAULT_WAIT_FOR_NODES_S = 600       # --wait-for-nodes: a cloud GPU node takes minutes to start
MAX_WAIT_FOR_NODES_S = 86_400
HEAD_RESOURCE = "node:__internal_head__"
TRAINER_CPU = 0.01                   # the trial of a task on Ray Train workers only drives them (RAY_NOTES: 0 is rejected)
WORKER_PLACEMENT = "PACK"            # Ray Train's workers: packed where they fit, spread over nodes where not
MOST_NODES_PER_TYPE = 1025           # node types listed at most this often (a task asks for <= 1024 workers + 1)
READONLY_TYPE_PREFIX = "node_"       # the node types of the read-only autoscaler of a cluster without a config
RESOURCE_EPS = 1e-9                  # resources are summed in floating point: 4 + 4 + 0.01 fits 8.01 CPUs


@dataclass(frozen=True)
class AutoscalerStatus:
    """What the cluster's autoscaler reports: nodes per type that are up, and that it is starting."""

    active: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)    # launching or starting, per node type
    version: str = "v1"

    @property
    def types(self) -> set[str]:
        return set(self.active) | set(self.pending)

    def describe_pending(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in sorted(self.pending.items()))


@dataclass(frozen=True)
class ClusterView:
    """One reading of the cluster (see the module docstring)."""

    nodes: tuple[dict, ...] = ()                  # total resources of each alive node
    visible: dict = field(default_factory=dict)   # ray.cluster_resources()
    node_types: NodeTypes | None = None           # the autoscaler's node types, when known
    autoscaler: AutoscalerStatus | None = None    # None: no autoscaler that can start nodes

    @property
    def registering(self) -> bool:
        """A node is listed alive but its resources are not counted yet (it is still joining)."""
        listed = Counter()
        for node in self.nodes:
            listed.update({k: float(v) for k, v in node.items()})
        return any(v > float(self.visible.get(k, 0)) + RESOURCE_EPS for k, v in listed.items() if not k.startswith("node:"))

    @property
    def pending_nodes(self) -> int:
        return sum(self.autoscaler.pending.values()) if self.autoscaler else 0

    @property
    def starting(self) -> bool:
        """Nodes are on their way: the autoscaler is starting some, or one is still joining."""
        return self.pending_nodes > 0 or self.registering

    @property
    def can_grow(self) -> bool:
        """An autoscaler runs and the node types it can start (and what they provide) are known."""
        return self.autoscaler is not None and self.node_types is not None and self.node_types.complete

    def now(self) -> dict:
        """What the cluster has now, as `preflight.check_resources` reads it."""
        return {**self.visible, "nodes": [dict(n) for n in self.nodes] or [dict(self.visible)]}

    def at_most(self) -> dict:
        """What the cluster has once the autoscaler started every node it may: the head and the nodes
        up now that are no autoscaled worker, plus each worker type at its `max_workers` (the
        cluster-wide `max_workers` caps the sum, the largest nodes of each resource counted first);
        "nodes" lists each node the autoscaler may start (`_startable_nodes`)."""
        if not self.can_grow:
            return self.now()
        head = next((n for n in self.nodes if HEAD_RESOURCE in n), {})
        workers = self.node_types.workers
        totals: dict[str, float] = {k: float(v) for k, v in head.items()}
        for name in {k for t in workers for k in t.amounts}:
            room = self.node_types.max_workers if self.node_types.max_workers is not None else math.inf
            for t in sorted(workers, key=lambda t: -t.amounts.get(name, 0.0)):
                take = min(t.max_workers, room)
                totals[name] = totals.get(name, 0.0) + take * t.amounts.get(name, 0.0)
                room -= take
        for name, amount in self.visible.items():     # nodes up now beyond the config (started by hand)
            totals[name] = max(totals.get(name, 0.0), float(amount))
        return {**totals, "nodes": [dict(n) for n in self.nodes] + self._startable_nodes()}

    def _startable_nodes(self) -> list[dict]:
        """Each worker type's resources once per node the autoscaler may start of it (the cluster-wide cap
        applies to each type alone), so that a task's workers can be placed on as many nodes as it may get."""
        cap = self.node_types.max_workers if self.node_types.max_workers is not None else MOST_NODES_PER_TYPE
        return [t.amounts for t in self.node_types.workers
                for _ in range(min(t.max_workers, cap, MOST_NODES_PER_TYPE))]

    def slots(self, demand: dict) -> int:
        """How many tasks that each hold `demand` fit at once in what the cluster has, or can grow to where
        an autoscaler can add nodes: the scarcest of the resources they ask for (a GPU task's GPUs, or its
        CPUs where its nodes have fewer CPUs than it needs per GPU share; a CPU task's CPUs; custom ones)."""
        cluster = self.at_most() if self.can_grow else self.now()
        fits = math.inf
        for name, amount in demand.items():
            if amount > 0:
                fits = min(fits, math.floor(float(cluster.get(name, 0)) / amount + RESOURCE_EPS))
        return int(fits) if fits != math.inf else 1

    def summary(self) -> str:
        """`2 nodes, 2 CPUs, 2 GPUs, 1 starting` for the progress line."""
        cpus, gpus = float(self.visible.get("CPU", 0)), float(self.visible.get("GPU", 0))
        text = f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}, {cpus:g} CPUs, {gpus:g} GPUs"
        starting = self.pending_nodes + (1 if self.registering and not self.pending_nodes else 0)
        return text + (f", {starting} starting" if starting else "")

    def describe_growth(self) -> str:
        """What the autoscaler can add: `gpu_worker (CPU 1, GPU 1; 0-8 nodes)`."""
        if self.node_types is None:
            return "node types unknown"
        return ", ".join(t.describe() for t in self.node_types.workers) or "no worker nodes"


def worker_resources(resources) -> dict:
    """The Ray resources one worker of a task reserves (also a single-worker task's trial)."""
    out = {"CPU": resources.cpus}
    if resources.gpus:
        out["GPU"] = resources.gpus
    out.update(dict(resources.custom))
    return out


def drives_ray_train(kind: str, resources) -> bool:
    """A training task on several workers: its trial only drives Ray Train workers (`distributed`)."""
    from orchestrator.vocab import TRAINING_KINDS

    return resources.workers > 1 and kind in TRAINING_KINDS


def task_bundles(kind: str, resources) -> list[dict]:
    """Every Ray resource bundle a task of `kind` asks for while it runs, in the order Ray places them:
    its Tune trial's, then (a task that drives Ray Train) one per worker, in one placement group of
    `WORKER_PLACEMENT`. The one definition both the preflight's check and the actual requests
    (`schedule.trial_resources`, `distributed.run_with_ray_train`) read: a check that left out the
    trial's sliver of a CPU let 2 workers x 1 CPU through on a 2-CPU node, where they wait forever."""
    worker = worker_resources(resources)
    if not drives_ray_train(kind, resources):
        return [worker]
    return [{"CPU": TRAINER_CPU}] + [dict(worker) for _ in range(resources.workers)]


def fits_on_nodes(bundles: list[dict], nodes: list[dict]) -> bool:
    """Whether every bundle can be placed whole on one of `nodes` (each bundle on one node, several on a
    node while it has room), first fit with the largest bundles first: a task's workers are alike, so this
    holds as many of them as the nodes can; its trainer's sliver goes where room is left."""
    free = [{k: float(v) for k, v in node.items()} for node in nodes]
    for bundle in sorted(bundles, key=_size, reverse=True):
        node = next((n for n in free if all(n.get(k, 0.0) + RESOURCE_EPS >= v for k, v in bundle.items())), None)
        if node is None:
            return False
        for k, v in bundle.items():
            node[k] = node.get(k, 0.0) - v
    return True


def _size(bundle: dict) -> tuple:
    return (bundle.get("GPU", 0.0), bundle.get("CPU", 0.0), sorted(bundle.items()))


def demand_of(resources) -> dict:
    """What a task holds while it runs: every worker's resources (a `graph.dag.Resources`)."""
    return {name: amount * resources.workers for name, amount in worker_resources(resources).items()}


def kind_of(resources) -> str:
    return "GPU" if resources.gpus else "CPU"


# ----- reading the cluster (needs a connected Ray)

def read_cluster(node_types: NodeTypes | None = None, autoscaled: bool = True) -> ClusterView:
    """The connected cluster now; `autoscaled=False` (a local Ray this run started) skips the autoscaler."""
    import ray

    nodes = tuple(dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive"))
    visible = dict(ray.cluster_resources())
    status = read_autoscaler_status() if autoscaled else None
    return ClusterView(nodes, visible, node_types if status is not None else None, status)


def read_autoscaler_status() -> AutoscalerStatus | None:
    """The autoscaler's report (None when none runs, or only the read-only one of a cluster without a config)."""
    try:
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        status = _v2_status() if is_autoscaler_v2(fetch_from_server=True) else _v1_status()
    except Exception:  # noqa: BLE001 - a status that cannot be read is no autoscaler to wait for
        return None
    if status is None or (all(t.startswith(READONLY_TYPE_PREFIX) for t in status.types) and not status.pending):
        return None
    return status


def _v1_status() -> AutoscalerStatus | None:
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
    report = json.loads(raw).get("autoscaler_report") if raw else None
    if not report:
        return None
    pending = Counter({str(t): int(n) for t, n in (report.get("pending_launches") or {}).items() if n})
    for entry in report.get("pending_nodes") or []:   # (node id, ip, node type, status)
        if len(entry) >= 3:
            pending[str(entry[2])] += 1
    active = {str(t): int(n) for t, n in (report.get("active_nodes") or {}).items()}
    return AutoscalerStatus(active, dict(pending), "v1")


def _v2_status() -> AutoscalerStatus:
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address)
    active = Counter(n.ray_node_type_name for n in [*status.active_nodes, *status.idle_nodes])
    pending = Counter()
    for launch in status.pending_launches:
        pending[launch.ray_node_type_name] += launch.count
    for node in status.pending_nodes:
        pending[node.ray_node_type_name] += 1
    return AutoscalerStatus(dict(active), dict(pending), "v2")


class Concurrency:
    """Trials in flight per resource kind, from views of the cluster at most `refresh_s` old (see the
    module docstring). Thread-safe: Tune's controller asks, the progress line reads."""

    def __init__(self, read: Callable[[], ClusterView], max_concurrent: int | None = None, *,
                 view: ClusterView | None = None, refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic):
        self._read, self._max, self._refresh_s, self._clock = read, max_concurrent, refresh_s, clock
        self._view, self._at = view, (clock() if view is not None else -math.inf)
        self._lock = threading.Lock()

    def view(self) -> ClusterView:
        with self._lock:
            if self._view is None or self._clock() - self._at >= self._refresh_s:
                try:
                    self._view = self._read()
                except Exception:  # noqa: BLE001 - keep the last view (the GCS is briefly unreachable)
                    if self._view is None:
                        self._view = ClusterView()
                self._at = self._clock()
            return self._view

    def limit(self, resources) -> int:
        """Trials of tasks with `resources` (a `graph.dag.Resources`) to keep in flight at once (>= 1)."""
        slots = self.view().slots(demand_of(resources))
        return max(1, min(slots, self._max) if self._max else slots)

    def can_replace(self, resources) -> bool:
        """Whether the cluster's autoscaler (read afresh) can start a node for a task with `resources`: what
        a task whose trial crashed needs to be started again. Not on a cluster that cannot grow: a node that
        died there stays dead (and may still be listed alive for seconds after its task's trial crashed), so
        the task would wait for it forever."""
        with self._lock:
            self._at = -math.inf
        view = self.view()
        return view.can_grow and view.slots(demand_of(resources)) >= 1

    def typical(self) -> int:
        """The limit for a one-CPU task (the ETA of the progress line)."""
        view = self.view()
        slots = max(1, view.slots({"CPU": 1.0}))
        return min(slots, self._max) if self._max else slots

    def summary(self) -> str:
        return "cluster " + self.view().summary()


class ResourceRequest:
    """`ray.autoscaler.sdk.request_resources` for the time of a wait: made at most once, cleared after
    (a request stays until it is replaced, and would keep its nodes up after the sweep)."""

    def __init__(self):
        self.bundles: list[dict] | None = None

    def __call__(self, bundles: list[dict]) -> None:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=bundles)
        self.bundles = bundles

    def clear(self) -> None:
        if self.bundles:
            try:
                from ray.autoscaler.sdk import request_resources

                request_resources(bundles=[])
            except Exception:  # noqa: BLE001 - best effort; never mask the run's own outcome
                pass
            self.bundles = None
