"""An aligned path whose alignment is the identity is not evaluated again: it reuses the linear path's
rows (issue: duplicate evaluation). Run in-process, task by task, without Ray."""
import json

import pytest

from orchestrator import vocab
from orchestrator.results import outputs, tables
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.run.work import run_here


def run_inline(graph, layout):
    """Every task of `graph` in topological order, in this process; their results by id."""
    results = {}
    for task_id, task in graph.tasks.items():
        parent_kinds = {p: graph.tasks[p].kind for p in task.parents}
        results[task_id] = run_here(task, layout, "real", None, parent_kinds)
        assert results[task_id].status == vocab.DONE, results[task_id].error
    return results


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("aligned")
    spec = load_spec("sweeps/smoke.yaml", [f"storage={json.dumps(str(root))}", "finetune.methods=[llrt]",
                                           "paths.pairs=[pretrained~ft, cue~nocue]", "paths.kinds=[linear, aligned]",
                                           "paths.finetuned_kinds=[linear, aligned]", "paths.alignments=[activation]"])
    graph = build_graph(spec)
    layout = SweepLayout(Storage(spec.storage), spec.name)
    run_inline(graph, layout)
    return graph, layout


def _paths(graph, pair_prefix):
    found = {}
    for task in graph.tasks.values():
        if task.kind == vocab.PATH_EVAL and task.labels["pair_type"].startswith(pair_prefix):
            found[task.labels["path_kind"]] = task
    return found


def test_identity_alignment_reuses_the_linear_rows(sweep):
    graph, layout = sweep
    paths = _paths(graph, "pretrained~ft:llrt")
    aligned, linear = paths[vocab.ALIGNED], paths[vocab.LINEAR]
    align_id = aligned.config["via"]
    assert outputs.read_marker(layout, vocab.ALIGN, align_id)["meta"]["identity"] is True   # llrt keeps the backbone
    marker = outputs.read_marker(layout, vocab.PATH_EVAL, aligned.id)
    assert marker["meta"].get("reused_rows_of") == linear.id
    a = tables.read_fragment(layout, vocab.PATHS, aligned.id).sort_values(["alpha", "eval_set"])
    b = tables.read_fragment(layout, vocab.PATHS, linear.id).sort_values(["alpha", "eval_set"])
    for column in ("loss", "acc", "agree_a", "agree_b"):
        assert a[column].tolist() == b[column].tolist()
    assert set(a["path_kind"]) == {vocab.ALIGNED} and set(a["alignment"]) == {"activation"}


def test_a_real_permutation_is_evaluated(sweep):
    graph, layout = sweep
    aligned = _paths(graph, vocab.CUE_NOCUE)[vocab.ALIGNED]
    assert outputs.read_marker(layout, vocab.ALIGN, aligned.config["via"])["meta"]["identity"] is False
    assert "reused_rows_of" not in outputs.read_marker(layout, vocab.PATH_EVAL, aligned.id)["meta"]
