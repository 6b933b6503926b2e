"""Which tasks a run finds finished (`orchestrator.run.cache`): outputs that verify, made from outputs that do."""
from __future__ import annotations

from orchestrator import vocab
from orchestrator.graph.dag import Graph
from tests.support.hand_graph import small_graph, task
from orchestrator.run import cache
from orchestrator.run.state import SweepState



def test_verified_tasks_are_cached_and_only_broken_outputs_are_invalidated(monkeypatch):
    """A task whose outputs verify is cached; one whose stored output is broken is invalidated (and said so); one
    that never finished (no done.json) has nothing to invalidate."""
    graph, (a, b, ft, path) = small_graph()
    invalidated, logged = [], []
    monkeypatch.setattr(cache.outputs, "invalidate", lambda layout, kind, task_id: invalidated.append(task_id))
    state = SweepState(graph)
    verified = {a.id: (True, ""), b.id: (False, "size mismatch in x"), ft.id: (False, "no done.json"),
                path.id: (False, "no done.json")}
    cache.mark_cached(state, layout=None, verified=verified, log=logged.append)
    assert [t for t, s in state.states.items() if s.status == vocab.CACHED] == [a.id]
    assert invalidated == [b.id] and logged == [f"recomputing {b.id}: its stored output is not valid (size mismatch in x)"]
    assert cache.unfinished_kinds(graph, verified) == ["pretrain", "finetune", "path_eval"]
    assert cache.unfinished_kinds(graph, {**verified, b.id: (True, "")}) == ["finetune", "path_eval"]


def test_a_task_made_from_one_that_runs_again_runs_again_down_the_graph():
    """A pretrained model that lost its checkpoint is recomputed: its fine-tuning and every path made from either
    run again too (their inputs are gone; the new checkpoint may differ in the last bits), transitively; the
    other pretrained model and what only it made stay finished."""
    a, b = task("pretrain", "a"), task("pretrain", "b")
    ft = task("finetune", "ft", a)
    ft_path = task("path_eval", "ftp", a, ft)
    other = task("midpoint", "mb", b, b)
    ft_b = task("path_eval", "ftb", ft, b)                      # made from `a` through `ft` only
    graph = Graph({t.id: t for t in (a, b, ft, ft_path, other, ft_b)})
    verified = {t: (True, "") for t in graph.tasks}
    verified[a.id] = (False, "missing tasks/pretrain/a/model.safetensors")
    out = cache.made_from_reruns(graph, verified)
    assert {t for t, (ok, _) in out.items() if ok} == {b.id, other.id}
    assert out[ft.id] == (False, f"made from the outputs of {a.id}, which runs again")
    assert out[ft_path.id][1] == f"made from the outputs of {a.id}, which runs again"     # its first parent that does
    assert out[ft_b.id] == (False, f"made from the outputs of {ft.id}, which runs again")   # down the graph
    assert verified[ft.id] == (True, "")                                                  # a new dict
    assert cache.made_from_reruns(graph, {**verified, a.id: (False, "no done.json")})[ft.id][0] is False


def test_tasks_made_from_a_rerun_are_set_aside_now_and_said_in_one_line(monkeypatch):
    """Their markers are set aside at the start of the run (an interrupted run must not leave them to verify
    beside the recomputed parent), with one line naming the first five and counting the rest; the broken
    parent's marker is invalidated."""
    root = task("pretrain", "root")
    children = [task("finetune", f"c{i}", root) for i in range(7)]
    graph = Graph({t.id: t for t in (root, *children)})
    invalidated, aside, logged = [], [], []
    monkeypatch.setattr(cache.outputs, "invalidate", lambda layout, kind, task_id: invalidated.append(task_id))
    monkeypatch.setattr(cache.outputs, "set_aside", lambda layout, kind, task_id: aside.append(task_id))
    verified = cache.made_from_reruns(graph, {root.id: (False, "sha256 mismatch in x"),
                                              **{c.id: (True, "") for c in children}})
    state = SweepState(graph)
    cache.mark_cached(state, layout=None, verified=verified, log=logged.append)
    assert state.count(vocab.CACHED) == 0 and invalidated == [root.id] and aside == [c.id for c in children]
    assert logged[1] == (f"checking again 7 finished tasks made from the outputs of tasks that run again, once those "
                         f"have run: kept where made from the same bits, else recomputed: "
                         f"{', '.join(c.id for c in children[:5])} and 2 more")


CHANGED = {"task": None}     # the task `other_bits` gives other bits (a recompute on another CPU's kernels)


def other_bits(task, env):
    """The synthetic runner; for the task `CHANGED` names, accuracies a thousandth higher."""
    from tests.support import runners

    out = runners.synthetic(task, env)
    if task.id == CHANGED["task"]:
        out.tables[vocab.EVALUATIONS] = [{**r, "acc": r["acc"] + 1e-3} for r in out.tables[vocab.EVALUATIONS]]
    return out


def test_a_rerun_recomputes_what_a_recomputed_model_made_only_where_its_bits_changed(tmp_path, monkeypatch):
    """A finished sweep; a pretrained model's marker lost, so it runs again. Recomputed with the same bits, every
    task made from it is taken back (nothing else runs); recomputed with other bits (another CPU's kernels), the
    tasks made from it directly run again (here every one of them: a path reads both its endpoints)."""
    from orchestrator import knobs
    from orchestrator.graph.dag import build_graph
    from orchestrator.results import outputs
    from orchestrator.run import sweep
    from orchestrator.run.capacity import ClusterView
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.storage.layout import Storage, SweepLayout
    from tests.orchestrator.results.test_compact import inline_run_graph

    monkeypatch.setattr(sweep, "_connect", lambda *a: None)
    monkeypatch.setattr(sweep.preflight, "check_cluster", lambda *a, **k: None)
    monkeypatch.setattr(sweep, "read_cluster", lambda *a, **k: ClusterView(visible={"CPU": 2}))
    monkeypatch.setattr(sweep, "run_graph", inline_run_graph(None))
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")
    monkeypatch.setitem(CHANGED, "task", None)
    spec = load_spec(None, ["seeds=[0]", f"storage={tmp_path}", "name=remade"])
    graph = build_graph(spec)

    def run(log=lambda line: None):
        return sweep.run_sweep(spec, runner=f"{__name__}:other_bits", report=False, log=log)
    run()
    layout = SweepLayout(Storage(str(tmp_path)), "remade")
    model = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN and len(graph.descendants(t.id)) > 3)
    made_from = graph.descendants(model.id)

    logged = []
    outputs.invalidate(layout, model.kind, model.id)
    again = run(logged.append)
    assert (again.counts[vocab.DONE], again.counts[vocab.CACHED]) == (1, len(graph) - 1)
    assert any(line.startswith(f"checking again {len(made_from)} finished tasks") for line in logged), logged

    CHANGED["task"] = model.id
    outputs.invalidate(layout, model.kind, model.id)
    changed = run()
    direct = set(graph.children(model.id))
    assert (changed.counts[vocab.DONE], changed.counts[vocab.CACHED]) == (1 + len(direct), len(graph) - 1 - len(direct))
    assert all(outputs.verify_outputs(layout, graph.tasks[t].kind, t)[0] for t in made_from)


def test_a_bundled_task_records_that_it_was_made_from_its_own_parents_and_is_taken_back_by_them(tmp_path, monkeypatch):
    """Two path evaluations of different pairs in one trial (a bundle: its payload names every parent of both): each
    records in `meta.inputs` the digests of its own parents alone, so once set aside it is taken back by them, in
    whatever bundle it comes back (before, each recorded the bundle's parents and never matched a task's own)."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.results import outputs
    from orchestrator.run import schedule
    from orchestrator.spec.sweep_spec import load_spec
    from orchestrator.storage.layout import Storage, SweepLayout
    from tests.support import runners

    spec = load_spec(None, ["seeds=[0]", f"storage={tmp_path}", "name=bundled"])
    graph = build_graph(spec)
    layout = SweepLayout(Storage(str(tmp_path)), "bundled")
    ctx = schedule.TrialContext(graph=graph, storage_uri=str(tmp_path), sweep="bundled", runner=runners.name("synthetic"))
    paths = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL]
    bundle = [paths[0], next(t for t in paths if set(t.parents) != set(paths[0].parents))]
    for t in graph.tasks.values():                           # every model first, one trial each (parents first)
        if t.kind != vocab.PATH_EVAL:
            assert schedule.run_task(t, ctx).status == vocab.DONE, t.id
    monkeypatch.setattr(schedule.tune, "report", lambda result: None)
    kinds = {p: graph.tasks[p].kind for t in bundle for p in t.parents}
    schedule._trial({"task_ids": [t.id for t in bundle],
                     schedule.PAYLOAD_KEY: schedule.TrialPayload(tuple(bundle), kinds)}, ctx)
    for t in bundle:
        marker = outputs.read_marker(layout, t.kind, t.id)
        assert set(marker["meta"]["inputs"]) == set(t.parents), t.id
        outputs.set_aside(layout, t.kind, t.id)
        assert outputs.take_back(layout, t.kind, t.id, {p: graph.tasks[p].kind for p in t.parents}) is not None, t.id


def test_a_task_made_from_two_models_runs_again_when_either_one_does():
    """A path between two models is made from both: when the second endpoint runs again (and the first does not),
    the path is not finished either, whatever the order of its parents."""
    a, b = task("pretrain", "a"), task("pretrain", "b")
    path = task("path_eval", "ab", a, b)
    graph = Graph({t.id: t for t in (a, b, path)})
    verified = {a.id: (True, ""), b.id: (False, "missing tasks/pretrain/b/model.safetensors"), path.id: (True, "")}
    out = cache.made_from_reruns(graph, verified)
    assert out[path.id] == (False, f"made from the outputs of {b.id}, which runs again")
    assert out[a.id] == (True, "")
