"""The Python API (`orchestrator.api`) on a small synthetic sweep and with fakes, no run: what `run` hands to
`mmc-sweep run`'s code, `load`'s keyword flags, `table(columns=...)`, `open_sweep` of a directory that is
not a sweep, and `load_model` (its checkpoint's weights, eval mode, refused without a finished checkpoint)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import orchestrator as mmc
from orchestrator import api, vocab
from orchestrator.results import tables
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.report_data import synthetic_sweep, write_sweep


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-units") / "runs"
    layout = SweepLayout(Storage(root), "small")
    data = synthetic_sweep(seeds=(0,), pair_types=("cue~nocue",))
    write_sweep(layout, data)
    some = next(iter(data[vocab.PATHS]))          # an earlier spec version's rows left in the directory
    for table in (vocab.PATHS, vocab.BARRIERS):
        tables.write_fragment(layout, table, "path_eval-of-an-older-spec", data[table][some])
    return mmc.open_sweep(str(root / "small"))


def test_run_hands_every_argument_to_the_sweeps_run(monkeypatch, tmp_path):
    """`mmc.run` is `mmc-sweep run`: the spec with its overrides and keyword flags, and each option as given."""
    import sys
    import types

    calls = []
    fake = types.ModuleType("orchestrator.run.sweep")      # the real one loads Ray: not needed to see the call
    fake.run_sweep = lambda spec, **kwargs: calls.append((spec, kwargs)) or "outcome"
    monkeypatch.setitem(sys.modules, "orchestrator.run.sweep", fake)
    out = mmc.run(None, "finetune.lam=3", runner="pkg.mod:fn", num_cpus=3, address="ray://head:10001", report=False,
                  new_version=True, autoscaler_config="cluster.yaml", wait_for_nodes_s=12.5,
                  storage=str(tmp_path / "runs"), max_concurrent=None)
    assert out == "outcome" and len(calls) == 1
    spec, kwargs = calls[0]
    assert kwargs == {"runner": "pkg.mod:fn", "num_cpus": 3, "ray_address": "ray://head:10001", "report": False,
                      "new_version": True, "autoscaler_config": "cluster.yaml", "wait_for_nodes_s": 12.5}
    assert spec.storage == str(tmp_path / "runs")
    assert spec.resolved["finetune"]["lam"] == 3
    mmc.run(None)
    assert calls[1][1] == {"runner": "real", "num_cpus": None, "ray_address": None, "report": True,
                           "new_version": False, "autoscaler_config": None}    # run_sweep's own wait default


def test_a_keyword_flag_left_none_is_no_override():
    """`load(storage=None)` is `load()`: a flag of None is not passed (it would set the key to null)."""
    assert mmc.load(None, storage=None, max_concurrent=None).resolved == mmc.load(None).resolved


def test_a_tables_columns_are_only_those_asked_for_and_task_id(small):
    """`table(name, columns=[...])`: those columns and `task_id`, with the full table's values."""
    part = small.table(vocab.PATHS, columns=["pair_type", "alpha", "loss"])
    assert set(part.columns) == {"task_id", "pair_type", "alpha", "loss"}
    full = small.table(vocab.PATHS)
    pd.testing.assert_frame_equal(part[["task_id", "pair_type", "alpha", "loss"]].reset_index(drop=True),
                                  full[["task_id", "pair_type", "alpha", "loss"]].reset_index(drop=True))


def test_the_summary_and_the_path_curves_hold_only_the_plans_tasks(small):
    """Like the report, `summary` and `path_curves` never pool the rows an earlier spec version left: one
    seed, so n = 1 in every cell, and no curve of the unplanned task."""
    assert (small.summary()["n"] == 1).all()
    curves = small.path_curves(pair_type="cue~nocue")
    assert "path_eval-of-an-older-spec" not in set(curves["task_id"]) and len(curves) > 0
    assert "path_eval-of-an-older-spec" in set(small.table(vocab.PATHS, planned_only=False)["task_id"])


def test_a_directory_without_a_spec_is_not_a_sweep(tmp_path):
    (tmp_path / "runs" / "nothing").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="is not a sweep directory"):
        mmc.open_sweep(str(tmp_path / "runs" / "nothing"))


def test_a_planned_model_task_without_a_finished_checkpoint_is_not_loaded(small):
    """A task whose done.json is gone (the synthetic sweep's tasks have table rows and a marker, no checkpoint):
    `load_model` says to run the sweep."""
    pretrain = small.plan.loc[small.plan["kind"] == vocab.PRETRAIN, "task_id"].iloc[0]
    small.layout.storage.delete(small.layout.marker_file(vocab.PRETRAIN, pretrain))
    with pytest.raises(FileNotFoundError, match="has no finished checkpoint"):
        small.load_model(pretrain)


def test_load_model_gives_the_checkpoints_weights_in_eval_mode(tmp_path, monkeypatch):
    """The model of the task's config (dataset digits: 10 classes, 1 channel), loaded with the weights its
    verified checkpoint holds (here those of a model drawn from seed 7), in eval mode; a midpoint's config
    names two data settings (the first's dataset builds it)."""
    from tasks.models import build_model

    layout = SweepLayout(Storage(str(tmp_path / "runs")), "m")
    sweep = api.Sweep(layout)
    configs = {"pretrain-x": {"data": {"dataset": "digits"}, "model": {"name": "small_cnn"}},
               "midpoint-x": {"data": [{"dataset": "digits"}, {"dataset": "digits", "cue_proportion": 0.0}],
                              "model": {"name": "small_cnn"}}}
    sweep.__dict__["plan"] = pd.DataFrame({"task_id": list(configs), "kind": [vocab.PRETRAIN, vocab.MIDPOINT],
                                           "config_json": [json.dumps(c) for c in configs.values()]})
    sweep.__dict__["spec"] = {}
    weights = build_model("small_cnn", 10, 1, seed=7).state_dict()
    monkeypatch.setattr(api.outputs, "verify_outputs", lambda layout, kind, task_id: (True, ""))
    monkeypatch.setattr(api.outputs, "load_checkpoint", lambda layout, kind, task_id: (dict(weights), {}))
    for task_id in configs:
        model = sweep.load_model(task_id)
        assert not model.training and all(not m.training for m in model.modules())
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, weights[name]), name


def test_a_keyword_flag_is_the_value_given_not_its_text_read_as_yaml():
    """`load(name="2024")`: the string "2024" (JSON-quoted), not the integer YAML would read from its text."""
    assert mmc.load(None, name="2024").name == "2024"


def test_the_summary_keeps_a_swept_setting_that_has_one_value_so_far(tmp_path, monkeypatch):
    """`summary` is the report's: grouped by the spec's swept settings, given by the stored spec's axes, also where
    the rows so far hold one value of an axis (not only columns that happen to vary)."""
    from orchestrator.report import build

    rows = pd.DataFrame({"pair_type": ["cue~nocue"] * 2, "path_kind": ["linear"] * 2, "alignment": [None] * 2,
                         "eval_set": ["nocue"] * 2, "metric": ["loss"] * 2, "definition": ["chord"] * 2,
                         "value": [0.1, 0.3], "finetune.lam": [3.0, 3.0]})
    sweep = api.Sweep(SweepLayout(Storage(str(tmp_path / "runs")), "s"))
    monkeypatch.setattr(api.Sweep, "table", lambda self, name, planned_only=True, columns=None: rows)
    monkeypatch.setattr(build, "swept_keys", lambda layout, spec_text=None: ("finetune.lam",))
    summary = sweep.summary()
    assert list(summary["finetune.lam"]) == [3.0] and list(summary["n"]) == [2]


def test_the_repr_names_only_the_tables_written(tmp_path, monkeypatch):
    """A sweep whose tasks have not run yet: `tables none yet`, not every table's name."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "fresh")
    sweep = api.Sweep(layout)
    sweep.__dict__["plan"] = pd.DataFrame({"task_id": ["p0"], "kind": [vocab.PRETRAIN]})
    monkeypatch.setattr(api.outputs, "verify_many", lambda layout, tasks, hashes=None: {t: (False, "") for _, t in tasks})
    assert "0/1 tasks finished; tables none yet" in repr(sweep)


def test_path_curves_carry_each_pairs_endpoints(small):
    """"the pair's labels": each curve names its two endpoints (the models `load_model` loads)."""
    curves = small.path_curves(pair_type="cue~nocue")
    assert {"endpoint_a", "endpoint_b"} <= set(curves.columns) and curves["endpoint_a"].notna().all()


def test_load_model_finds_a_dataset_of_your_own_under_the_specs_data_root(tmp_path, monkeypatch):
    """A dataset of your own is loaded from the spec's `data.root` to learn its classes and channels."""
    import tasks.data
    from tasks.models import build_model
    from tasks.settings.data import DATASETS

    asked = []
    monkeypatch.setattr(tasks.data, "dataset_info", lambda name, root=None: asked.append((name, root)) or DATASETS["digits"])
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "m")
    sweep = api.Sweep(layout)
    sweep.__dict__["plan"] = pd.DataFrame({"task_id": ["pretrain-x"], "kind": [vocab.PRETRAIN], "config_json": [
        json.dumps({"data": {"dataset": "digits"}, "model": {"name": "small_cnn"}})]})
    sweep.__dict__["spec"] = {"data": {"root": "/data/mine"}}
    weights = build_model("small_cnn", 10, 1, seed=7).state_dict()
    monkeypatch.setattr(api.outputs, "verify_outputs", lambda layout, kind, task_id: (True, ""))
    monkeypatch.setattr(api.outputs, "load_checkpoint", lambda layout, kind, task_id: (dict(weights), {}))
    sweep.load_model("pretrain-x")
    assert asked == [("digits", "/data/mine")]


def test_tables_with_planned_only_false_keeps_the_rows_an_earlier_spec_left(small):
    """`tables(planned_only=False)` is `table(name, planned_only=False)` for every table: the rows an earlier spec
    version left are there; by default (`tables()`) they are not."""
    older = "path_eval-of-an-older-spec"
    every = small.tables(planned_only=False)
    assert set(every) == set(vocab.TABLES)
    assert older in set(every[vocab.PATHS]["task_id"]) and older in set(every[vocab.BARRIERS]["task_id"])
    planned = small.tables()
    assert older not in set(planned[vocab.PATHS]["task_id"]) and older not in set(planned[vocab.BARRIERS]["task_id"])


def test_path_curves_keep_eval_set_apart_unless_one_is_picked(small):
    """Without `eval_set`, a curve's rows of each eval set stay apart (an `eval_set` column, one row per pair x
    alpha x eval set); picking one drops the column, as every row then has that value."""
    curves = small.path_curves()
    assert "eval_set" in curves.columns and curves["eval_set"].nunique() > 1
    assert not curves.duplicated(["task_id", "eval_set", "alpha"]).any()
    some = curves["eval_set"].iloc[0]
    picked = small.path_curves(eval_set=some)
    assert "eval_set" not in picked.columns
    assert len(picked) == (curves["eval_set"] == some).sum() and not picked.duplicated(["task_id", "alpha"]).any()


def test_path_curves_are_sorted_by_alpha_whatever_order_the_rows_were_written_in(tmp_path):
    """Each curve comes out in alpha order (0 to 1), also where a task wrote its rows of `paths` in another order."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "reversed")
    data = synthetic_sweep(seeds=(0,), pair_types=("cue~nocue",))
    data[vocab.PATHS] = {task_id: rows[::-1] for task_id, rows in data[vocab.PATHS].items()}
    write_sweep(layout, data)
    curves = mmc.open_sweep(str(tmp_path / "runs" / "reversed")).path_curves()
    assert len(curves) > 0
    for _, curve in curves.groupby(["task_id", "eval_set"]):
        assert curve["alpha"].is_monotonic_increasing and curve["alpha"].nunique() > 1
