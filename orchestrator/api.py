"""The Python API, for notebooks and scripts: run a spec, open a sweep's tables.

    import orchestrator as mmc

    outcome = mmc.run("sweeps/smoke.yaml", "finetune.lam={grid: [1, 3]}", storage="/tmp/runs")
    sweep = mmc.open_sweep("/tmp/runs/smoke")
    barriers = sweep.table("barriers")           # pandas, conformed to the current schema
    barriers.groupby("finetune.lam")["value"].mean()
    sweep.spec                                   # the resolved spec (a dict), sweep.plan the planned tasks

`run` is `mmc-sweep run` (same checks, same caching, same outputs); `open_sweep` reads only what is
stored (spec.yaml, plan.parquet, results/), like `mmc-sweep status` and `report`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from orchestrator import vocab
from orchestrator.results import tables
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.results.plan import read_plan
from orchestrator.spec.yaml_io import decode, parse_yaml


def load(spec: str | None = None, *overrides: str, **flags):
    """The validated `SweepSpec` of a spec file (None: the built-in default sweep) with `key=value`
    overrides; keyword flags are overrides too (`storage="/tmp/runs"`, `max_concurrent=4`)."""
    from orchestrator.spec.sweep_spec import load_spec

    extra = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    return load_spec(spec, [*overrides, *extra])


def run(spec: str | None = None, *overrides: str, runner: str = "real", num_cpus: int | None = None,
        address: str | None = None, report: bool = True, new_version: bool = False,
        autoscaler_config: str | None = None, wait_for_nodes_s: float | None = None, **flags):
    """Run (or resume) a sweep like `mmc-sweep run`; returns its `SweepOutcome` (`.ok`, `.counts`,
    `.layout`, `.report_html`). Raises SpecError / SweepError for bad input. `autoscaler_config` and
    `wait_for_nodes_s` are `--autoscaler-config` and `--wait-for-nodes`."""
    from orchestrator.run.sweep import run_sweep

    waits = {} if wait_for_nodes_s is None else {"wait_for_nodes_s": wait_for_nodes_s}
    return run_sweep(load(spec, *overrides, **flags), runner=runner, num_cpus=num_cpus, ray_address=address,
                     report=report, new_version=new_version, autoscaler_config=autoscaler_config, **waits)


@dataclass(frozen=True)
class Sweep:
    """A sweep on storage: its resolved spec, its plan and its five result tables."""

    layout: SweepLayout

    @cached_property
    def spec(self) -> dict:
        data = self.layout.storage.read_bytes(self.layout.spec_file(), max_bytes=2_000_000)
        return parse_yaml(decode(data, self.layout.spec_file(), "stored spec"))

    @cached_property
    def plan(self) -> pd.DataFrame | None:
        return read_plan(self.layout)

    def table(self, name: str, planned_only: bool = True) -> pd.DataFrame:
        """One result table (`tasks`, `evaluations`, `train_curves`, `paths`, `barriers`), every
        fragment conformed to the current schema; by default only rows of the current plan's tasks."""
        df = tables.read_table(self.layout, name)
        if planned_only and self.plan is not None:
            df = df[df["task_id"].isin(set(self.plan["task_id"]))].reset_index(drop=True)
        return df

    def tables(self, planned_only: bool = True) -> dict[str, pd.DataFrame]:
        return {name: self.table(name, planned_only) for name in vocab.TABLES}


def open_sweep(directory: str) -> Sweep:
    """A sweep directory (`<storage>/<name>`, a local path or a pyarrow.fs URI)."""
    path = str(directory).rstrip("/")
    parent, _, name = path.rpartition("/")
    layout = SweepLayout(Storage(parent or "."), name)
    if not layout.storage.is_file(layout.spec_file()):
        raise FileNotFoundError(f"{directory} is not a sweep directory (no spec.yaml)")
    return Sweep(layout)
