"""Rules between sections of a spec (checked for every combination of swept values), what a spec
asks for that its plan would drop, and how many tasks a spec plans, counted without planning.

Nothing asked for is dropped silently: a key the user set (in the spec file or a `key=value`
override, `SweepSpec.explicit`) whose values no planned task would use (fine-tuning methods without
the pair 'pretrained~ft', path kinds or alignments no pair evaluates, a cue proportion no pair
trains) is refused naming what is missing. A default that cannot run is no request: it is left out.
"""
from __future__ import annotations

from typing import Callable

from orchestrator import vocab
from orchestrator.uris import is_remote, redact
from orchestrator.messages import show
from orchestrator.spec.planned_pairs import all_cued, unservable_pairs
from tasks.datasets import DataError
from tasks.settings.align import ALIGNMENT_NAMES
from tasks.settings.data import cue_proportion_problem, dataset_info, same_cued_samples
from tasks.settings.finetune import CBFT_FAMILY, settings_used
from tasks.settings.models import BUILT_IN_MODELS

MAX_TASKS = 2_000_000          # tasks a spec may plan


def spec_problems(top, variants: list, explicit: Callable[[str], bool] = lambda key: False) -> list[str]:
    """Rules between keys of different sections (checked for every combination of swept values);
    `top` is the spec's `schema.TopLevel`; `explicit(dotted key)`: whether the user set that key."""
    problems: list[str] = []
    props, pairs = top.cue_proportions, [vocab.parse_pair_type(p) for p in top.paths.pairs]
    cued = all_cued(props, variants[0].data.dataset if variants else None, top.data.root)
    unservable = unservable_pairs(top.paths.pairs, props, cued)
    for text, what in unservable.items():
        problems.append(f"`paths.pairs`: {text!r} needs `cue_proportions` to contain {what}; got {show(list(props))}")
    if any(p == vocab.PRETRAINED_FT for p, _, _ in pairs) and not top.finetune.methods:
        problems.append("`paths.pairs`: 'pretrained~ft' needs `finetune.methods`, which is empty")
    problems += _population_problems(top)
    problems += unplanned_requests(top, pairs, explicit, cued)
    mine = any(m.name not in BUILT_IN_MODELS for m in top.models)    # the built-ins need no shape to check
    shape = _data_shape(top, variants[0].data.dataset if variants else None) if mine else {}
    broken = _model_problems(top, shape)
    problems += [f"`models`: {label!r} builds no model: {problem} (a builder is called as build(num_classes, "
                 "in_channels, width) and returns a tasks.models.Classifier)" for label, problem in broken.items()]
    for name, kinds in (("paths.kinds", top.paths.kinds), ("paths.finetuned_kinds", top.paths.finetuned_kinds),
                        ("population.path_kinds", top.population.path_kinds)):
        if vocab.ALIGNED not in kinds or (name == "paths.finetuned_kinds" and
                                          not any(p == vocab.PRETRAINED_FT for p, _, _ in pairs)) or \
                (name == "population.path_kinds" and not top.population.enabled):
            continue
        if not top.paths.alignments:
            problems.append(f"`paths.alignments`: [] is empty but `{name}` has 'aligned'; give at least one "
                            f"of {', '.join(ALIGNMENT_NAMES)}")
        for model in (m for m in top.models if m.label not in broken):
            problem = _alignment_problem(model, shape)
            if problem:
                problems.append(f"`{name}`: 'aligned' needs the permutation groups of model {model.name!r}, traced "
                                f"from its forward pass: {problem}")
    for kind, r in top.resources.items():
        if r.workers > 1 and kind not in vocab.TRAINING_KINDS:
            problems.append(f"`resources.{kind}.workers`: {r.workers} is not allowed; only "
                            f"{', '.join(vocab.TRAINING_KINDS)} run data-parallel, use 1")
    storage, mlflow = top.storage, top.mlflow
    if mlflow.enabled and mlflow.tracking_uri is None and is_remote(storage):
        problems.append(f"`mlflow.tracking_uri`: is required when `storage` is the remote URI {show(redact(storage))} "
                        "(the default SQLite store needs a local directory); give a tracking server URI or set "
                        "`mlflow.enabled: false`")
    for variant in variants:
        problems += [p + _suffix(variant) for p in _variant_problems(top, variant, pairs)]
    if variants:     # the dataset cannot be swept: every combination has the first one's
        problems += _cue_proportion_problems(top, variants[0].data.dataset)
    estimate = estimate_tasks(top, len(variants), pairs, cued)
    if estimate == 0 and not unservable:   # else those pairs' refusals say why nothing is planned
        problems.append(f"the spec plans no task: `paths.pairs` is {show(list(top.paths.pairs))}, so nothing needs a "
                        "model trained (models are trained for the pairs that compare them; fine-tunings "
                        "(`finetune.methods`) for the pair 'pretrained~ft'); list pairs, e.g. [cue~nocue, pretrained~ft]")
    if estimate > MAX_TASKS:
        problems.append(f"the spec plans about {estimate:,} tasks; at most {MAX_TASKS:,} (fewer seeds, "
                        "models, proportions, methods, pairs or swept values)")
    return problems


def _population_problems(top) -> list[str]:
    pop = top.population
    out = []
    for key, values, allowed in (("cue_proportions", pop.cue_proportions, top.cue_proportions),
                                 ("methods", pop.methods, top.finetune.methods)):
        other = "finetune.methods" if key == "methods" else key
        out += [f"`population.{key}`: {show(v)} is not one of `{other}` {show(list(allowed))}; list only values of "
                f"`{other}`, or [] for all of them" for v in values if v not in allowed]
    if vocab.FINETUNE in pop.kinds and not (top.finetune.methods and any(
            p > 0 and (not pop.cue_proportions or p in pop.cue_proportions) for p in top.cue_proportions)):
        out.append("`population.kinds`: 'finetune' needs `finetune.methods` and a cue proportion > 0 in "
                   "`cue_proportions` (and in `population.cue_proportions` if given)")
    return out


def unplanned_requests(top, pairs: list, explicit: Callable[[str], bool], all_cued: tuple[float, ...] = ()) -> list[str]:
    """What a key the user set asks for that no planned task would do: one problem per key."""
    out: list[str] = []
    pop = top.population
    listed = show(list(top.paths.pairs))
    ft_pairs = any(p == vocab.PRETRAINED_FT for p, _, _ in pairs)
    pop_ft = pop.enabled and vocab.FINETUNE in pop.kinds
    trained = top.finetune.methods if ft_pairs else (pop.methods or top.finetune.methods) if pop_ft else ()
    untrained = [m for m in top.finetune.methods if m not in trained]
    if explicit("finetune.methods") and untrained and not any(p > 0 for p in top.cue_proportions):
        out.append(f"`finetune.methods`: {show(untrained)} would never be trained: fine-tuning starts from a model "
                   f"trained with the cue, and `cue_proportions` {show(list(top.cue_proportions))} has no proportion "
                   "> 0; add one (e.g. 0.9), or leave them out of `finetune.methods`")
    elif explicit("finetune.methods") and untrained:
        out.append(f"`finetune.methods`: {show(untrained)} would never be trained: fine-tunings are planned for the pair "
                   f"'pretrained~ft', which `paths.pairs` {listed} lacks"
                   + (f", and `population.methods` {show(list(pop.methods))} leaves them out" if pop_ft else "")
                   + "; add 'pretrained~ft' to `paths.pairs`, or leave them out of `finetune.methods`")
    if explicit("paths.finetuned_kinds") and top.paths.finetuned_kinds and not ft_pairs:
        out.append(f"`paths.finetuned_kinds`: {show(list(top.paths.finetuned_kinds))} would never be evaluated: they "
                   f"are the path kinds of the pair 'pretrained~ft', which `paths.pairs` {listed} lacks; add "
                   "'pretrained~ft' to `paths.pairs`, or leave `paths.finetuned_kinds` out")
    # the path kinds the pairs evaluate (a `self` pair: the linear path only; pretrained~ft: its own kinds)
    other = [p for p, d, _ in pairs if p != vocab.PRETRAINED_FT and d != vocab.SELF]
    selfs = any(d == vocab.SELF for _, d, _ in pairs)
    evaluated = set(top.paths.kinds) if other else {vocab.LINEAR} & set(top.paths.kinds) if selfs else set()
    evaluated |= set(top.paths.finetuned_kinds) if ft_pairs else set()
    dropped = [k for k in top.paths.kinds if k not in evaluated]
    if explicit("paths.kinds") and dropped:
        why = (f"every pair of `paths.pairs` {listed} is 'pretrained~ft' (its kinds are `paths.finetuned_kinds`) or a "
               "':self' control (the linear path only)") if pairs else \
            "`paths.pairs` is [] (a population's paths are `population.path_kinds`)"
        out.append(f"`paths.kinds`: {show(dropped)} would never be evaluated: {why}; add a pair such as 'cue~nocue' to "
                   "`paths.pairs`, list the kind in `paths.finetuned_kinds` for the fine-tuned pairs, or leave "
                   "`paths.kinds` out")
    for name, kinds, served in (("paths.kinds", top.paths.kinds, other or selfs),
                                ("paths.finetuned_kinds", top.paths.finetuned_kinds, ft_pairs)):
        if served and not kinds and (explicit(name) or explicit("paths.pairs")):
            out.append(f"`{name}`: [] is empty, so the pairs of `paths.pairs` {listed} it serves would train their "
                       f"models and evaluate no path; give at least one of {', '.join(vocab.PATH_KINDS)}")
    used = evaluated | (set(pop.path_kinds) if pop.enabled else set())
    if explicit("paths.alignments") and top.paths.alignments and vocab.ALIGNED not in used:
        out.append(f"`paths.alignments`: {show(list(top.paths.alignments))} would never be used: no planned path is "
                   "'aligned' (`paths.kinds`, `paths.finetuned_kinds` of 'pretrained~ft' pairs, "
                   "`population.path_kinds`); add 'aligned' to one of them, or leave `paths.alignments` out")
    if explicit("cue_proportions"):
        models = {0.0} if any(p in (vocab.CUE_NOCUE, vocab.NOCUE_NOCUE) for p, _, _ in pairs) else set()
        for pair, design, _ in pairs:
            models |= set(vocab.pair_proportions(pair, design, top.cue_proportions, all_cued))
        chosen = {p for p in top.cue_proportions if not pop.cue_proportions or p in pop.cue_proportions}
        if vocab.PRETRAIN in pop.kinds:
            models |= chosen
        if vocab.FINETUNE in pop.kinds and top.finetune.methods:   # the fine-tuned models' parents
            models |= {p for p in chosen if p > 0}
        idle = [p for p in top.cue_proportions if p not in models]
        if idle and models:
            needs = "'cue~nocue' or 'nocue~nocue'" if idle == [0.0] else "'cue~nocue', 'cue~cue' or 'pretrained~ft'"
            out.append(f"`cue_proportions`: {show(idle)} would train no model: no pair of `paths.pairs` {listed} "
                       f"uses {'it' if len(idle) == 1 else 'them'}; add {needs} to `paths.pairs`, or leave "
                       f"{'it' if len(idle) == 1 else 'them'} out of `cue_proportions`")
    if explicit("population.cue_proportions") and pop.cue_proportions and not pop.enabled:
        out.append(f"`population.cue_proportions`: {show(list(pop.cue_proportions))} would choose no model: "
                   "`population.kinds` is [], so no population is planned; give `population.kinds` (pretrain and/or "
                   "finetune), or leave `population.cue_proportions` out")
    if explicit("population.methods") and pop.methods and vocab.FINETUNE not in pop.kinds:
        out.append(f"`population.methods`: {show(list(pop.methods))} would choose no model: `population.kinds` "
                   f"{show(list(pop.kinds))} lacks 'finetune'; add 'finetune' to `population.kinds`, or leave "
                   "`population.methods` out")
    return out


def _data_shape(top, dataset: str | None) -> dict:
    """The `num_classes` and `in_channels` of the sweep's dataset, as a model of your own is built for it
    ({} where the dataset is unknown: `_variant_problems` names that)."""
    try:
        info = dataset_info(dataset, top.data.root) if dataset else None
    except (DataError, ValueError):
        info = None
    return {"num_classes": info.num_classes, "in_channels": info.in_channels} if info else {}


def _model_problems(top, shape: dict) -> dict[str, str]:
    """{label: why} of the models of your own that build no classifier for the sweep's data (`shape`,
    `_data_shape`; an import path that names a function, but not a model builder): built once here (on the
    meta device; torch is imported only for such models), so the run does not fail every task with it."""
    mine = [m for m in top.models if m.name not in BUILT_IN_MODELS]
    if not mine:
        return {}
    from tasks.models import build_problem

    found = {m.label: build_problem(m.name, m.width, **shape) for m in mine}
    return {label: problem for label, problem in found.items() if problem}


def _alignment_problem(model, shape: dict) -> str | None:
    """Why `tasks.align` cannot permute `model` (a `ModelSettings`) built for the sweep's data (`shape`), or
    None. The built-in models are permutable at every width (tests/tasks/test_permutation_trace.py); a model
    of your own is built and traced, which imports torch (checking a spec of built-ins does not)."""
    if model.name in BUILT_IN_MODELS:
        return None
    from tasks.models import alignment_problem

    return alignment_problem(model.name, model.width, **shape)


def _suffix(variant) -> str:
    return f" (in the combination {variant.label()})" if variant.swept else ""


def _cue_proportion_problems(top, dataset: str) -> list[str]:
    """The cue proportions that would make a model another one on the sweep's dataset (one per sweep: it
    cannot be swept), by its largest class (`cue_proportion_problem`); the data load refuses the rest. (A
    `resubset` partner is not planned where every sample is cued: `all_cued`.)"""
    try:
        info = dataset_info(dataset, top.data.root)
    except (DataError, ValueError):
        return []                       # `_variant_problems` names that
    if not info.largest_class:
        return []
    n = info.largest_class
    problems = [cue_proportion_problem(p, n, dataset, resubset=False, at_most=info.needs_root)
                for p in top.cue_proportions]
    cued = sorted(p for p in set(top.cue_proportions) if p > 0)       # counts grow with p: neighbours suffice
    problems += [f"{p:g} and {q:g} cue the same training samples of {dataset!r} (p * n rounded half up is the "
                 f"same for every class of up to {n} images): they would train one model twice under two names; "
                 f"keep one, or set them at least {1 / n:.2g} apart" for p, q in zip(cued, cued[1:])
                 if same_cued_samples(p, q, n)]
    return [f"`cue_proportions`: {problem}" for problem in problems if problem]


def _variant_problems(top: dict, v, pairs: list) -> list[str]:
    out: list[str] = []
    try:
        info = dataset_info(v.data.dataset, top.data.root)
    except (DataError, ValueError) as exc:
        return [f"`data.dataset`: {exc}"]
    n_train = getattr(info, "train_size", None)
    if n_train:
        for key, value in (("finetune.clean_subset", v.finetune.clean_subset),
                           ("paths.bn_reset_samples", v.paths.bn_reset_samples), ("align.samples", v.align.samples)):
            if value > n_train:
                out.append(f"`{key}`: {value} is more than the {n_train} training images of {v.data.dataset!r}; "
                           f"use at most {n_train}")
        for key, value in (("pretrain.batch_size", v.pretrain.batch_size),
                           ("midpoint.batch_size", v.midpoint.batch_size)):
            if value > n_train:
                out.append(f"`{key}`: {value} is more than the {n_train} training images of {v.data.dataset!r}, so "
                           f"an epoch would have no full batch; use at most {n_train}")
        cue_batch = v.finetune.cue_batch_size or v.finetune.batch_size
        if any(m in CBFT_FAMILY for m in top.finetune.methods) and v.finetune.clean_subset <= n_train \
                and n_train - v.finetune.clean_subset < cue_batch:
            out.append(f"`finetune.clean_subset`: {v.finetune.clean_subset} leaves {n_train - v.finetune.clean_subset} "
                       f"cued training images for cbft, fewer than its cue batch {cue_batch}; lower `clean_subset`, "
                       "`cue_batch_size` or `batch_size`")
    for kind, batches in ((vocab.PRETRAIN, [("batch_size", v.pretrain.batch_size)]),
                          (vocab.MIDPOINT, [("batch_size", v.midpoint.batch_size)]),
                          (vocab.FINETUNE, [("batch_size", v.finetune.batch_size),
                                            ("cue_batch_size", v.finetune.cue_batch_size)])):
        workers = top.resources[kind].workers
        for name, size in batches:
            if size is not None and size % workers:
                out.append(f"`{kind}.{name}`: {size} is not divisible by `resources.{kind}.workers` {workers}; "
                           f"use a multiple of {workers}")
    for pair, design, epoch in pairs:
        if design == vocab.SPAWN and epoch >= v.pretrain.epochs:   # a child sharing every epoch is its parent
            out.append(f"`paths.pairs`: '{pair}:spawn@{epoch}' shares {epoch} epochs but `pretrain.epochs` is "
                       f"{v.pretrain.epochs}, so the child would train no epoch of its own and be its parent; "
                       f"use K < {v.pretrain.epochs}")
    warmed = [m for m in top.finetune.methods if "warmup_epochs" in settings_used(m)]
    if warmed and v.finetune.warmup_epochs >= v.finetune.epochs:    # the invariance term would never be applied
        out.append(f"`finetune.warmup_epochs`: {v.finetune.warmup_epochs} is not below `finetune.epochs` "
                   f"{v.finetune.epochs}, so {', '.join(warmed)} would train plain cross-entropy only and never apply "
                   f"its invariance term; use fewer than {v.finetune.epochs} warm-up epochs")
    return out


def estimate_tasks(top, n_variants: int, pairs: list, all_cued: tuple[float, ...] = ()) -> int:
    """The tasks a spec plans, counted the way graph.py plans them without building anything: exact
    for a spec without axes, an upper bound with them (tasks shared between combinations counted
    once per combination)."""
    methods = top.finetune.methods

    def per_path(kinds) -> int:
        return ((vocab.LINEAR in kinds) + 2 * (vocab.QUADRATIC in kinds)
                + 2 * len(top.paths.alignments) * (vocab.ALIGNED in kinds))
    # one seed's models, each (role, ..., the cue proportion of its data): primaries, the control pairs'
    # models, fine-tunings; and the pairs between two different ones, with their path kinds
    primary = lambda p: ("primary", p)   # noqa: E731
    models: set = set()
    finetunes: set = set()
    between: list[tuple[tuple, tuple, tuple]] = []
    paths = 0
    for pair, design, epoch in pairs:
        props = vocab.pair_proportions(pair, design, top.cue_proportions, all_cued)
        kinds = top.paths.finetuned_kinds if pair == vocab.PRETRAINED_FT else top.paths.kinds
        for p in props:
            models.add(primary(p))
            if pair == vocab.PRETRAINED_FT:
                for method in methods:
                    finetunes.add((vocab.FINETUNE, method, p))
                    between.append((primary(p), (vocab.FINETUNE, method, p), kinds))
                continue
            if design == vocab.SELF:
                paths += 1
                continue
            if pair == vocab.CUE_NOCUE:   # same-init pairs the cue model with its own no-cue twin
                other = (vocab.SAME_INIT, p, 0.0) if design == vocab.SAME_INIT else primary(0.0)
            else:
                other = (pair, design, epoch, p)
            models.add(other)
            between.append((primary(p), other, kinds))
    paths += sum(per_path(kinds) for _, _, kinds in between)
    population = 0
    pop = top.population
    if pop.enabled:     # every unordered pair of the chosen models, less the paths the pairs above plan
        props = [p for p in top.cue_proportions if not pop.cue_proportions or p in pop.cue_proportions]
        chosen: set = set()
        if vocab.PRETRAIN in pop.kinds:
            chosen |= {primary(p) for p in props}
            if pop.controls:
                chosen |= {m for m in models if m[0] != "primary" and m[-1] in props}
        if vocab.FINETUNE in pop.kinds:
            chosen |= {(vocab.FINETUNE, m, p) for p in props if p > 0 for m in methods
                       if not pop.methods or m in pop.methods}
        models |= {primary(m[-1]) for m in chosen if m[0] in ("primary", vocab.FINETUNE)}   # themselves, or parents
        finetunes |= {m for m in chosen if m[0] == vocab.FINETUNE}
        k = len(chosen) * len(top.seeds)
        covered = sum(per_path([kind for kind in kinds if kind in pop.path_kinds])
                      for a, b, kinds in between if a in chosen and b in chosen)
        population = k * (k - 1) // 2 * per_path(pop.path_kinds) - covered * len(top.seeds)
    per_seed = len(models) + len(finetunes) + paths
    return n_variants * len(top.models) * (len(top.seeds) * per_seed + population)
