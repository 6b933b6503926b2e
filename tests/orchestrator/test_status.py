"""`mmc-sweep status DIR`: per-kind progress read from storage alone (the stored plan, done.json
markers, the tasks table), on a partial sweep, a finished one, with --watch, and on a wrong
directory. The plan is the one written when the run started: status never re-plans."""

from __future__ import annotations

import json
import re
import time

import pytest

from orchestrator import cli, status, vocab
from orchestrator.results import outputs, plan, tables
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import dump_spec, load_spec
from tests.conftest import SMOKE_SPEC


@pytest.fixture()
def sweep(tmp_path):
    """The smoke sweep's directory as a run leaves it when it starts (spec.yaml, plan.parquet), no
    task run yet: (layout, graph, DIR)."""
    spec = load_spec(SMOKE_SPEC).with_top(storage=str(tmp_path / "runs"))
    layout = SweepLayout(Storage(spec.storage), spec.name)
    graph = build_graph(spec)
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    plan.write_plan(layout, graph)
    return layout, graph, str(tmp_path / "runs" / spec.name)


def finish(layout, tasks) -> None:
    """What a finished task leaves: its done.json marker (the table row is the driver's)."""
    for task in tasks:
        marker = {"version": outputs.MARKER_VERSION, "task_id": task.id, "kind": task.kind,
                  "files": {}, "tables": [], "metrics": {}, "meta": {}, "finished_at": time.time()}
        layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())


def fail(layout, tasks, status_=vocab.FAILED) -> None:
    for task in tasks:
        tables.write_fragment(layout, vocab.TASKS, task.id, [{
            "task_id": task.id, "kind": task.kind, "status": status_, "parents": list(task.parents),
            "error": "RuntimeError: boom" if status_ == vocab.FAILED else None}])


def rows_of(text: str) -> dict[str, dict[str, int]]:
    """The per-kind rows of the printed table, by column name."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and (parts[0] in vocab.TASK_KINDS or parts[0] == "total") and len(parts) == 6:
            out[parts[0]] = dict(zip(status.COLUMNS, map(int, parts[1:])))
    return out


def test_partial_sweep_counts_by_kind(sweep, capsys):
    layout, graph, directory = sweep
    by_kind = {k: [t for t in graph.tasks.values() if t.kind == k] for k in vocab.TASK_KINDS}
    finish(layout, by_kind["pretrain"] + by_kind["finetune"][:1])
    fail(layout, by_kind["finetune"][1:])                    # one failed fine-tuning ...
    fail(layout, by_kind["path_eval"][:2], vocab.SKIPPED)    # ... and two skipped descendants

    code = cli.main(["status", directory])
    out = capsys.readouterr().out
    assert code == 1                                         # failures are worth an exit status
    rows = rows_of(out)
    counts = graph.counts()
    assert rows["pretrain"] == {"planned": counts["pretrain"], "finished": counts["pretrain"],
                                "failed": 0, "skipped": 0, "remaining": 0}
    assert rows["finetune"] == {"planned": counts["finetune"], "finished": 1,
                                "failed": counts["finetune"] - 1, "skipped": 0, "remaining": 0}
    assert rows["path_eval"] == {"planned": counts["path_eval"], "finished": 0, "failed": 0,
                                 "skipped": 2, "remaining": counts["path_eval"] - 2}
    assert rows["midpoint"]["remaining"] == counts["midpoint"]
    total = rows["total"]
    assert total["planned"] == len(graph) and sum(total.values()) == 2 * len(graph)
    done = counts["pretrain"] + 1
    assert f"{100 * done / len(graph):.0f}% finished" in out
    assert directory in out


def test_partial_sweep_without_failures_exits_0(sweep, capsys):
    layout, graph, directory = sweep
    finish(layout, list(graph.tasks.values())[:3])
    assert cli.main(["status", directory]) == 0
    assert rows_of(capsys.readouterr().out)["total"]["finished"] == 3


def test_finished_sweep(sweep, capsys):
    layout, graph, directory = sweep
    first = next(iter(graph.tasks.values()))
    fail(layout, [first])               # failed once, then rerun: the marker wins
    finish(layout, graph.tasks.values())
    assert cli.main(["status", directory, "--watch", "--interval", "0.1"]) == 0  # returns at once
    out = capsys.readouterr().out
    rows = rows_of(out)
    for kind, n in graph.counts().items():
        assert rows[kind] == {"planned": n, "finished": n, "failed": 0, "skipped": 0, "remaining": 0}
    assert "100% finished" in out and "#" * 30 in out


def test_watch_refreshes_until_the_sweep_finishes(sweep):
    """The rest of the sweep finishes right after the first snapshot is printed (an event, not a
    timer); --watch prints again and returns once nothing is left."""
    layout, graph, _ = sweep
    tasks = list(graph.tasks.values())
    finish(layout, tasks[:5])

    class Stream(list):
        def write(self, text):
            self.append(text)
            if "% finished" in text and len(self.snapshots()) == 1:
                finish(layout, tasks[5:])

        def snapshots(self):
            return re.findall(r"(\d+)% finished", "".join(self))

        def flush(self):
            pass

        def isatty(self):
            return False

    stream = Stream()
    code = status.print_status(layout, watch=True, interval_s=0.01, stream=stream)
    assert code == 0
    snapshots = stream.snapshots()
    assert snapshots == [str(round(100 * 5 / len(tasks))), "100"]


def test_status_reports_the_stored_plan_not_a_new_one(sweep, capsys, monkeypatch):
    """A sweep written before the spec (or a code default) changed: status counts the tasks that run
    planned, even though planning its spec.yaml today would give another graph."""
    layout, graph, directory = sweep
    other = load_spec(SMOKE_SPEC, ["seeds=[0, 1, 2]"]).with_top(storage=layout.storage.root)
    assert len(build_graph(other)) != len(graph)
    layout.storage.write_bytes(layout.spec_file(), dump_spec(other).encode())

    def no_planning(*args, **kwargs):
        raise AssertionError("status re-planned the sweep")

    monkeypatch.setattr("orchestrator.graph.dag.build_graph", no_planning)
    monkeypatch.setattr("orchestrator.spec.sweep_spec.load_spec", no_planning)
    finish(layout, list(graph.tasks.values())[:2])
    assert cli.main(["status", directory]) == 0
    assert rows_of(capsys.readouterr().out)["total"] == {"planned": len(graph), "finished": 2, "failed": 0,
                                                         "skipped": 0, "remaining": len(graph) - 2}


def test_a_sweep_without_a_plan_is_named(sweep, capsys):
    layout, _, directory = sweep
    layout.storage.delete(layout.plan_file())
    assert cli.main(["status", directory]) == cli.EXIT_BAD_INPUT
    assert "no plan.parquet" in capsys.readouterr().err


def test_not_a_sweep_directory(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "not a sweep directory (no spec.yaml)" in capsys.readouterr().err
