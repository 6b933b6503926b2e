"""Expand a sweep spec into a DAG of tasks with content-hash ids.

A task's id is a hash of its kind and its canonical config (defaults left out, keys sorted, parent
ids inside), so equal work gets equal ids: a task reached twice is one task, a rerun finds the
outputs of the last one, and adding a setting with a default keeps old ids. `data.root` and
resources are never part of an id.

Pairs, for each model, seed s (in the listed order) and cue proportion p > 0:
  cue~nocue            (p, s) vs (0, s)
  cue~cue              (p, s) vs (p, next seed)   nocue~nocue  (0, s) vs (0, next seed)
                       ("next" wraps around for 3+ seeds, so n seeds give n pairs; 2 seeds give 1)
  pretrained~ft:<m>    (p, s) vs its fine-tuned model with method m
Each pair gets, per path kind: linear -> path_eval; quadratic -> midpoint + path_eval;
aligned -> per alignment method, align + path_eval.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

from pydantic import BaseModel

from orchestrator.spec import DATA_DEFAULTS, ModelSection, SweepSpec

TASK_KINDS = ("pretrain", "finetune", "midpoint", "align", "path_eval")
LABEL_KEYS = ("dataset", "cue_proportion", "model", "seed", "method", "path_kind", "alignment",
              "pair_type", "endpoint_a", "endpoint_b")


@dataclass(frozen=True)
class Resources:
    cpus: float = 1       # per worker
    gpus: float = 0       # per worker; a fraction < 1 shares a GPU
    workers: int = 1      # > 1: data-parallel through Ray Train
    custom: tuple[tuple[str, float], ...] = ()   # per worker, extra Ray resources as sorted (name, amount)


@dataclass(frozen=True)
class Task:
    kind: str
    config: dict                  # canonical, JSON-able, defaults left out; parent ids inside
    parents: tuple[str, ...]
    labels: dict                  # LABEL_KEYS, None where not applicable
    resources: Resources = field(default=Resources(), compare=False)

    def __hash__(self) -> int:
        return hash(self.id)

    @cached_property
    def id(self) -> str:
        text = canonical_json({"kind": self.kind, "config": self.config})
        return f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Graph:
    tasks: dict[str, Task]        # insertion order is a topological order

    def __len__(self) -> int:
        return len(self.tasks)

    @cached_property
    def _children(self) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {task_id: [] for task_id in self.tasks}
        for task_id, task in self.tasks.items():
            for parent in task.parents:
                children[parent].append(task_id)
        return children

    def children(self, task_id: str) -> list[str]:
        return list(self._children[task_id])

    def descendants(self, task_id: str) -> list[str]:
        """Every task that depends on `task_id`, directly or not, in topological order."""
        found, stack = set(), [task_id]
        while stack:
            for child in self._children[stack.pop()]:
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return [t for t in self.tasks if t in found]

    def counts(self) -> dict[str, int]:
        counts = Counter(task.kind for task in self.tasks.values())
        return {kind: counts[kind] for kind in TASK_KINDS if counts[kind]}


# ----- canonical forms -----

def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, no NaN: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def settings_dict(obj: Any, exclude: tuple[str, ...] = ()) -> dict:
    """The fields of a settings dataclass (or pydantic section) that differ from their defaults."""
    if dataclasses.is_dataclass(obj):
        defaults = {f.name: f.default for f in dataclasses.fields(obj)}
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif isinstance(obj, BaseModel):
        defaults = {name: f.default for name, f in type(obj).model_fields.items()}
        values = {name: getattr(obj, name) for name in type(obj).model_fields}
    else:
        raise TypeError(f"expected a settings dataclass or pydantic model, got {type(obj).__name__}")
    return {name: _plain(value) for name, value in values.items()
            if name not in exclude and not _equal(value, defaults[name])}


def data_dict(dataset: str, cue: str, cue_proportion: float, seed: int) -> dict:
    """`tasks.data.DataSettings` as a config dict, defaults left out and without `root`."""
    values = {"dataset": dataset, "cue": cue, "cue_proportion": float(cue_proportion), "seed": seed}
    return {k: v for k, v in values.items() if not _equal(v, DATA_DEFAULTS[k])}


def model_dict(model: ModelSection) -> dict:
    return {"name": model.name} if model.width is None else {"name": model.name, "width": model.width}


def _equal(value: Any, default: Any) -> bool:
    return type(value) is type(default) and value == default or \
        isinstance(value, (int, float)) and isinstance(default, (int, float)) \
        and not isinstance(value, bool) and not isinstance(default, bool) and value == default


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ----- building -----

@dataclass(frozen=True)
class _Pair:
    pair_type: str
    a: Task
    b: Task
    cue_proportion: float
    seed: int
    method: str | None


class _Builder:
    """Adds tasks once each (by id), in topological order."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self.tasks: dict[str, Task] = {}
        r = spec.resources
        self.resources = {kind: Resources(getattr(r, kind).cpus, getattr(r, kind).gpus, getattr(r, kind).workers,
                                          tuple(sorted(getattr(r, kind).custom.items()))) for kind in TASK_KINDS}

    def add(self, kind: str, config: dict, parents: tuple[str, ...], **labels: Any) -> Task:
        task = Task(kind, config, parents, {key: labels.get(key) for key in LABEL_KEYS},
                    self.resources[kind])
        return self.tasks.setdefault(task.id, task)

    def data(self, p: float, seed: int) -> dict:
        return data_dict(self.spec.data.dataset, self.spec.data.cue, p, seed)


def build_graph(spec: SweepSpec) -> Graph:
    """Every task of the sweep, deduplicated, in topological order."""
    b = _Builder(spec)
    for model in spec.models:
        pretrained = _add_pretrains(b, model)
        finetuned = _add_finetunes(b, model, pretrained)
        for pair in _pairs(spec, pretrained, finetuned):
            _add_paths(b, model, pair)
    return Graph(b.tasks)


def _add_pretrains(b: _Builder, model: ModelSection) -> dict[tuple[float, int], Task]:
    train = settings_dict(b.spec.pretrain)
    return {(p, s): b.add("pretrain",
                          {"data": b.data(p, s), "model": model_dict(model), "train": train, "seed": s},
                          (), dataset=b.spec.data.dataset, cue_proportion=p, model=model.label, seed=s)
            for p in b.spec.cue_proportions for s in b.spec.seeds}


def _add_finetunes(b: _Builder, model: ModelSection, pretrained: dict) -> dict[tuple[float, int, str], Task]:
    settings = settings_dict(b.spec.finetune, exclude=("methods",))
    finetuned = {}
    for p in b.spec.cue_models:
        for s in b.spec.seeds:
            parent = pretrained[p, s]
            for method in b.spec.finetune.methods:
                config = {"pretrain": parent.id, "method": method, "finetune": settings,
                          "data": b.data(p, s), "model": model_dict(model), "seed": s}
                finetuned[p, s, method] = b.add("finetune", config, (parent.id,),
                                                 **{**parent.labels, "method": method})
    return finetuned


def _pairs(spec: SweepSpec, pretrained: dict, finetuned: dict) -> Iterator[_Pair]:
    pairs, seeds = spec.paths.pairs, spec.seeds
    if "cue~nocue" in pairs:
        for s in seeds:
            for p in spec.cue_models:
                yield _Pair("cue~nocue", pretrained[p, s], pretrained[0.0, s], p, s, None)
    if "cue~cue" in pairs:
        for p in spec.cue_models:
            for s, t in seed_pairs(seeds):
                yield _Pair("cue~cue", pretrained[p, s], pretrained[p, t], p, s, None)
    if "nocue~nocue" in pairs:
        for s, t in seed_pairs(seeds):
            yield _Pair("nocue~nocue", pretrained[0.0, s], pretrained[0.0, t], 0.0, s, None)
    if "pretrained~ft" in pairs:
        for s in seeds:
            for p in spec.cue_models:
                for m in spec.finetune.methods:
                    yield _Pair(f"pretrained~ft:{m}", pretrained[p, s], finetuned[p, s, m], p, s, m)


def seed_pairs(seeds: list[int]) -> list[tuple[int, int]]:
    """Each seed with the next one; wraps around for 3+ seeds (n pairs), 2 seeds give 1 pair."""
    n = len(seeds)
    if n < 2:
        return []
    return [(seeds[i], seeds[(i + 1) % n]) for i in range(n if n > 2 else 1)]


def _add_paths(b: _Builder, model: ModelSection, pair: _Pair) -> None:
    spec = b.spec
    endpoints = [pair.a.id, pair.b.id]
    common = {"endpoints": endpoints, "model": model_dict(model)}
    labels = dict(dataset=spec.data.dataset, cue_proportion=pair.cue_proportion, model=model.label,
                  seed=pair.seed, method=pair.method, pair_type=pair.pair_type,
                  endpoint_a=pair.a.id, endpoint_b=pair.b.id)
    data_a, data_b = pair.a.config["data"], pair.b.config["data"]
    eval_config = {**common, "data": b.data(0.0, pair.seed), "path": settings_dict(spec.paths,
                   exclude=("pairs", "kinds", "alignments"))}
    for kind in spec.paths.kinds:
        if kind == "linear":
            b.add("path_eval", {**eval_config, "path_kind": "linear", "via": None, "alignment": None},
                  (pair.a.id, pair.b.id), **labels, path_kind="linear")
        elif kind == "quadratic":
            mid = b.add("midpoint", {**common, "data": [data_a, data_b],
                                     "train": settings_dict(spec.midpoint), "seed": pair.seed},
                        (pair.a.id, pair.b.id), **labels, path_kind="quadratic")
            b.add("path_eval", {**eval_config, "path_kind": "quadratic", "via": mid.id, "alignment": None},
                  (pair.a.id, pair.b.id, mid.id), **labels, path_kind="quadratic")
        else:
            for method in spec.paths.alignments:
                al = b.add("align", {**common, "method": method, "data": data_a,
                                     "samples": spec.align.samples, "seed": pair.seed},
                           (pair.a.id, pair.b.id), **labels, path_kind="aligned", alignment=method)
                b.add("path_eval", {**eval_config, "path_kind": "aligned", "via": al.id,
                                    "alignment": method},
                      (pair.a.id, pair.b.id, al.id), **labels, path_kind="aligned", alignment=method)


# ----- describing -----

def describe_plan(graph: Graph) -> str:
    """Counts per kind, what each kind depends on, pairs per type and per-task resources."""
    counts = graph.counts()
    lines = [f"{len(graph)} tasks"]
    shapes: dict[str, Counter] = {kind: Counter() for kind in counts}
    resources: dict[str, Resources] = {}
    pairs: dict[str, set] = {}
    for task in graph.tasks.values():
        parent_kinds = Counter(graph.tasks[p].kind for p in task.parents)
        shapes[task.kind][" + ".join(f"{k}×{n}" if n > 1 else k for k, n in
                                     sorted(parent_kinds.items(), key=lambda kv: TASK_KINDS.index(kv[0])))] += 1
        resources.setdefault(task.kind, task.resources)
        if task.labels.get("pair_type"):
            pairs.setdefault(task.labels["pair_type"], set()).add(
                (task.labels["endpoint_a"], task.labels["endpoint_b"]))
    width = max(len(k) for k in counts) if counts else 0
    for kind, n in counts.items():
        r = resources[kind]
        lines.append(f"  {kind:<{width}} {n:>6}   {r.cpus:g} cpu, {r.gpus:g} gpu"
                     + "".join(f", {v:g} {k}" for k, v in r.custom)
                     + (f", {r.workers} workers" if r.workers > 1 else "") + " each")
        for i, (shape, m) in enumerate(shapes[kind].most_common()):
            arrow = "←" if i == 0 else "|"
            lines.append(f"  {'':<{width}} {'':>6}   {arrow} {shape or 'nothing'} ({m})")
    if pairs:
        lines.append("pairs: " + ", ".join(f"{t} {len(v)}" for t, v in pairs.items()))
    return "\n".join(lines)
