"""Expand a sweep spec into a DAG of tasks with content-hash ids.

A task's id is a hash of its kind and its canonical config (settings as `tasks.settings.identity_dict`,
keys sorted, parent ids inside), so equal work gets equal ids: a task reached from two swept
combinations is one task, a rerun finds the outputs of the last one, and adding a setting keeps old
ids. `data.root` and resources are never part of an id.

Models. For each model, combination of swept values, seed s and cue proportion p, the *primary*
model M(p, s) has its own initialisation and data order, drawn from (s, p): the cue and no-cue
models of a seed are independent. Partners are trained only where a pair type needs them:
  cue~nocue              M(p, s)  vs M(0, s)                       independent inits, disjoint pairs
  cue~cue / nocue~nocue  M(p, s)  vs M'(p, s)  (second init/order)  disjoint pairs, one per seed
  cue~nocue:same-init    M(p, s)  vs the no-cue model started from M(p, s)'s init and order
  X~X:spawn@K            M(p, s)  vs its child: M(p, s)'s first K epochs, then another data order
  cue~cue:resubset       M(p, s)  vs a model from M(p, s)'s init and order, another seeded cued subset
                                   (p < 1 only: at 1.0 every sample carries the cue)
  X~X:self               M(p, s)  vs itself, BatchNorm re-estimated on a fresh sample per alpha
  pretrained~ft:<m>      M(p, s)  vs M(p, s) fine-tuned with method m
Each pair gets, per path kind (`paths.kinds`; `paths.finetuned_kinds` for pretrained~ft pairs):
linear -> path_eval; quadratic -> midpoint + path_eval; aligned -> per alignment method, align +
path_eval (which reuses the linear path's rows when the alignment is the identity). `self` pairs get
the linear path only (the others are the same path).

Population (`population:`, orchestrator/spec/population.py). After every pair type of every
combination is planned, each combination's population — the primary models of every proportion and
seed, the models the control pairs train, the fine-tuned ones, as filtered — is paired all with all:
K models give K(K-1)/2 unordered pairs, each with the population's path kinds. A pair whose endpoints
and path a pair type already plans is that task (its `pair_type` stays the pair type's; the endpoints
keep that pair's order); every other one is oriented by its endpoints' ids and labelled `population`,
evaluated with the smaller of the two seeds, so its id depends only on the two endpoints and the path
settings: adding models to a sweep adds only their pairs.

Why one module: the planning of every task kind and pair design shares the model registry of one sweep
(which model is which), the basis of every task id.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import Any, Callable

from orchestrator import vocab
from orchestrator.messages import logger
from orchestrator.spec.schema import SpecError, settings_classes
from orchestrator.spec.sweep_spec import SweepSpec, Variant
from orchestrator.spec.columns import settings_columns, settings_values
from tasks.settings.data import DataSettings, data_identity
from tasks.settings.finetune import FINETUNE_METHOD_NAMES, settings_used
from tasks.settings.models import ModelSettings, model_identity
from tasks.seeding import derive_seed
from tasks.settings import identity_dict

_LOG = logger(__name__)

LABEL_KEYS = ("dataset", "cue_proportion", "model", "seed", "method", "init_seed", "data_seed",
              "path_kind", "alignment", "pair_type", "pair_design", "endpoint_a", "endpoint_b",
              "init_seed_a", "init_seed_b", "data_seed_a", "data_seed_b", "variant")


@dataclass(frozen=True)
class Resources:
    cpus: float = 1       # per worker
    gpus: float = 0       # per worker; a fraction < 1 shares a GPU
    workers: int = 1      # > 1: data-parallel through Ray Train
    custom: tuple[tuple[str, float], ...] = ()   # per worker, extra Ray resources as sorted (name, amount)


@dataclass(frozen=True)
class Task:
    kind: str
    config: dict                  # canonical, JSON-able; settings as identity dicts; parent ids inside
    parents: tuple[str, ...]
    labels: dict                  # LABEL_KEYS, None where not applicable
    resources: Resources = field(default=Resources(), compare=False)
    settings: dict = field(default_factory=dict, compare=False)   # `<section>.<field>` of its lineage

    def __hash__(self) -> int:
        return hash(self.id)

    @cached_property
    def id(self) -> str:
        return task_id(self.kind, self.config)


def task_id(kind: str, config: dict) -> str:
    """`<kind>-<first 16 hex digits of sha256(canonical JSON of kind and config)>`."""
    text = canonical_json({"kind": kind, "config": config})
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


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
        return {kind: counts[kind] for kind in vocab.TASK_KINDS if counts[kind]}


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, no NaN: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ----- seeds of a model -----

def init_seed(seed: int, cue_proportion: float, role: str) -> int:
    """The initialisation (and data-order) seed of a model: its own stream per (seed, p, role)."""
    return derive_seed(seed, "init", repr(float(cue_proportion)), role)


@dataclass(frozen=True)
class _Model:
    """What identifies one pretrained model besides the settings: seeds and how it was trained."""
    p: float
    seed: int
    init: int          # initialisation seed
    order: int         # data-order seed
    spawn: tuple[int, int] | None = None   # (K, order seed from epoch K on)
    cue_seed: int | None = None            # another cued subset (`data.cue_seed`); None: drawn from the seed


@dataclass(frozen=True)
class _Pair:
    pair: str
    design: str
    epoch: int | None
    a: Task
    b: Task
    p: float | None
    seed: int
    method: str | None = None


PROGRESS_S = 10.0           # a plan that takes longer says how far it got this often (`build_graph`'s progress)
PROGRESS_CHECK = 10_000     # tasks between two looks at the clock


class _Builder:
    """Adds tasks once each (by id), in topological order."""

    def __init__(self, spec: SweepSpec, progress: Callable[[int, float], None] | None = None):
        self.spec = spec
        self.progress = progress
        self.started = self.told = time.monotonic()
        self.tasks: dict[str, Task] = {}
        self.resources = {kind: Resources(r.cpus, r.gpus, r.workers, tuple(r.custom))
                          for kind, r in spec.resources.items()}
        # every path planned, by (endpoint a, endpoint b, what the path is without its endpoints): a
        # population pair a pair type already plans is that pair's path
        self.paths: dict[tuple[str, str, str], Task] = {}
        self.oriented: set[tuple[str, str]] = set()     # endpoints of the pair types' pairs, in their order

    def add(self, kind: str, config: dict, parents: tuple[str, ...], settings: dict, **labels: Any) -> Task:
        labels["variant"] = variant_label(self.spec.swept_keys, settings)
        task = Task(kind, config, parents, {key: labels.get(key) for key in LABEL_KEYS}, self.resources[kind],
                    settings)
        kept = self.tasks.setdefault(task.id, task)
        if kept is task and self.progress is not None and len(self.tasks) % PROGRESS_CHECK == 0:   # a new task
            now = time.monotonic()
            if now - self.told >= PROGRESS_S:
                self.progress(len(self.tasks), now - self.started)
                self.told = now
        return kept


def variant_label(swept_keys: tuple[str, ...], settings: dict) -> str | None:
    """`finetune.lr=0.02, finetune.lam=3`: the swept settings that define a task, in the order of
    `swept_keys` (None when no axis affects it, so a task shared by every value of an axis does not name
    one of them)."""
    parts = [f"{key}={settings[key]:g}" if isinstance(settings[key], float) else f"{key}={settings[key]}"
             for key in swept_keys if key in settings]
    return ", ".join(parts) or None


def planning_line(tasks: int, seconds: float) -> str:
    """What `build_graph`'s progress says: `planning: 120,000 tasks so far (10 s)`."""
    return f"planning: {tasks:,} tasks so far ({seconds:.0f} s)"


def build_graph(spec: SweepSpec, progress: Callable[[int, float], None] | None = None) -> Graph:
    """Every task of the sweep, deduplicated, in topological order. `progress(tasks so far, seconds)`: told
    every PROGRESS_S while planning goes on (a spec near MAX_TASKS plans for a minute or more)."""
    b = _Builder(spec, progress)
    pairs = [vocab.parse_pair_type(text) for text in spec.pairs]
    plans = [_Plan(b, variant, model, pairs) for variant in spec.variants for model in spec.models]
    for plan in plans:
        plan.build()
    if spec.population.enabled:    # after every pair type, so that a pair they plan keeps its type
        for plan in plans:
            plan.build_population()
    return Graph(b.tasks)


class _Plan:
    """The tasks of one model in one combination of swept values."""

    def __init__(self, b: _Builder, variant: Variant, model: ModelSettings, pairs: list):
        self.b, self.v, self.model, self.pairs = b, variant, model, pairs
        self.spec = b.spec
        # the width the model is built with: a table groups small_cnn and small_cnn-w16 as one width (16);
        # a model of your own without one stays null (its builder's default is not known here)
        self.model_settings = {**settings_values("model", model), "model.width": model.built[1]}
        self.pretrained: dict[_Model, Task] = {}
        self._eval_data: dict[int, dict] = {}      # seed -> identity of the clean evaluation data

    # -- models --
    def data_settings(self, p: float, seed: int) -> DataSettings:
        return replace(self.v.data, cue_proportion=float(p), seed=seed)

    def pretrain(self, m: _Model) -> Task:
        if m in self.pretrained:
            return self.pretrained[m]
        data = replace(self.data_settings(m.p, m.seed), cue_seed=m.cue_seed)
        config = {"data": data_identity(data), "model": model_identity(self.model),
                  "train": identity_dict(self.v.pretrain), "init_seed": m.init, "order_seed": m.order}
        if m.spawn is not None:
            config["spawn"] = {"epoch": m.spawn[0], "order_seed": m.spawn[1]}
        settings = {**settings_values("data", data), **self.model_settings, **settings_values("pretrain", self.v.pretrain)}
        task = self.b.add(vocab.PRETRAIN, config, (), settings, dataset=data.dataset, cue_proportion=float(m.p),
                          model=self.model.label, seed=m.seed, init_seed=m.init, data_seed=data.seed)
        self.pretrained[m] = task
        return task

    def primary(self, p: float, s: int) -> _Model:
        seed = init_seed(s, p, "a")
        return _Model(p, s, seed, seed)

    def partner(self, p: float, s: int) -> _Model:
        seed = init_seed(s, p, "b")
        return _Model(p, s, seed, seed)

    def finetune(self, parent: Task, method: str) -> Task:
        """Fine-tuning of `parent` with `method`; only the settings the method reads define the task."""
        labels, used = parent.labels, settings_used(method)
        identity = {k: v for k, v in identity_dict(self.v.finetune).items() if k in used}
        config = {"pretrain": parent.id, "method": method, "finetune": identity,
                  "data": parent.config["data"], "model": parent.config["model"], "seed": labels["seed"]}
        settings = {**parent.settings, **{k: v for k, v in settings_values("finetune", self.v.finetune).items()
                                          if k.split(".", 1)[1] in used}}
        return self.b.add(vocab.FINETUNE, config, (parent.id,), settings, **{**labels, "method": method})

    # -- pairs --
    def build(self) -> None:
        for s in self.spec.seeds:
            for pair in self._pairs(s):
                self._add_paths(pair)

    def population(self) -> list[Task]:
        """The models of this combination's population, in planning order (spec/population.py)."""
        pop, spec = self.spec.population, self.spec
        props = [p for p in spec.cue_proportions if not pop.cue_proportions or p in pop.cue_proportions]
        models: list[Task] = []
        if vocab.PRETRAIN in pop.kinds:
            models += [self.pretrain(self.primary(p, s)) for s in spec.seeds for p in props]
            if pop.controls:
                models += [t for m, t in self.pretrained.items() if m != self.primary(m.p, m.seed) and m.p in props]
        if vocab.FINETUNE in pop.kinds:
            methods = [m for m in spec.methods if not pop.methods or m in pop.methods]
            models += [self.finetune(self.pretrain(self.primary(p, s)), method)
                       for s in spec.seeds for p in props if p > 0 for method in methods]
        return list({t.id: t for t in models}.values())

    def build_population(self) -> None:
        """Every unordered pair of the population, with the population's path kinds."""
        models = self.population()
        for i, first in enumerate(models):
            for second in models[i + 1:]:
                a, b = sorted((first, second), key=lambda t: t.id)
                if (b.id, a.id) in self.b.oriented:        # a pair type's pair: its order
                    a, b = b, a
                seed = min(a.labels["seed"], b.labels["seed"])
                self._add_paths(_Pair(vocab.POPULATION, vocab.POPULATION, None, a, b, None, seed))

    def _pairs(self, s: int):
        cue_props, spec = self.spec.cue_models, self.spec
        for pair, design, epoch in self.pairs:
            if pair == vocab.PRETRAINED_FT:
                for p in cue_props:
                    parent = self.pretrain(self.primary(p, s))
                    for method in spec.methods:
                        yield _Pair(pair, vocab.FINE_TUNED, None, parent, self.finetune(parent, method), p, s, method)
                continue
            for p in vocab.pair_proportions(pair, design, spec.cue_proportions, spec.all_cued):
                first = self.primary(p, s)
                a = self.pretrain(first)
                if pair == vocab.CUE_NOCUE:
                    nocue = self.primary(0.0, s)
                    if design == vocab.SAME_INIT:
                        nocue = replace(nocue, init=first.init, order=first.order)
                    b = self.pretrain(nocue)
                elif design == vocab.INDEPENDENT:
                    b = self.pretrain(self.partner(p, s))
                elif design == vocab.SPAWN:
                    b = self.pretrain(replace(first, spawn=(epoch, init_seed(s, p, f"spawn@{epoch}"))))
                elif design == vocab.RESUBSET:
                    b = self.pretrain(replace(first, cue_seed=derive_seed(s, "cue-subset", repr(float(p)))))
                else:   # self
                    b = a
                yield _Pair(pair, design, epoch, a, b, p, s)

    def _add_paths(self, pair: _Pair) -> None:
        spec, v = self.spec, self.v
        a, b = pair.a, pair.b
        population = pair.pair == vocab.POPULATION
        name = vocab.POPULATION if population else vocab.pair_type_name(pair.pair, pair.design, pair.epoch,
                                                                        pair.method)
        endpoints = [a.id, b.id]
        parents_ab = (a.id,) if a.id == b.id else (a.id, b.id)
        common = {"endpoints": endpoints, "model": a.config["model"]}
        lineage = {**a.settings, **b.settings}
        labels = dict(dataset=v.data.dataset, cue_proportion=None if pair.p is None else float(pair.p),
                      model=self.model.label, seed=pair.seed if a.labels["seed"] == b.labels["seed"] else None,
                      method=pair.method, pair_type=name, pair_design=pair.design + (f"@{pair.epoch}" if pair.epoch
                                                                                   is not None else ""),
                      endpoint_a=a.id, endpoint_b=b.id, init_seed_a=a.labels["init_seed"],
                      init_seed_b=b.labels["init_seed"], data_seed_a=a.labels["data_seed"],
                      data_seed_b=b.labels["data_seed"])
        paths = replace(v.paths, bn_sample="resample") if pair.design == vocab.SELF else v.paths
        if pair.seed not in self._eval_data:
            self._eval_data[pair.seed] = data_identity(self.data_settings(0.0, pair.seed))
        eval_config = {**common, "data": self._eval_data[pair.seed], "path": identity_dict(paths), "seed": pair.seed}
        if paths.bn_data != "clean":   # BatchNorm re-estimated on the endpoints' own training data
            eval_config["bn_data"] = [a.config["data"], b.config["data"]]
        eval_settings = {**lineage, **settings_values("paths", paths)}
        if population:
            kinds = list(spec.population.path_kinds)
        else:
            kinds = [vocab.LINEAR] if pair.design == vocab.SELF else \
                list(spec.finetuned_kinds if pair.pair == vocab.PRETRAINED_FT else spec.path_kinds)
            self.b.oriented.add((a.id, b.id))
        base = {key: value for key, value in eval_config.items() if key != "endpoints"}

        def planned(kind: str, alignment: str | None = None, via: dict | None = None) -> tuple[str, str, str]:
            """This pair's path `kind` as the builder knows it: by endpoints and settings, not by id."""
            return a.id, b.id, canonical_json([base, kind, alignment, via])

        linear = self.b.paths.get(planned(vocab.LINEAR)) if population or vocab.LINEAR in kinds else None
        if vocab.LINEAR in kinds and linear is None:
            linear = self.b.add(vocab.PATH_EVAL, {**eval_config, "path_kind": vocab.LINEAR, "via": None,
                                                  "alignment": None},
                                parents_ab, eval_settings, **labels, path_kind=vocab.LINEAR)
            self.b.paths[planned(vocab.LINEAR)] = linear
        if vocab.QUADRATIC in kinds and not (population and planned(vocab.QUADRATIC, via=identity_dict(v.midpoint))
                                             in self.b.paths):
            mid_settings = {**lineage, **settings_values("midpoint", v.midpoint)}
            mid = self.b.add(vocab.MIDPOINT, {**common, "data": [a.config["data"], b.config["data"]],
                                              "train": identity_dict(v.midpoint), "seed": pair.seed},
                             parents_ab, mid_settings, **labels, path_kind=vocab.QUADRATIC)
            self.b.paths[planned(vocab.QUADRATIC, via=identity_dict(v.midpoint))] = self.b.add(
                vocab.PATH_EVAL, {**eval_config, "path_kind": vocab.QUADRATIC, "via": mid.id, "alignment": None},
                (*parents_ab, mid.id), {**eval_settings, **settings_values("midpoint", v.midpoint)},
                **labels, path_kind=vocab.QUADRATIC)
        if vocab.ALIGNED in kinds:
            align_settings = {**lineage, **settings_values("align", v.align)}
            for method in spec.alignments:
                slot = planned(vocab.ALIGNED, method, identity_dict(v.align))
                if population and slot in self.b.paths:
                    continue
                al = self.b.add(vocab.ALIGN, {**common, "method": method, "data": a.config["data"],
                                              "align": identity_dict(v.align), "seed": pair.seed},
                                parents_ab, align_settings, **labels, path_kind=vocab.ALIGNED, alignment=method)
                extra = (linear.id,) if linear is not None else ()
                self.b.paths[slot] = self.b.add(
                    vocab.PATH_EVAL, {**eval_config, "path_kind": vocab.ALIGNED, "via": al.id, "alignment": method,
                                      "linear": linear.id if linear else None},
                    (*parents_ab, al.id, *extra), {**eval_settings, **settings_values("align", v.align)},
                    **labels, path_kind=vocab.ALIGNED, alignment=method)


# ----- describing -----

def describe_plan(graph: Graph) -> str:
    """Counts per kind, what each kind depends on, pairs per type and per-task resources."""
    counts = graph.counts()
    lines = [f"{len(graph)} tasks"]
    shapes: dict[str, Counter] = {kind: Counter() for kind in counts}
    resources: dict[str, Resources] = {}
    for task in graph.tasks.values():
        parent_kinds = Counter(graph.tasks[p].kind for p in task.parents)
        shapes[task.kind][" + ".join(f"{k}×{n}" if n > 1 else k for k, n in
                                     sorted(parent_kinds.items(), key=lambda kv: vocab.TASK_KINDS.index(kv[0])))] += 1
        resources.setdefault(task.kind, task.resources)
    pairs = pair_counts(graph)
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
        lines.append("pairs: " + ", ".join(f"{t} {n}" for t, n in pairs.items()))
    return "\n".join(lines)


def check_settings_read(spec: SweepSpec, graph: Graph) -> list[str]:
    """A swept setting that no planned task reads (nor any task it descends from) would multiply the
    combinations and run nothing more: refused, like any setting the plan would drop (SpecError). A setting
    the user set (spec file or override) that no planned task reads (`finetune.lam` for naive fine-tuning
    alone, `midpoint.*` without a quadratic path) changes nothing in this sweep: said in a warning, not
    refused (a spec may set what an optional method would read: smoke.yaml's `llrt_epochs`); a default, a
    profile's or an `extends:` base's value is not the user's and is not mentioned. A field that the task's
    other values leave unread (`idle_fields`: `pretrain.gamma` under a cosine schedule) counts as unread.
    Returns those unread keys the user set."""
    classes = settings_classes()

    def read(key: str) -> bool:         # the first reader ends the scan (planning's own cost stays the same)
        section, name = key.split(".", 1)
        idle = classes[section].idle_fields     # a step schedule's `gamma` is read only under a step schedule
        return any(key in task.settings and name not in idle(partial(_value, task.settings, section))
                   for task in graph.tasks.values())

    unread = [key for key in spec.swept_keys if not read(key)]
    if unread:
        raise SpecError([f"`{key}` is swept, but no planned task reads it" + (_readers(spec, key) or " (e.g. `finetune.*` "
                         "without a fine-tuning, `align.*` without an aligned path)") + ". Every combination would run "
                         "the same tasks: sweep a setting the plan uses, or plan the tasks that read it" for key in unread],
                        spec.source)
    columns = {name for name, _ in settings_columns()}
    unread = [key for key in spec.provenance.keys if key in columns and spec.explicit(key) and not read(key)]
    for key in unread:
        _LOG.warning(f"`{key}` is set ({spec.provenance.keys[key]}), but no planned task reads it{_readers(spec, key)}: "
                     "it changes nothing in this sweep")
    return unread


def _value(settings: dict, section: str, name: str) -> Any:
    return settings.get(f"{section}.{name}")


def _readers(spec: SweepSpec, key: str) -> str:
    """Which tasks would read `key`: for a fine-tuning setting, the methods that do."""
    section, name = key.split(".", 1)
    if section == vocab.FINETUNE:
        methods = [m for m in FINETUNE_METHOD_NAMES if name in settings_used(m)]
        return (f": of the fine-tuning methods, {', '.join(methods) or 'none'} read it"
                + (f", and `finetune.methods` is {list(spec.top.finetune.methods)}" if spec.top.finetune.methods else
                   ", and no fine-tuning is planned"))
    values = getattr(spec.variants[0], section, None)
    idle = settings_classes()[section].idle_fields(partial(getattr, values)) if values is not None else {}
    if name in idle:
        return f" ({idle[name]})"
    if section in (vocab.MIDPOINT, vocab.ALIGN):
        kind = vocab.QUADRATIC if section == vocab.MIDPOINT else vocab.ALIGNED
        return f": only paths of kind {kind!r} do (their {section} tasks), and no planned path is one"
    return ""


def pair_counts(graph: Graph) -> dict[str, int]:
    """Pairs of models (endpoints and swept combination) per pair type, in the graph's order: the path
    evaluations of one path kind, the kind with the most (a midpoint or an alignment, which no swept path
    setting reaches, would count a pair once more under its own shorter combination)."""
    pairs: dict[str, dict[str, set]] = {}
    for task in graph.tasks.values():
        if task.kind == vocab.PATH_EVAL and task.labels.get("pair_type"):
            pairs.setdefault(task.labels["pair_type"], {}).setdefault(task.labels.get("path_kind"), set()).add(
                (task.labels["endpoint_a"], task.labels["endpoint_b"], task.labels.get("variant")))
    return {pair_type: max(map(len, kinds.values())) for pair_type, kinds in pairs.items()}
