"""Task identity, checked against what the code does: every setting a task's code reads is in its id, and
every setting its id depends on is read by it or by a task it depends on.

How. A tiny sweep with every fine-tuning method, path kind and alignment method runs task by task in this
process with the real runners, inside `tasks.settings.recording_reads()`: every settings object a runner
rebuilds from its task's id records the fields read from it (`<section>.<field>`). Then, for every setting
of the spec, the graph is planned again with that one setting changed; a task whose id did not change
must not have read it (else a sweep over it returns one cached result for every value), and a task whose
id changed must have read it itself or through an ancestor (else a sweep over it retrains for nothing).
Nothing here lists which task reads what: a field added tomorrow, or a method that starts reading one,
is checked the same way.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.run.work import TaskEnv, execute
from orchestrator.spec.schema import DATA_AXIS_FIELDS, settings_classes
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tasks.align import ALIGNMENTS
from tasks.data import DATASETS
from tasks.finetune import FINETUNE_METHODS
from tasks.models import MODELS
from tasks.settings import base_type, declared_fields, recording_reads

# Read by tasks, in no id, by design (DESIGN.md: `data.root` and resources are never part of an id): where
# the dataset files are, not what they hold.
READ_OUTSIDE_IDENTITY = {"data.root"}
# Settings this check cannot change in a spec, and why their identity is checked elsewhere: the data
# settings the graph gives each model (`cue_proportions`, `seeds`, the resubset design's `cue_seed`: a
# spec's value is not the one a task reads; they are in every data identity, test_graph, test_golden), and
# the cue (each dataset has one, so no other value is valid for the digits).
NOT_CHANGEABLE = {f"data.{name}" for name in DATA_AXIS_FIELDS} | {"data.cue"}
# Values for string settings without `choices`.
OTHER_STRINGS = {"data.dataset": tuple(DATASETS), "model.name": tuple(MODELS), "data.root": ("/elsewhere",)}
# Reads that happen only under some values of other settings, and that the sweep below cannot reach (none
# today: it picks values that take every branch, e.g. a `step` schedule reads `step_epochs` and `gamma`).
CONDITIONAL_READS: dict[str, str] = {}


def _overrides(root) -> list[str]:
    """Every fine-tuning method, path kind and alignment; values that take every branch that reads a
    setting (step schedules, cbft's invariance term from the first epoch, the head phase of llrt/lpft).
    Pair designs change which models are paired, not what a task reads (a `self` pair pins
    `paths.bn_sample`, so it is left out: the spec's value is not the one it reads)."""
    return [f"storage={json.dumps(str(root))}", "name=identity",
            f"finetune.methods={json.dumps(list(FINETUNE_METHODS))}",
            "paths.pairs=[cue~nocue, pretrained~ft]", f"paths.kinds={json.dumps(list(vocab.PATH_KINDS))}",
            "paths.finetuned_kinds=[linear]", f"paths.alignments={json.dumps(sorted(ALIGNMENTS))}",
            "pretrain.schedule=step", "pretrain.step_epochs=1", "midpoint.schedule=step", "midpoint.step_epochs=1",
            "finetune.warmup_epochs=0", "finetune.llrt_epochs=1", "finetune.epochs=1", "mlflow.enabled=false"]


def _section_of() -> dict[type, str]:
    return {cls: section for section, cls in settings_classes().items()}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """(spec, graph, reads): the fields each task read, as {task id: {`<section>.<field>`}}."""
    root = tmp_path_factory.mktemp("identity")
    spec = load_spec("sweeps/smoke.yaml", _overrides(root))
    graph = build_graph(spec)
    layout = SweepLayout(Storage(spec.storage), spec.name)
    sections = _section_of()
    reads: dict[str, set[str]] = {}
    for task_id, task in graph.tasks.items():
        env = TaskEnv(layout=layout, device=torch.device("cpu"),
                      parent_kinds={p: graph.tasks[p].kind for p in task.parents})
        with recording_reads() as seen:
            result = execute(task, "real", env)
        assert result.status == vocab.DONE, f"{_name(task)}: {result.error}"
        unknown = [cls.__name__ for cls in seen if cls not in sections]
        assert not unknown, f"{_name(task)} read settings of {unknown}, which no spec section declares"
        reads[task_id] = {f"{sections[cls]}.{name}" for cls, names in seen.items() for name in names}
    return spec, graph, reads


def _name(task) -> str:
    l = task.labels
    what = [task.kind] + [str(l[k]) for k in ("method", "path_kind", "alignment", "pair_type") if l.get(k)]
    return " ".join(what) + f" ({task.id})"


def _other_value(section: str, obj, name: str):
    """A valid value of field `name` of settings object `obj` other than its own, or None."""
    f, tp, rule = next(d for d in declared_fields(type(obj)) if d[0].name == name)
    value = getattr(obj, name)
    kind, nullable = base_type(tp)
    candidates: list = [None] if nullable and value is not None else []
    if kind is bool:
        candidates.append(not value)
    elif rule.allowed() is not None:
        candidates += list(rule.allowed())
    elif kind in (int, float):
        base = value if value is not None else (rule.ge if rule.ge is not None else 1)
        candidates += [base + 1, base * 2, base - 1] + ([base / 2, base * 0.9] if kind is float else [])
    else:
        candidates += list(OTHER_STRINGS.get(f"{section}.{name}", ()))
    for candidate in candidates:
        if candidate == value and type(candidate) is type(value):
            continue
        try:
            return dataclasses.replace(obj, **{name: candidate})
        except ValueError:
            continue
    return None


def _changed_specs(spec):
    """(`<section>.<field>`, spec with that one setting changed, or None where it cannot be)."""
    for section, cls in settings_classes().items():
        for f, _tp, _rule in declared_fields(cls):
            key = f"{section}.{f.name}"
            if key in NOT_CHANGEABLE:
                continue
            if section == "model":
                changed = [_other_value(section, m, f.name) for m in spec.models]
                yield key, (spec.with_top(models=tuple(changed)) if None not in changed else None)
                continue
            variants = []
            for v in spec.variants:
                new = _other_value(section, getattr(v, section), f.name)
                if new is None:
                    break
                variants.append(dataclasses.replace(v, **{section: new}))
            yield key, (dataclasses.replace(spec, variants=tuple(variants)) if len(variants) == len(spec.variants)
                        else None)


def _lineage(graph, task_id: str) -> set[str]:
    out, stack = set(), [task_id]
    while stack:
        current = stack.pop()
        if current not in out:
            out.add(current)
            stack.extend(graph.tasks[current].parents)
    return out


@pytest.fixture(scope="module")
def changed(sweep):
    """{`<section>.<field>`: the ids of the sweep's tasks whose id changes with it}; unchangeable keys
    are listed with None."""
    spec, graph, _reads = sweep
    out = {}
    for key, other in _changed_specs(spec):
        out[key] = None if other is None else {t for t in graph.tasks if t not in build_graph(other).tasks}
    return out


def test_every_kind_method_and_path_kind_ran(sweep):
    _spec, graph, _reads = sweep
    ran = {task.kind for task in graph.tasks.values()}
    assert ran == set(vocab.TASK_KINDS)
    assert {t.labels["method"] for t in graph.tasks.values() if t.kind == vocab.FINETUNE} == set(FINETUNE_METHODS)
    assert {t.labels["path_kind"] for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL} == set(vocab.PATH_KINDS)


def test_every_setting_a_task_reads_is_in_its_id(sweep, changed):
    """A read of a setting that the task's id leaves out: a sweep over it would share one result."""
    _spec, graph, reads = sweep
    problems = []
    for task_id, read in reads.items():
        for key in sorted(read - READ_OUTSIDE_IDENTITY):
            if key in NOT_CHANGEABLE:
                continue
            if changed.get(key) is None:
                problems.append(f"{_name(graph.tasks[task_id])} reads `{key}`, which this test cannot change "
                                "(give it a value in OTHER_STRINGS)")
            elif task_id not in changed[key]:
                problems.append(f"{_name(graph.tasks[task_id])} reads `{key}`, but its id does not change with it")
    assert not problems, "\n".join(problems)


def test_every_setting_in_a_task_id_is_read_by_it_or_its_ancestors(sweep, changed):
    """A setting in a task's id that nothing in its lineage reads: sweeps over it retrain for nothing."""
    _spec, graph, reads = sweep
    problems = []
    for key, ids in changed.items():
        if ids is None or key in CONDITIONAL_READS:
            continue
        for task_id in sorted(ids):
            if not any(key in reads[t] for t in _lineage(graph, task_id)):
                problems.append(f"{_name(graph.tasks[task_id])}: its id changes with `{key}`, which neither it "
                                "nor a task it depends on reads")
    assert not problems, "\n".join(problems)


def test_only_the_settings_named_here_cannot_be_changed(changed):
    """A new setting this test cannot change would go unchecked: it must get a value in OTHER_STRINGS."""
    assert sorted(key for key, ids in changed.items() if ids is None) == []
