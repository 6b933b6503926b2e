"""What the orchestrator hands to the science code: the training data of a quadratic midpoint (both
endpoints' training sets, each cued at its own proportion), the images activation matching correlates
(clean training images), the images that re-estimate BatchNorm along a path (clean training images),
and which state is endpoint A, B, the midpoint or the aligned B.

Each runner of `orchestrator/run/work.py` runs on the smoke sweep's tasks with the `tasks/` function it
calls replaced by one that records its arguments; endpoint states are distinct random models. The
expected data are loaded here from the *endpoints'* own task configs, not from the runner's."""
from __future__ import annotations

import pytest
import torch

from orchestrator import vocab
from orchestrator.run import work
from orchestrator.graph.dag import build_graph
from orchestrator.spec.sweep_spec import load_spec
from tasks import align as align_lib
from tasks import paths as paths_lib
from tasks.data import EVAL_SETS, DataSettings, load_cue_data
from tests.conftest import write_spec
from tests.support.work_graph import data_of, distinct_states, record, run, same_state



@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return build_graph(load_spec(write_spec(tmp_path_factory.mktemp("wiring"))))


@pytest.fixture
def states(graph, monkeypatch):
    return distinct_states(graph, monkeypatch)






def tasks_of(graph, kind: str, **where) -> list:
    found = [t for t in graph.tasks.values() if t.kind == kind and all(t.config.get(k) == v for k, v in where.items())]
    assert found, (kind, where)
    return found


def test_the_midpoint_trains_on_both_endpoints_training_sets_each_at_its_cue_proportion(graph, states, monkeypatch):
    seen = record(monkeypatch, paths_lib, "train_midpoint")
    for task in tasks_of(graph, vocab.MIDPOINT):
        id_a, id_b = task.config["endpoints"]
        run(work.run_midpoint, task)
        _model, state_a, state_b, train = seen["args"][:4]
        assert same_state(state_a, states[id_a]) and same_state(state_b, states[id_b])
        a, b = (data_of(graph.tasks[e].config["data"]).train for e in (id_a, id_b))
        assert bool((a.x != b.x).any()), "the endpoints' training sets must differ for this test to tell them apart"
        assert len(train) == len(a) + len(b)
        in_order = [(a, b), (b, a)]
        assert any(torch.equal(train.x, torch.cat([p.x, q.x])) and torch.equal(train.y, torch.cat([p.y, q.y]))
                   for p, q in in_order)


def test_activation_matching_sees_the_clean_training_images(graph, states, monkeypatch):
    seen = record(monkeypatch, align_lib, "align")
    for task in tasks_of(graph, vocab.ALIGN):
        id_a, id_b = task.config["endpoints"]
        run(work.run_align, task)
        model_a, model_b, method, x = seen["args"][:4]
        assert method == task.config["method"]
        assert same_state(model_a.state_dict(), states[id_a]) and same_state(model_b.state_dict(), states[id_b])
        data = data_of(task.config["data"])
        samples = task.config["align"]["samples"]
        assert bool(data.cued[:samples].any()), "cued images among the first samples, or the test cannot tell"
        assert torch.equal(x, data.train_clean.x[:samples].float())


@pytest.mark.parametrize("path_kind", [vocab.LINEAR, vocab.QUADRATIC, vocab.ALIGNED])
def test_a_path_runs_from_a_to_b_through_its_via_with_bn_from_clean_training_images(graph, states, monkeypatch,
                                                                                      path_kind):
    seen = record(monkeypatch, paths_lib, "evaluate_path")
    monkeypatch.setattr(work, "_is_identity", lambda env, align_id: False)
    clean = load_cue_data(DataSettings(cue_proportion=0.9, seed=0)).train_clean.x   # clean images: any p, any seed
    for task in tasks_of(graph, vocab.PATH_EVAL, path_kind=path_kind):
        cfg = task.config
        id_a, id_b = cfg["endpoints"]
        run(work.run_path_eval, task)
        _model, state_a, state_b = seen["args"][:3]
        kwargs = seen["kwargs"]
        assert same_state(state_a, states[id_a])
        assert same_state(state_b, states[cfg["via"]] if path_kind == vocab.ALIGNED else states[id_b])
        if path_kind == vocab.QUADRATIC:
            assert same_state(kwargs["midpoint"], states[cfg["via"]])
        else:
            assert kwargs.get("midpoint") is None
        assert torch.equal(kwargs["bn_data"], clean)
        assert kwargs["sets"] is not None and set(kwargs["sets"]) == set(EVAL_SETS)
