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


def test_a_trained_model_that_evaluates_to_a_non_finite_loss_fails_its_task_as_diverged(graph, monkeypatch):
    """Weights that blew up while every training loss stayed finite (a loss of 1e18 is finite): the trained model's
    evaluation is NaN on some sets. The task fails with a DivergenceError naming the sets (deterministic: its
    dependents are skipped and the summary says to lower `lr`), instead of finishing with NaN results."""
    from tasks.train import DivergenceError
    task = first(graph, vocab.PRETRAIN)
    evaluated = [{"eval_set": "cue", "loss": 0.7, "acc": 0.6, "n": 5},
                 {"eval_set": "clean", "loss": float("nan"), "acc": float("nan"), "n": 5}]
    monkeypatch.setattr(work, "evaluate_sets", lambda *args, **kwargs: evaluated)
    data = type("D", (), {"eval_sets": {}})()
    env = work.TaskEnv(layout=None, device=torch.device("cpu"))
    with pytest.raises(DivergenceError, match=r"training diverged: the trained model's loss on clean is nan after "
                                              r"epoch 3; lower `lr`"):
        work._trained(task, env, object(), data, None, [{"epoch": 3, "loss": 1e18, "acc": 0.1, "lr": 0.05}], {})


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


@pytest.mark.parametrize("kind, method, lr", [(vocab.PRETRAIN, None, "pretrain.lr"), (vocab.FINETUNE, "naive", "finetune.lr"),
                                               (vocab.MIDPOINT, None, "midpoint.lr"),
                                               (vocab.FINETUNE, "naive", "finetune.llrt_lr")])
def test_a_diverged_task_names_the_learning_rate_of_its_own_section(graph, tmp_path, monkeypatch, kind, method, lr):
    """`lower `lr`` alone leaves the user to guess which of five: the task's error names its kind's section
    and the learning rate of the phase that diverged (a head phase's `llrt_lr`, tests/tasks/test_finetune.py)."""
    from tasks.train import DivergenceError
    task = next(t for t in graph.tasks.values() if t.kind == kind and (method is None or t.config.get("method") == method))

    def diverges(t, env):
        raise DivergenceError(0, 3, float("nan"), lr=lr.split(".")[1])
    monkeypatch.setitem(work.RUNNERS, "diverges", diverges)
    result = work.execute(task, "diverges", work.TaskEnv(layout=layout_in(tmp_path), device=torch.device("cpu")))
    assert result.status == vocab.FAILED and result.error_type == "DivergenceError"
    assert result.error.startswith(f"DivergenceError: training diverged: loss is nan at epoch 0, step 3; lower `{lr}` ")


def test_a_task_without_gpus_runs_on_the_cpu_even_where_cuda_is_available(graph, monkeypatch):
    task = first(graph, vocab.PRETRAIN)
    assert not task.resources.gpus
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert work.device_for(task) == torch.device("cpu")


def test_the_aligned_path_of_an_identity_alignment_keeps_every_measured_column_of_the_linear_rows(graph, tmp_path):
    """Reusing the linear path's rows must not lose what was measured at each alpha: the sample count and
    both reliance columns (docs/ANALYSIS.md's `paths` table) come over with the losses and accuracies."""
    layout = layout_in(tmp_path)
    aligned = first(graph, vocab.PATH_EVAL, path_kind=vocab.ALIGNED)
    linear, align = graph.tasks[aligned.config["linear"]], graph.tasks[aligned.config["via"]]
    measured = ("alpha", "eval_set", "loss", "acc", "n", "agree_a", "agree_b", "reliance_randimg", "reliance_randcue")
    rows = [{"alpha": a, "eval_set": "cue", "loss": 1.0 + a, "acc": 0.5 + a / 4, "n": 10 + i, "agree_a": 1.0 - a,
             "agree_b": a, "reliance_randimg": 0.25 - a / 8, "reliance_randcue": 0.125 + a / 16}
            for i, a in enumerate((0.0, 0.5, 1.0))]
    outputs.write_outputs(layout, linear, work.path_output(linear, rows, paths_lib.barriers(rows)))
    outputs.write_outputs(layout, align, TaskOutput(checkpoint={"w": torch.zeros(2)}, meta={"identity": True}))
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"),
                       parent_kinds={p: graph.tasks[p].kind for p in aligned.parents})
    got = work.run_path_eval(aligned, env).tables[vocab.PATHS]
    assert sorted(tuple(r[c] for c in measured) for r in got) == sorted(tuple(r[c] for c in measured) for r in rows)


def test_lpft_labels_its_head_epochs_llrt_and_every_later_epoch_train(graph):
    """A resumed LP-FT task labels the saved rows by `curve_split`: its first `llrt_epochs` epochs train the
    head only (`llrt`), the rest the whole model (`train`); a pretraining task's epochs are all `train`."""
    task = first(graph, vocab.FINETUNE, method="lpft")
    head = int(task.config["finetune"]["llrt_epochs"])
    assert head >= 1
    assert [work.curve_split(task, e) for e in range(head + 2)] == ["llrt"] * head + ["train"] * 2
    naive = first(graph, vocab.FINETUNE, method="naive")
    assert work.curve_split(naive, 0) == "train"
    assert work.curve_split(first(graph, vocab.PRETRAIN), 0) == "train"


def test_a_curve_row_without_a_value_gives_no_point_of_that_series():
    """One point per epoch and per measured value: a row whose accuracy was not measured adds its loss only."""
    rows = [{"split": "train", "epoch": 0, "loss": 1.5, "acc": None}, {"split": "train", "epoch": 1, "loss": 1.25}]
    assert sorted(work.curve_steps(rows)) == [("train_loss", 0, 1.5), ("train_loss", 1, 1.25)]


def _resume_state_of(layout, task):
    files = layout.resume_files(task.kind, task.id)
    for path in files.values():
        layout.storage.write_bytes(path, b"state")
    return files


@pytest.mark.parametrize("fails", [False, True])
def test_execute_drops_the_resume_state_of_a_task_that_finished_and_keeps_that_of_one_that_failed(graph, tmp_path,
                                                                                                   monkeypatch, fails):
    """FAILURES.md/`layout.resume_dir`: the per-epoch state is deleted once the task finished; a failed
    task keeps it to resume from. The marker also records how long the task took."""
    layout = layout_in(tmp_path)
    task = first(graph, vocab.PRETRAIN)
    files = _resume_state_of(layout, task)

    def runner(t, env):
        if fails:
            raise RuntimeError("stopped")
        return TaskOutput(checkpoint={"w": torch.zeros(2)})

    monkeypatch.setitem(work.RUNNERS, "fixed", runner)
    result = work.execute(task, "fixed", work.TaskEnv(layout=layout, device=torch.device("cpu")))
    assert result.status == (vocab.FAILED if fails else vocab.DONE)
    assert all(layout.storage.is_file(p) for p in files.values()) is fails
    if not fails:
        meta = outputs.read_marker(layout, task.kind, task.id)["meta"]
        assert 0 <= meta["duration_s"] <= result.duration_s


def test_a_worker_of_rank_other_than_zero_reports_its_result_and_writes_nothing(graph, tmp_path, monkeypatch):
    """Only rank 0 writes a task's outputs (every rank of Ray Train runs the same task)."""
    layout = layout_in(tmp_path)
    task = first(graph, vocab.PRETRAIN)
    files = _resume_state_of(layout, task)
    monkeypatch.setitem(work.RUNNERS, "fixed", lambda t, env: TaskOutput(checkpoint={"w": torch.zeros(2)},
                                                                         metrics={"m": 2.0}))
    result = work.execute(task, "fixed", work.TaskEnv(layout=layout, device=torch.device("cpu"), rank=1))
    assert result.status == vocab.DONE and result.metrics == {"m": 2.0}
    assert outputs.read_marker(layout, task.kind, task.id) is None
    assert all(layout.storage.is_file(p) for p in files.values())


def test_a_failed_task_reports_its_exception_class_and_the_end_of_its_traceback(graph, tmp_path, monkeypatch):
    """docs/ANALYSIS.md: `error` holds the error and the *last* lines of its traceback (where it was raised),
    `error_type` the exception's class name (FAILURES.md: which errors a rerun repeats)."""
    task = first(graph, vocab.ALIGN)

    def deep(n):
        if n == 0:
            raise ValueError("lr must be positive")
        return deep(n - 1)

    def outermost_caller():
        deep(12)

    monkeypatch.setitem(work.RUNNERS, "raising", lambda t, env: outermost_caller())
    result = work.execute(task, "raising", work.TaskEnv(layout=layout_in(tmp_path), device=torch.device("cpu")))
    assert (result.status, result.error_type) == (vocab.FAILED, "ValueError")
    assert result.error.startswith("ValueError: lr must be positive\n")
    assert 'raise ValueError("lr must be positive")' in result.error
    assert "outermost_caller" not in result.error       # 13 frames above the raise: only the end is kept


def test_a_task_with_gpus_runs_on_cuda_where_cuda_is_available(graph, monkeypatch):
    task = dataclasses.replace(first(graph, vocab.PRETRAIN),
                               resources=dataclasses.replace(first(graph, vocab.PRETRAIN).resources, gpus=1.0))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert work.device_for(task) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert work.device_for(task) == torch.device("cpu")


def test_run_here_keeps_a_training_tasks_progress_with_the_epochs_it_plans(graph, tmp_path, monkeypatch):
    """`mmc-sweep status` shows a running task's epochs out of `pretrain.epochs`; a fresh task starts at 0."""
    from orchestrator.run.progress import read_progress

    layout = layout_in(tmp_path)
    task = first(graph, vocab.PRETRAIN)

    def runner(t, env):
        assert env.resume_state() is None
        return TaskOutput(checkpoint={"w": torch.zeros(2)})

    monkeypatch.setitem(work.RUNNERS, "fixed", runner)
    assert work.run_here(task, layout, "fixed", None, {}).status == vocab.DONE
    progress = read_progress(layout, task.kind, task.id)
    assert (progress["epochs"], progress["epoch"], progress["start_epoch"]) == (int(task.settings["pretrain.epochs"]), 0, 0)


def test_a_resumed_training_tasks_curve_starts_with_the_saved_rows_of_the_epochs_before_the_resume(graph):
    """resume.py: a restarted task keeps the curve rows of the epochs before the restart, then those it trained."""
    from types import SimpleNamespace

    from orchestrator.run.resume import ResumeLog

    task = first(graph, vocab.PRETRAIN)
    log = ResumeLog(lambda epoch: "train")
    log.curve = [{"epoch": e, "split": "train", "loss": 2.0 - e, "acc": 0.1 * e, "duration_s": 1.0} for e in (0, 1)]
    env = work.TaskEnv(layout=None, device=torch.device("cpu"), resume_log=log)
    trained = [{"epoch": e, "loss": 0.5, "acc": 0.5, "duration_s": 2.0} for e in (2, 3)]
    rows = work.curve_rows(task, env, SimpleNamespace(epoch=2), trained)
    assert [(r["epoch"], r["loss"], r["task_id"]) for r in rows] == [(0, 2.0, task.id), (1, 1.0, task.id),
                                                                      (2, 0.5, task.id), (3, 0.5, task.id)]


def test_a_training_tasks_evaluation_rows_are_one_per_eval_set_with_its_numbers_under_its_id(graph, monkeypatch):
    """The `evaluations` table: per eval set its loss, accuracy and sample count, with the task's id and labels."""
    task = first(graph, vocab.PRETRAIN)
    evaluated = [{"eval_set": "cue", "loss": 0.7, "acc": 0.6, "n": 5}, {"eval_set": "clean", "loss": 0.9, "acc": 0.4, "n": 7}]
    monkeypatch.setattr(work, "evaluate_sets", lambda *args, **kwargs: evaluated)
    data = type("D", (), {"eval_sets": {}})()
    out = work._trained(task, work.TaskEnv(layout=None, device=torch.device("cpu")), object(), data, None, [], {})
    got = [(r["task_id"], r["eval_set"], r["loss"], r["acc"], r["n"], r["cue_proportion"]) for r in out.tables[vocab.EVALUATIONS]]
    assert got == [(task.id, e["eval_set"], e["loss"], e["acc"], e["n"], task.labels["cue_proportion"]) for e in evaluated]


@pytest.mark.parametrize("method, lr", [("llrt", "llrt_lr"), ("naive", "lr")])
def test_a_fine_tuned_model_that_evaluates_to_a_non_finite_loss_names_the_learning_rate_of_its_last_phase(
        graph, monkeypatch, method, lr):
    """LLRT ends by retraining the head alone at `llrt_lr`: weights that blew up there are fixed by lowering
    `finetune.llrt_lr`, not `finetune.lr`, so its divergence after training names `llrt_lr` (and `execute`
    its section); a method whose last phase trains at `lr` names `lr`."""
    from tasks.train import DivergenceError
    naive = first(graph, vocab.FINETUNE, method="naive")
    task = dataclasses.replace(naive, config={**naive.config, "method": method})
    evaluated = [{"eval_set": "clean", "loss": float("inf"), "acc": 0.1, "n": 5}]
    monkeypatch.setattr(work, "evaluate_sets", lambda *args, **kwargs: evaluated)
    data = type("D", (), {"eval_sets": {}})()
    env = work.TaskEnv(layout=None, device=torch.device("cpu"))
    with pytest.raises(DivergenceError, match=f"lower `{lr}`") as info:
        work._trained(task, env, object(), data, None, [{"epoch": 2, "loss": 1.0, "acc": 0.1, "lr": 0.05}], {})
    assert info.value.advice(vocab.FINETUNE) == f"lower `finetune.{lr}`"


@pytest.mark.parametrize("kind", [vocab.FINETUNE, vocab.MIDPOINT])
def test_run_here_keeps_the_progress_of_every_training_kind_not_only_pretraining(graph, tmp_path, monkeypatch, kind):
    """Fine-tuning and midpoint tasks train for epochs too: `mmc-sweep status` shows their epoch k/N from the
    `progress.json` that `run_here` keeps, and a restarted one resumes from its saved epoch; an alignment
    (no epochs) keeps none."""
    from orchestrator.run.progress import planned_epochs, read_progress

    layout = layout_in(tmp_path)
    task = first(graph, kind)

    def runner(t, env):
        assert env.resume_state() is None           # nothing saved yet: a fresh start at epoch 0
        return TaskOutput(checkpoint={"w": torch.zeros(2)})

    monkeypatch.setitem(work.RUNNERS, "fixed", runner)
    assert work.run_here(task, layout, "fixed", None, {}).status == vocab.DONE
    progress = read_progress(layout, task.kind, task.id)
    assert progress is not None, f"a {kind} task keeps no progress.json"
    assert (progress["epochs"], progress["epoch"]) == (planned_epochs(task), 0) and progress["epochs"]
    align = first(graph, vocab.ALIGN)
    assert work.run_here(align, layout, "fixed", None, {}).status == vocab.DONE
    assert read_progress(layout, align.kind, align.id) is None
