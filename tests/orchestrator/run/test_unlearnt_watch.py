"""The warning while the run goes on a trained model that finished at chance (`run/unlearnt_watch.py`):
said at the first pretraining or fine-tuning that ends there, once per kind, naming the learning rate; not
for a model above the floor, a path task, a cached task or a fine-tuning of a model already said to be at
chance. The graph is tests/support/work_graph.py's smoke sweep (digits: 10 classes, chance 10%)."""
from __future__ import annotations

import pytest

from orchestrator import vocab
from orchestrator.run import schedule, sweep
from orchestrator.run.capacity import ClusterView
from orchestrator.run.state import SweepState
from orchestrator.run.task_result import TaskResult
from orchestrator.run.unlearnt_watch import UnlearntWatch, best_accuracy
from orchestrator.spec.sweep_spec import load_spec
from tests.support import runners
from tests.support.work_graph import smoke_graph

FLOOR = 0.1


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return smoke_graph(tmp_path_factory.mktemp("watch"))


def _done(state: SweepState, task_id: str, acc: float | None, losses=(), split: str = "train") -> None:
    """`task_id` done with `acc` on every test set and `losses` as its training loss per epoch (the step
    series `<split>_loss`, as `work.curve_steps` names them; "llrt" for head-only epochs)."""
    metrics = {} if acc is None else {f"eval.{s}.acc": acc for s in ("nocue", "cue", "randcue", "randimg")}
    steps = [(f"{split}_acc", epoch, 0.1) for epoch in range(len(losses))] + [
        (f"{split}_loss", epoch, loss) for epoch, loss in reversed(list(enumerate(losses)))]
    state.set_status(task_id, vocab.RUNNING)
    state.set_status(task_id, vocab.DONE, result=TaskResult(vocab.DONE, 1.0, metrics=metrics, steps=steps))


def _watched(graph):
    state = SweepState(graph, keep_results=False)
    said: list[str] = []
    return state, UnlearntWatch(state, FLOOR, said.append), said


def _of(graph, kind: str) -> list:
    return [t for t in graph.tasks.values() if t.kind == kind]


def test_the_first_pretraining_at_chance_is_said_once_with_its_learning_rate(graph):
    """Best accuracy 0.2 = chance + floor: at chance (the claims' floor is inclusive); a second one is not
    said again, the summary at the end counts it."""
    state, watch, said = _watched(graph)
    first, second = _of(graph, vocab.PRETRAIN)
    _done(state, first.id, 0.2)
    assert len(said) == 1 and said[0].startswith(f"warning: {first.id} finished at chance: its best test "
                                                 "accuracy is 20.0% (chance 10%)")
    assert (f"(chance 10%), trained with `pretrain.lr` {first.settings['pretrain.lr']:g} and `pretrain.epochs` "
            f"{first.settings['pretrain.epochs']:g}; the tasks") in said[0]
    assert "Lower the learning rate or train longer;" in said[0]           # no training loss to tell by
    _done(state, second.id, 0.05)
    assert len(said) == 1 and watch.unlearnt == {first.id, second.id}


def test_a_model_above_the_floor_a_path_task_and_a_cached_task_are_not_said(graph):
    state, watch, said = _watched(graph)
    pretrain = _of(graph, vocab.PRETRAIN)
    _done(state, pretrain[0].id, 0.21)                            # learnt something
    state.set_status(pretrain[1].id, vocab.CACHED)                # finished in an earlier run: no result here
    _done(state, _of(graph, vocab.PATH_EVAL)[0].id, 0.1)          # a path task's metrics are not a model's
    _done(state, _of(graph, vocab.FINETUNE)[0].id, None)          # no test accuracy recorded
    assert said == [] and watch.unlearnt == set()


def test_a_fine_tuning_is_said_only_when_its_parent_learnt(graph):
    """A fine-tuning of a model at chance is at chance because of it (its parent's warning said so); one of a
    model that learnt, at chance, names `finetune.lr`."""
    finetune = _of(graph, vocab.FINETUNE)[0]
    parent = next(p for p in finetune.parents if graph.tasks[p].kind == vocab.PRETRAIN)
    state, watch, said = _watched(graph)
    _done(state, parent, 0.1)
    _done(state, finetune.id, 0.1)
    assert len(said) == 1 and parent in said[0] and watch.unlearnt == {parent, finetune.id}
    state, watch, said = _watched(graph)
    _done(state, parent, 0.9)
    _done(state, finetune.id, 0.1)
    assert len(said) == 1 and said[0].startswith(f"warning: {finetune.id} finished at chance")
    assert "`finetune.lr`" in said[0]


@pytest.mark.parametrize("losses, last, advice", [
    ((2.0, 5e9, 1e10), "1e+10", "A training loss over 1.5 times a constant guess's means steps that overshoot: lower the learning rate;"),
    ((2.4, 2.31, 2.30), "2.3", "A training loss near a constant guess's (0.8 to 1.5 times it) means nothing was learnt from the training data"),
    ((2.3, 0.4, 0.05), "0.05", "check the training data against the test sets, not the learning rate;"),
])
def test_the_warning_says_what_the_last_training_loss_tells_of_the_cause(graph, losses, last, advice):
    """Digits: 10 classes, a constant guess's loss ln 10 = 2.30. The last epoch's loss decides, not the first."""
    state, watch, said = _watched(graph)
    _done(state, _of(graph, vocab.PRETRAIN)[0].id, 0.1, losses)
    assert len(said) == 1 and f"its last training loss {last} against a constant guess's 2.30 (ln 10), trained with `pretrain.lr`" in said[0] and advice in said[0]
    state, watch, said = _watched(graph)                           # a head-only (LLRT) curve: `llrt_loss`
    _done(state, _of(graph, vocab.PRETRAIN)[0].id, 0.1, losses, split="llrt")
    assert f"its last training loss {last} against" in said[0] and advice in said[0]


def test_the_best_accuracy_is_the_highest_test_accuracy_of_the_metrics():
    assert best_accuracy({"eval.nocue.acc": 0.1, "eval.cue.acc": 0.9, "eval.cue.loss": 5.0, "train.acc": 1.0}) == 0.9
    assert best_accuracy({"eval.nocue.loss": 1.0}) is None
    assert best_accuracy({"eval.nocue.acc": float("nan"), "eval.cue.acc": 0.3}) == 0.3


def test_a_run_says_it_while_it_goes_before_its_summary(tmp_path, monkeypatch):
    """`run_sweep` watches its tasks: with every trained model at chance (`runners.at_chance`) the story of
    the run says so when the first pretraining ends, before the `finished in` line. Tasks run one by one in
    this process, as a trial runs them (`schedule.run_task`), without Ray."""
    def run_graph(state, layout, ctx, **kw):
        while (task_id := state.ready.first()) is not None:
            task = ctx.graph.tasks[task_id]
            state.set_status(task_id, vocab.RUNNING, started_at=0.0)
            result = schedule.run_task(task, ctx, {p: ctx.graph.tasks[p].kind for p in task.parents})
            state.set_status(task_id, vocab.DONE, result=result, duration_s=result.duration_s)

    monkeypatch.setattr(sweep, "_connect", lambda *a: None)
    monkeypatch.setattr(sweep.preflight, "check_cluster", lambda *a, **k: None)
    monkeypatch.setattr(sweep, "read_cluster", lambda *a, **k: ClusterView(visible={"CPU": 2}))
    monkeypatch.setattr(sweep, "run_graph", run_graph)
    spec = load_spec(None, ["seeds=[0]", f"storage={tmp_path}", "name=chance", "mlflow.enabled=false"])
    logged: list[str] = []
    sweep.run_sweep(spec, runner=runners.name("at_chance"), report=False, log=logged.append)
    said = [i for i, line in enumerate(logged) if "finished at chance" in line]
    assert len(said) == 1 and logged[said[0]].startswith("warning: pretrain-")
    assert said[0] < next(i for i, line in enumerate(logged) if line.startswith("finished in"))


def test_a_fine_tuning_whose_loss_adds_the_invariance_term_gets_no_loss_diagnosis(tmp_path):
    """CBFT's training loss is the cross-entropy plus lam x its invariance term: a constant guess's loss says
    nothing of it, so its warning gives the plain advice and no loss; naive's loss is compared."""
    from orchestrator.graph.dag import build_graph
    from tests.conftest import write_spec

    graph = build_graph(load_spec(write_spec(tmp_path, seeds=[3], finetune={"methods": ["naive", "cbft"]})))
    for method, compared in (("cbft", False), ("naive", True)):
        finetune = next(t for t in _of(graph, vocab.FINETUNE) if t.labels.get("method") == method)
        parent = next(p for p in finetune.parents if graph.tasks[p].kind == vocab.PRETRAIN)
        state, watch, said = _watched(graph)
        _done(state, parent, 0.9)
        _done(state, finetune.id, 0.1, (2.0, 5.0))
        assert len(said) == 1 and ("its last training loss 5 against" in said[0]) == compared
        assert ("Lower the learning rate or train longer;" in said[0]) != compared
