"""The Python API, for notebooks and scripts: run a spec, open a sweep, read its tables, its barrier
summary, its claims, its path curves and its models.

    import orchestrator as mmc

    outcome = mmc.run("sweeps/smoke.yaml", "finetune.lam={grid: [1, 3]}", storage="/tmp/runs")
    sweep = mmc.open_sweep("/tmp/runs/smoke")    # repr: name, storage, tasks finished/planned, tables
    barriers = sweep.table("barriers")           # pandas, conformed to the current schema
    sweep.table("paths", columns=["pair_type", "alpha", "loss"])   # only these columns (and task_id)
    barriers.groupby("finetune.lam")["value"].mean()
    sweep.summary()                              # the report's barrier statistics (summary.parquet)
    [c.verdict for c in sweep.claims()]          # the claims (a)-(d); sweep.claims().frame() as a table
    sweep.path_curves(pair_type="cue~nocue", eval_set="nocue", path_kind="linear")   # pair x alpha
    model = sweep.load_model(task_id)            # a torch module in eval mode, from its safetensors
    sweep.spec                                   # the resolved spec (a dict), sweep.plan the planned tasks

`run` is `mmc-sweep run` (same checks, same caching, same outputs); `open_sweep` reads only what is
stored (spec.yaml, plan.parquet, results/, checkpoints), like `mmc-sweep status` and `report`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from orchestrator import vocab
from orchestrator.messages import show
from orchestrator.report import stats
from orchestrator.results import outputs, tables
from orchestrator.storage.layout import SweepLayout, open_sweep_dir
from orchestrator.results.plan import plan_of
from orchestrator.spec.yaml_io import decode, parse_yaml
from orchestrator.uris import redact


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
    `.layout`, `.report_html`). Raises an `orchestrator.errors.MmcError` (SpecError, SweepError, ...) for
    bad input, KeyboardInterrupt when stopped (Ctrl-C, SIGTERM, SIGHUP). `runner`: `real`, or an import
    path `package.module:function`. `autoscaler_config` and `wait_for_nodes_s` are `--autoscaler-config`
    and `--wait-for-nodes`. Its messages go to the `orchestrator` logger: on the console as on the command
    line, unless this process has log handlers of its own, which then get them (credentials redacted)."""
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
    def plan(self) -> pd.DataFrame:
        """The planned tasks (plan.parquet; rebuilt from spec.yaml if that file is gone; ValueError if
        neither can be had)."""
        return plan_of(self.layout)[0]

    def table(self, name: str, planned_only: bool = True, columns: list[str] | None = None) -> pd.DataFrame:
        """One result table (`tasks`, `evaluations`, `train_curves`, `paths`, `barriers`), every
        fragment conformed to the current schema; by default only rows of the current plan's tasks
        (`planned_only=False`: also rows an earlier spec version left in the directory). `columns`:
        only these (and `task_id`), the same values as the full table's; a 10^5-task sweep's `paths`
        table has 2.2 M rows of 68 columns. Strings are pandas' `str` dtype, integers `Int64`."""
        planned = self._planned_ids if planned_only else None
        return tables.read_table(self.layout, name, columns, planned)

    @cached_property
    def _planned_ids(self) -> list[str]:
        """The plan's task ids: its one column read (`plan` reads all of them: 0.2 s at 10^5 tasks)."""
        if "plan" in self.__dict__:
            return self.plan["task_id"].tolist()
        return plan_of(self.layout, ("task_id",))[0]["task_id"].tolist()

    def tables(self, planned_only: bool = True) -> dict[str, pd.DataFrame]:
        return {name: self.table(name, planned_only) for name in vocab.TABLES}

    def summary(self) -> pd.DataFrame:
        """The barrier statistics of the report (`report/summary.parquet`, computed afresh from the
        tables): per pair type, path kind, alignment, eval set, metric and definition (and dataset,
        model, cue proportion and swept settings where they vary), n pairs, mean, std, ci_low, ci_high."""
        # the report's modules load matplotlib (0.3 s): imported here, not for every table read
        from orchestrator.report.build import swept_keys

        return stats.summarize(self.table(vocab.BARRIERS), swept=swept_keys(self.layout))

    def claims(self) -> Claims:
        """The paper's claims (a)-(d) judged against their controls: what `mmc-sweep claims` prints.
        A list of claims (`.key`, `.statement`, `.verdict`, `.sentence()`, `.checks`, `.rows`) with
        `.frame()`: one row per claim (`.frame(checks=True)`: per comparison)."""
        from orchestrator.report.build import print_claims

        return Claims(print_claims(self.layout, log=lambda text: None))

    def path_curves(self, pair_type: str | None = None, eval_set: str | None = None, path_kind: str | None = None,
                    alignment: str | None = None) -> pd.DataFrame:
        """The `paths` table as tidy curves: one row per pair x alpha (x eval set, unless `eval_set` picks
        one), the pair's labels, the swept settings, then loss, acc, agreement with each endpoint and the
        two cue-reliance indices, sorted by pair and alpha. Each filter takes one value of its column;
        a value the sweep does not have is a ValueError listing those it has."""
        from orchestrator.report.build import swept_keys

        keys = ["pair_type", "path_kind", "alignment", "seed", "endpoint_a", "endpoint_b", "task_id"]
        swept = [k for k in swept_keys(self.layout) if k in tables.SCHEMAS[vocab.PATHS].names]
        measures = ["loss", "acc", "agree_a", "agree_b", "reliance_randimg", "reliance_randcue"]
        df = self.table(vocab.PATHS, columns=[*keys, *swept, "eval_set", "alpha", *measures])
        for column, value in (("pair_type", pair_type), ("eval_set", eval_set), ("path_kind", path_kind),
                              ("alignment", alignment)):
            if value is None:
                continue
            present = sorted({str(v) for v in df[column].dropna().unique()})
            if value not in present:
                raise ValueError(f"`{column}`={show(value)} is not in the `paths` table of sweep {self.layout.sweep}; "
                                 f"it has: {', '.join(present) or 'no rows yet'}")
            df = df[df[column] == value]
        columns = [*keys, *swept, *(["eval_set"] if eval_set is None else []), "alpha", *measures]
        order = [c for c in columns if c not in measures]
        return df[columns].sort_values(order, kind="stable", na_position="first").reset_index(drop=True)

    def load_model(self, task_id: str, device: str = "cpu"):
        """The model a task trained (pretrain, finetune), the trained control point θ of a quadratic path
        (midpoint; the path's own point at α = ½ is ¼A + ½θ + ¼B) or the second endpoint permuted onto
        the first (align), built from the task's stored config and loaded from its verified safetensors
        checkpoint; in eval mode on `device`."""
        import torch

        from tasks.data import DataSettings, dataset_info
        from tasks.models import ModelSettings, build_model
        from tasks.settings import from_identity

        plan = self.plan
        row = plan[plan["task_id"] == task_id] if plan is not None else plan
        if row is None or row.empty:
            raise KeyError(f"{task_id!r} is not a task of sweep {self.layout.sweep} (its plan.parquet; e.g. "
                           f"{', '.join(plan['task_id'].head(3)) if plan is not None else 'none planned'})")
        kind = row["kind"].iloc[0]
        if kind not in vocab.MODEL_KINDS:
            raise ValueError(f"{task_id} is a {kind} task, which has no model: load one of "
                             f"{', '.join(vocab.MODEL_KINDS)} (a path's endpoints are its `endpoint_a`, `endpoint_b`)")
        ok, reason = outputs.verify_outputs(self.layout, kind, task_id)
        if not ok:
            raise FileNotFoundError(f"{task_id} has no finished checkpoint ({reason}); run the sweep first")
        config = json.loads(row["config_json"].iloc[0])
        data = config["data"][0] if isinstance(config["data"], list) else config["data"]   # a midpoint's: 2
        data = from_identity(DataSettings, {k: v for k, v in data.items() if k != "version"})
        settings = from_identity(ModelSettings, {k: v for k, v in config["model"].items() if k != "version"})
        info = dataset_info(data.dataset, (self.spec.get("data") or {}).get("root"))
        model = build_model(settings.name, info.num_classes, info.in_channels, settings.width)
        tensors, _meta = outputs.load_checkpoint(self.layout, kind, task_id)
        model.load_state_dict(tensors)
        return model.to(torch.device(device)).eval()

    def __repr__(self) -> str:
        """Finished as `mmc-sweep status` counts them: the task's outputs verify against its marker (a `tasks`
        row says what a run recorded, which damage since does not change)."""
        plan = self.plan
        kinds, ids = (plan["kind"].tolist(), plan["task_id"].tolist()) if plan is not None else ([], [])
        verified = outputs.verify_many(self.layout, zip(kinds, ids), None)   # no fork in a user's interpreter
        finished = sum(1 for task_id in ids if verified[task_id][0])
        written = [t for t in vocab.TABLES if self.layout.storage.listdir(self.layout.table_dir(t))]
        return (f"<Sweep {self.layout.sweep!r} at {redact(self.layout.root)}: {finished}/{len(ids)} tasks "
                f"finished; tables {', '.join(written) or 'none yet'} (sweep.table(name))>")


class Claims(list):
    """The judged claims, a list of `orchestrator.report.claims.Claim` (`.verdict`, `.sentence()`)."""

    def frame(self, checks: bool = False) -> pd.DataFrame:
        """One row per claim (key, context, statement, verdict, sentence); with `checks`, one row per
        comparison a claim needs (check, outcome, evidence, required, reason) instead. `verdict` is the one the
        console and the report print, with what a "holds" does not cover ("holds where it can be tested",
        "holds, except a supporting check"): `== "holds"` selects the claims that hold without a reservation."""
        base = [{"claim": c.key, "context": c.context, "statement": c.statement, "verdict": c.badge()} for c in self]
        if not checks:
            return pd.DataFrame([{**b, "sentence": c.sentence()} for b, c in zip(base, self)],
                                columns=["claim", "context", "statement", "verdict", "sentence"])
        return pd.DataFrame([{**b, "check": k.text, "outcome": k.outcome, "evidence": k.evidence, "required": k.required,
                              "reason": k.reason} for b, c in zip(base, self) for k in c.checks],
                            columns=["claim", "context", "statement", "verdict", "check", "outcome", "evidence",
                                     "required", "reason"])


def open_sweep(directory: str) -> Sweep:
    """A sweep directory (`<storage>/<name>`, a local path or a pyarrow.fs URI such as
    `s3://bucket/runs/smoke`)."""
    layout = open_sweep_dir(directory)
    if not layout.storage.is_file(layout.spec_file()):
        raise FileNotFoundError(f"{redact(directory)} is not a sweep directory (no spec.yaml)")
    return Sweep(layout)
