"""Tasks that wait for what no node has (`orchestrator.run.stall`), on hand-made cluster views and a clock
moved by hand: a node with a custom resource leaves a cluster that cannot grow, and the tasks handed out
for it are stranded; once nothing else runs, the run stops after `wait_s` without a task ending, not
before, and not while a node is on its way or an autoscaler could start one."""
from __future__ import annotations

import logging

from orchestrator.graph.dag import LABEL_KEYS, Graph, Resources, Task
from orchestrator.run import stall
from orchestrator.run.capacity import AutoscalerStatus, ClusterView
from orchestrator.run.node_types import NodeType, NodeTypes
from orchestrator.run.state import SweepState
from orchestrator.vocab import DONE, FAILED, RUNNING
from tests.support.clock import FakeClock

HEAD = {"CPU": 2.0, "node:__internal_head__": 1.0}
WORKER = {"CPU": 1.0, "worker_slot": 1.0}
PINNED = Resources(cpus=1, custom=(("worker_slot", 1.0),))
LABELS = {k: None for k in LABEL_KEYS}


def _view(*nodes: dict, autoscaler=None, types=None) -> ClusterView:
    visible: dict = {}
    for node in nodes:
        for k, v in node.items():
            visible[k] = visible.get(k, 0.0) + v
    return ClusterView(tuple(nodes), visible, types, autoscaler)


class _Cluster:
    def __init__(self, view: ClusterView):
        self.now = view

    def view(self) -> ClusterView:
        return self.now


def _sweep():
    """Two fine-tunings pinned to the worker (`worker_slot`) and one path evaluation on any CPU."""
    tasks = [Task("finetune", {"name": f"f{i}"}, (), LABELS, PINNED) for i in range(2)]
    tasks.append(Task("path_eval", {"name": "p"}, (), LABELS, Resources(cpus=1)))
    return SweepState(Graph({t.id: t for t in tasks})), tasks


def _watch(state, view, wait_s=60.0):
    clock, stops = FakeClock(), []
    cluster = _Cluster(view)
    watch = stall.StallWatch(state, cluster, wait_s, stop=lambda: stops.append(clock.now), clock=clock)
    return watch, cluster, clock, stops


def test_tasks_waiting_for_a_node_that_left_stop_the_run_after_wait_s_without_progress(caplog):
    state, (f0, f1, p) = _sweep()
    for t in (f0, f1):
        state.set_status(t.id, RUNNING)
    watch, cluster, clock, stops = _watch(state, _view(HEAD, WORKER))
    assert watch.stranded() == ({}, 2) and not watch.check()     # the worker is there: nothing stranded
    cluster.now = _view(HEAD)                                     # ... and now it is gone
    assert watch.stranded() == ({("finetune", "CPU 1, worker_slot 1"): 2}, 2)
    with caplog.at_level(logging.WARNING, logger="orchestrator.run.stall"):
        clock.now = 10.0
        assert not watch.check()
        clock.now = 40.0
        state.set_status(f1.id, FAILED)                           # a task ended: the wait starts again
        clock.now = 99.0
        assert not watch.check() and stops == []
        clock.now = 100.0
        assert watch.check() and stops == [100.0]
    assert caplog.text.count("waiting: 2 finetune tasks asking for {CPU 1, worker_slot 1}, which no node of the "
                             "cluster has") == 1                   # said once, when first seen
    assert "stopping the run: 1 finetune task asking for {CPU 1, worker_slot 1}, which no node of the cluster has " \
           "had for 60 s while no task ended (--wait-for-nodes 60)" in caplog.text
    assert watch.check() and stops == [100.0]                     # stopped once


def test_a_task_still_running_elsewhere_runs_to_its_end_first_and_a_returning_node_resets_the_wait():
    state, (f0, f1, p) = _sweep()
    for t in (f0, f1, p):
        state.set_status(t.id, RUNNING)
    watch, cluster, clock, stops = _watch(state, _view(HEAD))
    assert not watch.check()                                      # two stranded, the path evaluation runs
    clock.now = 1000.0
    assert not watch.check()                                      # however long it runs
    clock.now = 1010.0
    state.set_status(p.id, DONE)                                  # now nothing else runs
    clock.now = 1020.0
    assert not watch.check()
    clock.now = 1079.0
    assert not watch.check()
    clock.now = 1080.0
    assert watch.check() and stops == [1080.0]

    state, (f0, f1, p) = _sweep()
    state.set_status(f0.id, RUNNING)
    watch, cluster, clock, stops = _watch(state, _view(HEAD))
    assert not watch.check()
    clock.now = 40.0
    cluster.now = _view(HEAD, WORKER)                             # a worker joined: not stranded any more
    assert not watch.check()
    cluster.now = _view(HEAD)
    clock.now = 80.0
    assert not watch.check()                                      # a new stretch, from t = 80
    clock.now = 139.0
    assert not watch.check() and stops == []
    clock.now = 140.0
    assert watch.check() and stops == [140.0]


def test_nothing_is_stranded_while_a_node_is_on_its_way_or_an_autoscaler_could_start_one_or_a_task_is_not_handed_out():
    state, (f0, f1, p) = _sweep()
    watch, cluster, clock, stops = _watch(state, _view(HEAD), wait_s=0)
    assert watch.stranded() == ({}, 0) and not watch.check()      # pending (not handed out): the searcher's
    state.set_status(f0.id, RUNNING)
    cluster.now = _view(HEAD, autoscaler=AutoscalerStatus(active={"head": 1}, pending={"worker": 1}))
    assert watch.stranded() == ({}, 1)                            # one is starting
    worker = NodeType("worker", (("CPU", 1.0), ("worker_slot", 1.0)), min_workers=0, max_workers=1)
    types = NodeTypes((NodeType("head", (("CPU", 2.0),), head=True), worker), "cluster.yaml")
    cluster.now = _view(HEAD, autoscaler=AutoscalerStatus(active={"head": 1}), types=types)
    assert watch.stranded() == ({}, 1)                            # the autoscaler can start one
    cluster.now = _view(HEAD)
    assert watch.check() and stops == [0.0]                       # --wait-for-nodes 0: at once


def test_only_a_run_on_a_cluster_is_watched_and_the_watch_stops_listening_when_the_run_ends(monkeypatch):
    state, _ = _sweep()
    with stall.watching(state, None, 60.0):
        pass
    with stall.watching(state, _Cluster(_view(HEAD)), None):
        pass
    listeners = len(state._listeners)
    with stall.watching(state, _Cluster(_view(HEAD)), 60.0):
        assert len(state._listeners) == listeners + 1
    assert len(state._listeners) == listeners


def test_tasks_stranded_again_after_a_node_came_back_are_said_again(caplog):
    """The warning is said once per stretch of stranded tasks: a worker that joins ends the stretch, and when it
    leaves again the new stretch is said again."""
    state, (f0, f1, p) = _sweep()
    state.set_status(f0.id, RUNNING)
    watch, cluster, clock, stops = _watch(state, _view(HEAD))
    with caplog.at_level(logging.WARNING, logger="orchestrator.run.stall"):
        assert not watch.check()
        cluster.now = _view(HEAD, WORKER)                         # the worker is back: nothing stranded
        clock.now = 10.0
        assert not watch.check()
        cluster.now = _view(HEAD)                                 # ... and gone again
        clock.now = 20.0
        assert not watch.check() and stops == []
    assert caplog.text.count("waiting: 1 finetune task asking for {CPU 1, worker_slot 1}") == 2


def test_stranded_tasks_of_several_kinds_are_said_in_the_order_of_their_kinds(caplog):
    """A pretraining handed out before a fine-tuning, both pinned to the worker that left: the warning lists
    the kinds alphabetically, whatever order the tasks were handed out in."""
    tasks = [Task("pretrain", {"name": "a"}, (), LABELS, PINNED), Task("finetune", {"name": "b"}, (), LABELS, PINNED)]
    state = SweepState(Graph({t.id: t for t in tasks}))
    for t in tasks:
        state.set_status(t.id, RUNNING)
    watch, cluster, clock, stops = _watch(state, _view(HEAD))
    with caplog.at_level(logging.WARNING, logger="orchestrator.run.stall"):
        assert not watch.check()
    assert "waiting: 1 finetune task asking for {CPU 1, worker_slot 1}; 1 pretrain task asking for " \
           "{CPU 1, worker_slot 1}, which no node" in caplog.text
