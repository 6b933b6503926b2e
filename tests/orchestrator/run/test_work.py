"""What `orchestrator/run/work.py` takes from a task's config and hands to the science, and what it
makes of what the science returns: each seed from its own key of the config, each kind's settings
from its own section, the alignment's distances and identity, the names of the metrics and step
series (`child_runs`' docstring), the aligned path that reuses the linear path's rows, and the
result `execute` reports. What the driver records of these tasks: test_recording.py, test_state.py.

The science functions are replaced by stand-ins that record their arguments (as in
test_science_wiring.py); the graph is a smoke sweep with seed 3, so a seed of 0 is never right by
accident."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from orchestrator import vocab
from orchestrator.results import outputs
from orchestrator.results.outputs import TaskOutput
from orchestrator.run import work
from tasks import align as align_lib
from tasks import finetune as finetune_lib
from tasks import paths as paths_lib
from tasks.models import build_model
from tasks.settings import from_identity
from tasks.train import OptimSettings
from tests.support.work_graph import (data_of, distinct_states, first, layout_in, record, run,
                                      same_state, smoke_graph)



@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return smoke_graph(tmp_path_factory.mktemp("work"))


@pytest.fixture
def states(graph, monkeypatch):
    return distinct_states(graph, monkeypatch)





def with_config(task, **changes):
    return dataclasses.replace(task, config={**task.config, **changes})


# ----------------------------------------------------------------- seeds and settings of each kind

def test_pretrain_initialises_from_init_seed_and_orders_its_data_by_order_seed_and_spawn(graph, monkeypatch):
    task = first(graph, vocab.PRETRAIN)
    task = with_config(task, init_seed=11, order_seed=22, spawn={"epoch": 1, "order_seed": 33})
    made = []
    real = work.cross_entropy_objective

    def objective(*args, **kwargs):
        made.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(work, "cross_entropy_objective", objective)
    seen = record(monkeypatch, work, "fit")
    run(work.run_pretrain, task)
    model, _objective, _params, settings = seen["args"][:4]
    assert same_state(model.state_dict(), build_model("small_cnn", 10, 1, 8, seed=11).state_dict())
    assert settings == from_identity(OptimSettings, task.config["train"])
    assert seen["kwargs"]["seed"] == 22
    (args, kwargs), = made
    assert args[1:] == (settings.batch_size, 22)
    assert kwargs == {"spawn_seed": 33, "spawn_epoch": 1}


def test_finetune_starts_from_its_pretrained_parent_with_its_method_settings_and_seed(graph, states, monkeypatch):
    seen = record(monkeypatch, finetune_lib, "finetune")
    for method in ("naive", "lpft"):
        task = first(graph, vocab.FINETUNE, method=method)
        assert task.config["seed"] == 3
        run(work.run_finetune, task)
        model, got_method, _data, settings = seen["args"][:4]
        assert got_method == method
        assert same_state(model.state_dict(), states[task.config["pretrain"]])
        assert settings == from_identity(finetune_lib.FinetuneSettings, task.config["finetune"])
        assert seen["kwargs"]["seed"] == 3


def test_the_midpoint_trains_with_its_own_settings_and_seed(graph, states, monkeypatch):
    seen = record(monkeypatch, paths_lib, "train_midpoint")
    task = first(graph, vocab.MIDPOINT)
    assert task.config["seed"] == 3
    run(work.run_midpoint, task)
    assert seen["args"][4] == from_identity(paths_lib.MidpointSettings, task.config["train"])
    assert seen["kwargs"]["seed"] == 3


def test_alignment_gets_its_seed(graph, states, monkeypatch):
    seen = record(monkeypatch, align_lib, "align")
    task = first(graph, vocab.ALIGN)
    run(work.run_align, task)
    assert seen["kwargs"]["seed"] == task.config["seed"] == 3


def test_a_path_is_evaluated_with_its_settings_seed_and_each_endpoints_own_bn_images(graph, states, monkeypatch):
    seen = record(monkeypatch, paths_lib, "evaluate_path")
    task = first(graph, vocab.PATH_EVAL, path_kind=vocab.LINEAR)
    cfg = task.config
    assert cfg["seed"] == 3 and cfg.get("bn_data"), "a spec with `paths.bn_data: endpoints`"
    run(work.run_path_eval, task)
    kwargs = seen["kwargs"]
    assert kwargs["settings"] == from_identity(paths_lib.PathSettings, cfg["path"])
    assert kwargs["seed"] == 3
    id_a, id_b = cfg["endpoints"]
    train_a, train_b = (data_of(graph.tasks[e].config["data"]).train.x for e in (id_a, id_b))
    assert not torch.equal(train_a, train_b), "the endpoints' training images must differ to tell them apart"
    assert torch.equal(kwargs["bn_data"], train_a) and torch.equal(kwargs["bn_data_b"], train_b)


# ----------------------------------------------------------------- alignment facts

def _distance_by_hand(a: dict, b: dict) -> float:
    """The distance of the weights: every float tensor but BN's running statistics (not weights)."""
    keys = [k for k in a if a[k].is_floating_point() and "running_mean" not in k and "running_var" not in k]
    return math.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in keys))


@pytest.mark.parametrize("changed", [0, 1, None])
def test_alignment_reports_weight_distances_before_and_after_and_whether_it_is_the_identity(graph, states,
                                                                                            monkeypatch, changed):
    task = first(graph, vocab.ALIGN)
    id_a, id_b = task.config["endpoints"]
    state_a, state_b = states[id_a], states[id_b]
    permuted = {k: v.clone() for k, v in state_b.items()}
    weights = [k for k in permuted if k.endswith("weight") and permuted[k].dim() > 1]   # conv, linear
    if changed is not None:            # one tensor of B permuted (its channels reversed), the others kept
        permuted[weights[changed]] = permuted[weights[changed]].flip(0)
    for k in permuted:                 # running statistics of B moved: not weights
        if "running_var" in k:
            permuted[k] = permuted[k] + 5.0
    monkeypatch.setattr(align_lib, "align", lambda *args, **kwargs: permuted)
    out = work.run_align(task, work.TaskEnv(layout=None, device=torch.device("cpu")))
    identity = changed is None and all(torch.equal(permuted[k], state_b[k]) for k in state_b)
    assert out.meta["identity"] is identity
    assert out.metrics["identity"] == float(identity)
    assert out.metrics["weight_distance_before"] == pytest.approx(_distance_by_hand(state_a, state_b), rel=1e-6)
    assert out.metrics["weight_distance_after"] == pytest.approx(_distance_by_hand(state_a, permuted), rel=1e-6)
    before, after = out.metrics["weight_distance_before"], out.metrics["weight_distance_after"]
    assert before != pytest.approx(after) or changed is None
    assert same_state(out.checkpoint, permuted)


def test_an_alignment_that_changes_only_some_tensors_is_not_the_identity(graph, states, monkeypatch):
    task = first(graph, vocab.ALIGN)
    state_b = states[task.config["endpoints"][1]]
    permuted = dict(state_b)
    key = next(k for k in permuted if k.endswith("weight") and permuted[k].dim() > 1)
    permuted[key] = permuted[key].flip(0)
    monkeypatch.setattr(align_lib, "align", lambda *args, **kwargs: permuted)
    out = work.run_align(task, work.TaskEnv(layout=None, device=torch.device("cpu")))
    assert out.meta["identity"] is False
    unchanged = {k: v for k, v in state_b.items()}
    monkeypatch.setattr(align_lib, "align", lambda *args, **kwargs: unchanged)
    assert work.run_align(task, work.TaskEnv(layout=None, device=torch.device("cpu"))).meta["identity"] is True


# ----------------------------------------------------------------- metric names and step series

def test_alpha_step_rounds_to_the_nearest_integer():
    """child_runs: a path curve's point at alpha is logged at step round(1000 alpha)."""
    assert work.alpha_step(2 / 3) == 667           # 666.666...
    assert work.alpha_step(1 / 6) == 167           # 166.666...
    assert work.alpha_step(0.5) == 500 and work.alpha_step(1.0) == 1000 and work.alpha_step(0.0) == 0


def test_path_output_names_barriers_by_set_metric_definition_and_logs_every_curve_against_alpha(graph):
    task = first(graph, vocab.PATH_EVAL, path_kind=vocab.LINEAR)
    rows = [{"alpha": a, "eval_set": "cue", "loss": 1.0 + a, "acc": 0.5, "n": 10, "agree_a": 1.0 - a,
             "agree_b": a} for a in (0.0, 0.5, 1.0)]
    barrier_rows = [{"eval_set": "cue", "metric": "loss", "definition": "chord", "value": 0.25}]
    out = work.path_output(task, rows, barrier_rows)
    assert out.metrics == {"barrier.cue.loss.chord": 0.25}
    for m in ("loss", "acc", "agree_a", "agree_b"):
        assert sorted((s, v) for k, s, v in out.steps if k == f"path.cue.{m}") == \
            [(round(1000 * r["alpha"]), r[m]) for r in rows]
    assert {r["task_id"] for r in out.tables[vocab.PATHS]} == {task.id}


def test_a_training_tasks_metrics_are_the_loss_and_accuracy_of_every_eval_set(graph, monkeypatch):
    task = first(graph, vocab.PRETRAIN)
    evaluated = [{"eval_set": "cue", "loss": 0.7, "acc": 0.6, "n": 5},
                 {"eval_set": "clean", "loss": 0.9, "acc": 0.4, "n": 5}]
    monkeypatch.setattr(work, "evaluate_sets", lambda *args, **kwargs: evaluated)
    data = type("D", (), {"eval_sets": {}})()
    env = work.TaskEnv(layout=None, device=torch.device("cpu"))
    out = work._trained(task, env, object(), data, None, [{"epoch": 0, "loss": 2.0, "acc": 0.1, "lr": 0.05}], {})
    assert out.metrics == {"eval.cue.loss": 0.7, "eval.cue.acc": 0.6, "eval.clean.loss": 0.9, "eval.clean.acc": 0.4}
    assert sorted(out.steps) == [("train_acc", 0, 0.1), ("train_loss", 0, 2.0)]


def test_a_curve_keeps_the_split_each_row_names(graph):
    """LP-FT's head phase is split `llrt` (its step series `llrt_loss`), the rest `train`."""
    task = first(graph, vocab.FINETUNE, method="lpft")
    env = work.TaskEnv(layout=None, device=torch.device("cpu"))
    rows = work.curve_rows(task, env, None, [{"epoch": 0, "split": "llrt", "loss": 1.0, "acc": 0.5},
                                             {"epoch": 1, "loss": 0.5, "acc": 0.75}])
    assert [(r["epoch"], r["split"], r["task_id"]) for r in rows] == [(0, "llrt", task.id), (1, "train", task.id)]
    assert sorted(work.curve_steps(rows)) == [("llrt_acc", 0, 0.5), ("llrt_loss", 0, 1.0),
                                              ("train_acc", 1, 0.75), ("train_loss", 1, 0.5)]
    assert all(r["finetune.lr"] == task.settings["finetune.lr"] for r in rows)   # the task's settings columns


# ----------------------------------------------------------------- the aligned path of an identity alignment

@pytest.mark.parametrize("identity", [True, False, None])   # None: a marker that does not say
def test_the_aligned_path_of_an_identity_alignment_is_the_linear_paths_rows_under_its_own_id(graph, states, tmp_path,
                                                                                            monkeypatch, identity):
    layout = layout_in(tmp_path)
    aligned = first(graph, vocab.PATH_EVAL, path_kind=vocab.ALIGNED)
    linear, align = graph.tasks[aligned.config["linear"]], graph.tasks[aligned.config["via"]]
    rows = [{"alpha": a, "eval_set": "cue", "loss": 1.0 + a * (1 - a), "acc": 0.5, "n": 10,
             "agree_a": 1.0 - a, "agree_b": a} for a in (0.0, 0.5, 1.0)]
    outputs.write_outputs(layout, linear, work.path_output(linear, rows, paths_lib.barriers(rows)))
    outputs.write_outputs(layout, align, TaskOutput(checkpoint={"w": torch.zeros(2)},
                                                    meta={} if identity is None else {"identity": identity}))
    seen = record(monkeypatch, paths_lib, "evaluate_path")
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"),
                       parent_kinds={p: graph.tasks[p].kind for p in aligned.parents})
    if identity is not True:
        run(work.run_path_eval, aligned, env)        # recomputed: only an alignment known to be the identity reuses
        assert seen
        return
    out = work.run_path_eval(aligned, env)
    assert out.meta == {"reused_rows_of": linear.id}
    got = out.tables[vocab.PATHS]
    assert {r["task_id"] for r in got} == {aligned.id} and {r["path_kind"] for r in got} == {vocab.ALIGNED}
    assert sorted((r["alpha"], r["loss"], r["agree_b"]) for r in got) == \
        sorted((r["alpha"], r["loss"], r["agree_b"]) for r in rows)
    assert out.metrics == work.path_output(linear, rows, paths_lib.barriers(rows)).metrics


# ----------------------------------------------------------------- execute and device

def test_execute_reports_the_runners_metrics_and_steps_and_writes_its_outputs(graph, tmp_path, monkeypatch):
    layout = layout_in(tmp_path)
    task = first(graph, vocab.ALIGN)
    output = TaskOutput(checkpoint={"w": torch.arange(3.0)}, metrics={"m": 1.5}, steps=[("s", 2, 0.25), ("s", 4, 0.5)])
    monkeypatch.setitem(work.RUNNERS, "fixed", lambda t, env: output)
    result = work.execute(task, "fixed", work.TaskEnv(layout=layout, device=torch.device("cpu")))
    assert result.status == vocab.DONE, result.error
    assert result.metrics == {"m": 1.5}
    assert result.steps == [["s", 2, 0.25], ["s", 4, 0.5]]
    marker = outputs.read_marker(layout, task.kind, task.id)
    assert marker is not None and marker["meta"]["device"] == result.device


def test_a_task_without_gpus_runs_on_the_cpu_even_where_cuda_is_available(graph, monkeypatch):
    task = first(graph, vocab.PRETRAIN)
    assert not task.resources.gpus
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert work.device_for(task) == torch.device("cpu")
