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
