"""orchestrator.machine: how many CPUs this process may use (status's verification processes, the
report's figure workers and the tables' decode threads are sized by it)."""
from __future__ import annotations

import os

import pytest

from orchestrator import machine


def test_usable_cpus_are_those_of_the_processs_affinity_not_every_cpu_of_the_machine(monkeypatch):
    """A process pinned to 2 CPUs of 64 (taskset, a container's cpuset, a Slurm allocation) may use 2."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert machine.usable_cpus() == 2


def test_usable_cpus_are_every_cpu_where_the_system_has_no_affinity_and_at_least_one(monkeypatch):
    """Without `sched_getaffinity` (macOS, Windows): every CPU; where even their number is unknown, 1."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert machine.usable_cpus() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert machine.usable_cpus() == 1


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system")
def test_usable_cpus_of_this_process_are_its_affinitys():
    assert machine.usable_cpus() == len(os.sched_getaffinity(0)) >= 1
