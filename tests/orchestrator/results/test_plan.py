"""`plan.parquet`: the plan written once when a run starts (ids, kinds, parents, labels, resolved
settings, config), read back by `status` and `report` instead of re-planning."""
from __future__ import annotations

import json

import pytest

from orchestrator.results import plan, schemas
from orchestrator.graph.dag import LABEL_KEYS, build_graph, canonical_json
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec, parse_spec


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "runs")), "planned")


def test_the_plan_round_trips_every_task(layout):
    graph = build_graph(load_spec(None))
    plan.write_plan(layout, graph)
    df = plan.read_plan(layout)
    assert list(df["task_id"]) == list(graph.tasks)                     # topological order kept
    for row in df.to_dict("records"):
        task = graph.tasks[row["task_id"]]
        assert row["kind"] == task.kind and list(row["parents"]) == list(task.parents)
        assert row["config_json"] == canonical_json(task.config) and json.loads(row["config_json"]) == task.config
        for key in LABEL_KEYS:
            value = row[key]
            missing = value is None or value != value                            # None or NaN
            label = task.labels[key]
            if isinstance(label, int) and not missing:      # exactness: test_init_seeds_are_read_back_exactly
                assert float(value) == float(label), key
            else:
                assert (None if missing else value) == label, key
        for key, value in task.settings.items():
            got = row[key]
            assert (None if got is None or got != got else got) == value, key
        resources = json.loads(row["resources_json"])
        assert resources["cpus"] == task.resources.cpus and resources["workers"] == task.resources.workers


def test_plan_columns_are_typed_like_the_result_tables(layout):
    graph = build_graph(parse_spec("name: x\nseeds: [0]\nfinetune: {lam: {grid: [1, 3]}}\n"))
    table = plan.plan_table(graph)
    types = {f.name: f.type for f in schemas.SCHEMAS["tasks"]}
    for name in ("seed", "cue_proportion", "init_seed_a", "finetune.lam", "pretrain.epochs", "paths.precision"):
        assert table.schema.field(name).type == types[name], name
    assert set(schemas.SETTINGS_COLUMNS) <= set(table.column_names)


def test_a_sweep_that_never_started_has_no_plan_and_a_torn_one_is_named(layout):
    assert plan.read_plan(layout) is None
    plan.write_plan(layout, build_graph(parse_spec("name: x\nseeds: [0]\n")))
    data = layout.storage.read_bytes(layout.plan_file())
    layout.storage.write_bytes(layout.plan_file(), data[: len(data) // 2])
    with pytest.raises(ValueError, match="plan.parquet is unreadable"):
        plan.read_plan(layout)


def test_a_torn_plan_is_rebuilt_from_the_stored_spec_as_a_missing_one_is(layout):
    """`plan_of` (status, report, claims, the API): a torn plan.parquet is planned again from spec.yaml, as a
    missing one is (the same tasks, said rebuilt); where spec.yaml cannot be planned either, the error names
    both."""
    from orchestrator.spec.sweep_spec import dump_spec

    spec = parse_spec("name: x\nseeds: [0]\n")
    graph = build_graph(spec)
    plan.write_plan(layout, graph)
    data = layout.storage.read_bytes(layout.plan_file())
    layout.storage.write_bytes(layout.plan_file(), data[: len(data) // 2])
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    rebuilt, was_rebuilt = plan.plan_of(layout, ("task_id", "kind"))
    assert was_rebuilt and sorted(rebuilt["task_id"]) == sorted(graph.tasks)
    assert "is missing or unreadable; the plan of the stored spec.yaml was rebuilt" in plan.rebuilt_note(layout, rebuilt)
    layout.storage.write_bytes(layout.spec_file(), b"name: [x\n")
    with pytest.raises(ValueError, match=r"has an unreadable plan.parquet \(the plan .* is unreadable"):
        plan.plan_of(layout)


def test_init_seeds_are_read_back_exactly(layout):
    """Init seeds are 63-bit integers; a column that also holds missing values (the labels of tasks
    that are not models) must not come back as float64, which keeps only 53 bits."""
    graph = build_graph(parse_spec("name: x\nseeds: [0]\n"))
    plan.write_plan(layout, graph)
    df = plan.read_plan(layout).set_index("task_id")
    for tid, task in graph.tasks.items():
        if task.kind == "pretrain":
            assert task.labels["init_seed"] > 2 ** 53
            value = df.loc[tid, "init_seed"]
            assert int(value) == task.labels["init_seed"], (tid, value)   # int(): numpy compares as floats


def test_the_plan_records_every_resource_a_task_asks_for(layout):
    """`resources_json`: cpus, gpus and workers per task, and its custom Ray resources by name, as the spec
    asks (here pretrain: 2 CPUs, half a GPU, 2 workers, 1 `fast`; other kinds their defaults)."""
    graph = build_graph(parse_spec("name: x\nseeds: [0]\n"
                                   "resources: {pretrain: {cpus: 2, gpus: 0.5, workers: 2, custom: {fast: 1}}}\n"))
    plan.write_plan(layout, graph)
    for row in plan.read_plan(layout).to_dict("records"):
        task = graph.tasks[row["task_id"]]
        expected = ({"cpus": 2, "gpus": 0.5, "workers": 2, "custom": {"fast": 1}} if task.kind == "pretrain" else
                    {"cpus": task.resources.cpus, "gpus": task.resources.gpus, "workers": task.resources.workers,
                     "custom": dict(task.resources.custom)})
        assert json.loads(row["resources_json"]) == expected, task.kind


def test_some_columns_of_a_stored_or_rebuilt_plan_are_those_columns_only(layout):
    """`status` reads task_id and kind: the stored plan's, or (plan.parquet gone) the plan rebuilt from the
    stored spec.yaml, which says so; its note counts the tasks."""
    text = "name: x\nseeds: [0]\n"
    graph = build_graph(parse_spec(text))
    plan.write_plan(layout, graph)
    layout.storage.write_text(layout.spec_file(), text)
    stored = plan.read_plan(layout, ("task_id", "kind"))
    assert list(stored.columns) == ["task_id", "kind"] and list(stored["task_id"]) == list(graph.tasks)
    df, rebuilt = plan.plan_of(layout, ("task_id", "kind"))
    assert not rebuilt and list(df.columns) == ["task_id", "kind"]
    layout.storage.delete(layout.plan_file())
    df, rebuilt = plan.plan_of(layout, ("task_id", "kind"))
    assert rebuilt and list(df.columns) == ["task_id", "kind"] and list(df["task_id"]) == list(graph.tasks)
    assert list(df["kind"]) == [t.kind for t in graph.tasks.values()]
    assert f"({len(graph.tasks)} tasks) and only their rows are used" in plan.rebuilt_note(layout, df)
    whole, rebuilt = plan.plan_of(layout)
    assert rebuilt and {"task_id", "kind", "parents", "config_json"} <= set(whole.columns)


def test_a_stored_spec_behind_a_symbolic_link_is_refused_as_a_link_not_as_unplannable(layout, tmp_path):
    """Without plan.parquet the spec is read to plan again; a link where spec.yaml belongs is the storage's
    `LinkError` (its message names the link and the fix), not "cannot be planned"."""
    import os

    from orchestrator.storage.layout import LinkError

    (tmp_path / "elsewhere.yaml").write_text("name: x\nseeds: [0]\n")
    layout.storage.makedirs(layout.root)
    os.symlink(tmp_path / "elsewhere.yaml", layout.spec_file())
    with pytest.raises(LinkError):
        plan.plan_of(layout)


@pytest.mark.parametrize("table, column", [("paths", "path_kind"), ("tasks", "status"), ("tasks", "kind"),
                                           ("barriers", "metric"), ("barriers", "definition")])
def test_the_closed_columns_take_the_vocabulary_docs_analysis_names(table, column):
    """docs/ANALYSIS.md: `path_kind` is one of the path kinds in every table that holds it, a task's `status`
    one of the table statuses, its `kind` one of the task kinds, a barrier's `metric` and `definition` one of
    the metrics and definitions."""
    from orchestrator import vocab

    expected = {"path_kind": vocab.PATH_KINDS, "status": vocab.TABLE_STATUSES, "kind": vocab.TASK_KINDS,
                "metric": vocab.METRICS, "definition": vocab.DEFINITIONS}[column]
    assert tuple(schemas.ALLOWED_VALUES[(table, column)]) == tuple(expected)


def test_a_rebuilt_plan_has_the_columns_and_types_of_the_stored_one(layout):
    """A plan rebuilt from spec.yaml (plan.parquet gone) reads as the stored plan does, with the same pandas
    types: a seed or epoch count stays an integer (not a float with NaN for its missing values), so `status`
    and `report` show and group the same values whichever plan they read."""
    from orchestrator.spec.sweep_spec import dump_spec

    spec = parse_spec("name: x\nseeds: [0]\n")
    plan.write_plan(layout, build_graph(spec))
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    stored, was_rebuilt = plan.plan_of(layout)
    assert not was_rebuilt
    layout.storage.delete(layout.plan_file())
    rebuilt, was_rebuilt = plan.plan_of(layout)
    assert was_rebuilt and list(rebuilt.columns) == list(stored.columns)
    assert dict(rebuilt.dtypes.astype(str)) == dict(stored.dtypes.astype(str))
