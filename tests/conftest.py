"""Shared fixtures: one thread per process, a local 2-CPU Ray per test module, tiny sweep specs.

pytest-xdist runs the test files in 2 processes (`-n 2 --dist loadfile` in pyproject.toml; `-n 0`
runs everything in one), each with its own Ray temp directory.

The suite is independent of the caller's environment: a `RAY_ADDRESS` (a cluster the caller uses)
and every `MMC_*` variable (`FOREIGN_ENV`) are removed before any test runs, so no test attaches to
the caller's cluster or inherits a knob; local Rays are started with
`num_gpus=0` and subprocesses get `clean_env()`, so a GPU on the machine changes nothing outside
the `gpu`-marked tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from orchestrator.knobs import KNOBS
from tests.support.runners import ENV_VARS as TEST_RUNNER_ENV

REPO = Path(__file__).resolve().parents[1]
SMOKE_SPEC = REPO / "sweeps" / "smoke.yaml"
# Variables of the caller's environment that would change what a test does: every variable mmc-sweep
# reads (orchestrator.knobs), the test runners' own, a Ray cluster, an MLflow server.
FOREIGN_ENV = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", *KNOBS, *TEST_RUNNER_ENV)

torch.set_num_threads(1)   # the machine has 2 cores shared by everybody
for _name in FOREIGN_ENV:
    os.environ.pop(_name, None)
# Ray workers of a local Ray started in a test import the test runners (tests/support/runners.py) by
# import path: the repository is on their path however pytest was started.
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                          if p and p != str(REPO)]])
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# pytest-xdist runs test files in parallel processes (pyproject's addopts), and several pytest runs may
# share a machine. Each process gets its own Ray temp directory (its run, its xdist worker), inherited by
# its subprocesses: a `ray.init()` without an address then never finds another process's cluster (Ray
# looks for `ray_current_cluster` there). The controlling process names the run; its workers inherit it.
os.environ.setdefault("MMC_TEST_RUN_ID", str(os.getpid()))
os.environ["RAY_TMPDIR"] = f"/tmp/mmc-test-{os.environ['MMC_TEST_RUN_ID']}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
os.environ.setdefault("MMC_PROGRESS_INTERVAL_S", "1")
# Ray's own metrics are no subject of the tests, and their collection thread (OpenTelemetry's periodic reader in
# every raylet, Ray 2.60) crashed a worker node as it joined (SIGSEGV in TemporalMetricStorage::buildMetrics):
# off for every Ray the tests start, in this process and the subprocesses that inherit its environment.
os.environ.setdefault("RAY_enable_metrics_collection", "0")


def pytest_configure(config) -> None:
    """Outside `pytest -m gpu`, hide the machine's GPUs from this process and everything it starts, so
    the suite behaves the same on a machine with a GPU as on one without (the `gpu`-marked tests need
    one and are selected with `-m gpu`)."""
    if not re.search(r"(?<!not )\bgpu\b", config.getoption("markexpr", "") or ""):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def pytest_collection_modifyitems(config, items) -> None:
    """Files holding a `slow` test run first: a stable sort on top of pytest-randomly's shuffle (so a seed
    still replays an order), and with `--dist loadfile --no-loadscope-reorder` (pyproject) the workers take
    the files in this order. The long files are then shared out at the start instead of one worker running
    the last of them alone while the other idles (xdist's own reorder put files of few tests, the slow
    ones, last)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(autouse=True)
def _forget_remembered_secrets():
    """Each test starts with no secret remembered from an earlier one's spec or command line
    (`orchestrator.uris.remember_secrets`): a test of what `redact` hides by itself must not pass because
    another test's password is still on the list."""
    import orchestrator.uris as uris

    uris._SECRETS = ()
    yield
    uris._SECRETS = ()


def clean_env(**extra: str) -> dict:
    """The environment for a subprocess of a test: no caller's Ray address or fault injection, no
    visible GPU (a CPU machine's behaviour everywhere), the repository importable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env.update({"CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra})
    return env


def write_spec(directory: Path, name: str = "tiny", **overrides) -> Path:
    """A sweep YAML that extends sweeps/smoke.yaml with `overrides` (nested mappings merge, everything
    else replaces), storage under `directory`; returns its path. Like a user's spec built on a shipped
    one, only the keys given here are the spec's own (what it asks for, spec/rules.py)."""
    raw = {"extends": str(SMOKE_SPEC), "name": name, "storage": str(directory / "runs"), **overrides}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def spec_factory(tmp_path):
    """`spec_factory(name="tiny", **overrides) -> Path` writes a tiny spec into tmp_path."""
    def make(name: str = "tiny", **overrides) -> Path:
        return write_spec(tmp_path, name, **overrides)
    return make


def start_local_ray(num_cpus: int = 2) -> None:
    """A fresh local Ray with `num_cpus` CPUs and no GPU (whatever the machine has)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=num_cpus, num_gpus=0, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="WARNING")


NODE_START_TIMEOUT_S = 120   # a node joining on 2 busy cores


def wait_for_resources(want: dict[str, float], timeout_s: float = NODE_START_TIMEOUT_S) -> dict:
    """Once `ray.cluster_resources()` of the connected Ray (what a sweep's preflight reads) shows at least
    `want`, the resources; a fixture that starts nodes returns only then (a node is listed alive a moment
    before its resources count)."""
    import time

    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        have = ray.cluster_resources()
        if all(have.get(name, 0) >= amount for name, amount in want.items()):
            return have
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster shows {have}, not yet {want}, after {timeout_s:g} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for the whole test module (shut down afterwards)."""
    import ray

    start_local_ray(2)
    yield ray
    ray.shutdown()
