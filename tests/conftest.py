"""Shared fixtures: one thread per process, a local 2-CPU Ray per test module, tiny sweep specs."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE_SPEC = REPO / "sweeps" / "smoke.yaml"

torch.set_num_threads(1)   # the machine has 2 cores shared by everybody
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("MMC_PROGRESS_INTERVAL_S", "1")


def _merge(base: dict, overrides: dict) -> dict:
    """`overrides` into a copy of `base`; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_spec(directory: Path, name: str = "tiny", **overrides) -> Path:
    """A sweep YAML based on sweeps/smoke.yaml, storage under `directory`; returns its path."""
    raw = yaml.safe_load(SMOKE_SPEC.read_text())
    raw = _merge(raw, {"name": name, "storage": str(directory / "runs"), **overrides})
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def spec_factory(tmp_path):
    """`spec_factory(name="tiny", **overrides) -> Path` writes a tiny spec into tmp_path."""
    def make(name: str = "tiny", **overrides) -> Path:
        return write_spec(tmp_path, name, **overrides)
    return make


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for the whole test module (shut down afterwards)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="WARNING")
    yield ray
    ray.shutdown()
