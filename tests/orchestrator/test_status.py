"""`mmc-sweep status DIR`: per-kind progress read from storage alone (the stored plan, done.json
markers, the tasks table), on a partial sweep, a finished one, with --watch, and on a wrong
directory. The plan is the one written when the run started: status never re-plans."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
import socket
import subprocess
import time

import pandas as pd
import pytest

from orchestrator import cli, status, vocab
from orchestrator.results import outputs, plan, tables
from orchestrator.run import progress as progress_lib
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.storage.lock import sweep_lock
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
    with sweep_lock(layout):        # a run is going on
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


def test_a_sweep_without_a_plan_is_counted_from_its_stored_spec(sweep, capsys):
    """plan.parquet gone: the plan of the stored spec.yaml is rebuilt (and said so); a spec.yaml that
    cannot be planned any more is refused with exit 2 naming plan.parquet."""
    layout, graph, directory = sweep
    layout.storage.delete(layout.plan_file())
    finish(layout, list(graph.tasks.values())[:2])
    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert "plan.parquet is missing or unreadable; the plan of the stored spec.yaml was rebuilt" in out
    assert rows_of(out)["total"] == {"planned": len(graph), "finished": 2, "failed": 0, "skipped": 0,
                                     "remaining": len(graph) - 2}
    layout.storage.write_bytes(layout.spec_file(), layout.storage.read_bytes(layout.spec_file()) + b"\nbogus_key: 1\n")
    assert cli.main(["status", directory]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "has no plan.parquet, and its spec.yaml cannot be planned again" in err and "Traceback" not in err


def test_finished_tasks_whose_outputs_were_damaged_count_as_remaining(sweep, capsys):
    """status verifies what it reports: a checkpoint truncated after its task finished is named, and
    the task counts as remaining (the next run recomputes it)."""
    layout, graph, directory = sweep
    task = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN)
    blob = b"weights" * 100
    layout.storage.write_bytes(layout.task_file(task.kind, task.id, "model.safetensors"), blob)
    name = layout.task_file(task.kind, task.id, "model.safetensors")[len(layout.root) + 1:]
    marker = {"version": outputs.MARKER_VERSION, "task_id": task.id, "kind": task.kind,
              "files": {name: hashlib.sha256(blob).hexdigest()}, "sizes": {name: len(blob)},
              "tables": [], "metrics": {}, "meta": {}, "finished_at": time.time()}
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())
    assert cli.main(["status", directory]) == 0
    assert rows_of(capsys.readouterr().out)["pretrain"]["finished"] == 1
    layout.storage.write_bytes(layout.task_file(task.kind, task.id, "model.safetensors"), blob[:-1])
    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert rows_of(out)["pretrain"]["finished"] == 0 and rows_of(out)["pretrain"]["remaining"] == 2
    assert "1 finished task(s) no longer verify" in out and f"{task.id}: size mismatch" in out
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), b'{"version": 3, "task_id": ')  # torn
    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert rows_of(out)["pretrain"]["remaining"] == 2, out
    assert "1 finished task(s) no longer verify" in out and f"{task.id}: " in out and "is unreadable" in out, out


def test_finished_tasks_a_run_set_aside_are_named_and_count_as_remaining(sweep, capsys):
    """A run sets aside the markers of tasks made from a parent that runs again (`run/cache.py`); until it
    takes them back or recomputes them, status counts them as remaining and says why, not as never run."""
    layout, graph, directory = sweep
    tasks = [t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN][:2]
    finish(layout, tasks)
    for task in tasks:
        tables.write_fragment(layout, vocab.TASKS, task.id, [{
            "task_id": task.id, "kind": task.kind, "status": vocab.FINISHED, "parents": list(task.parents)}])
    outputs.set_aside(layout, tasks[0].kind, tasks[0].id)
    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert rows_of(out)["pretrain"]["finished"] == 1 and rows_of(out)["pretrain"]["remaining"] == 1, out
    assert "1 finished task(s) set aside, counted as remaining" in out and tasks[0].id in out, out
    assert "no longer verify" not in out, out
    assert status.status_snapshot(layout)["set_aside"] == [tasks[0].id]
    outputs.invalidate(layout, tasks[1].kind, tasks[1].id)      # finished once, marker gone, not set aside
    assert status.status_snapshot(layout)["set_aside"] == [tasks[0].id]


def test_the_json_names_every_set_aside_task_where_the_text_names_five(sweep, capsys):
    """`status --json` is for scripts: `set_aside` lists all of them, not the five the text line names."""
    layout, graph, directory = sweep
    tasks = [t for t in graph.tasks.values() if t.kind in (vocab.PRETRAIN, vocab.FINETUNE, vocab.PATH_EVAL)][:7]
    assert len(tasks) == 7
    finish(layout, tasks)
    for task in tasks:
        tables.write_fragment(layout, vocab.TASKS, task.id, [{
            "task_id": task.id, "kind": task.kind, "status": vocab.FINISHED, "parents": list(task.parents)}])
        outputs.set_aside(layout, task.kind, task.id)
    assert cli.main(["status", directory, "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["set_aside"]) == sorted(t.id for t in tasks)


@pytest.fixture()
def held(sweep):
    """A run holds the sweep (its `run.lock`, this process's) for the test: status shows it as going on."""
    with sweep_lock(sweep[0]):
        yield


def test_not_a_sweep_directory(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "not a sweep directory (no spec.yaml)" in capsys.readouterr().err


def progress(layout, task, epoch: int, epochs: int, started_at: float, updated_at: float, start_epoch: int = 0):
    """What a running training task leaves after `epoch` finished epochs (orchestrator.run.progress)."""
    record = {"version": progress_lib.PROGRESS_VERSION, "task_id": task.id, "kind": task.kind, "epochs": epochs,
              "epoch": epoch, "start_epoch": start_epoch, "started_at": started_at, "updated_at": updated_at,
              "loss": 0.5, "acc": 0.8, "epoch_s": 10.0}
    layout.storage.write_bytes(layout.progress_file(task.kind, task.id), json.dumps(record).encode())


def test_running_tasks_show_their_epoch_elapsed_time_and_eta_and_failures_their_reason(sweep, held, capsys):
    """Mid-run, from another terminal: the running training tasks with epoch k/N, elapsed time and ETA
    (from their progress.json), the failed ones with the first line of their error, and an ETA of the
    sweep from the durations of the finished tasks; the same as one JSON object with --json."""
    layout, graph, directory = sweep
    by_kind = {k: [t for t in graph.tasks.values() if t.kind == k] for k in vocab.TASK_KINDS}
    pretrains, finetunes = by_kind["pretrain"], by_kind["finetune"]
    now = time.time()
    finish(layout, pretrains)
    for task in pretrains:                      # their rows: 20 s each, one after the other
        tables.write_fragment(layout, vocab.TASKS, task.id, [{
            "task_id": task.id, "kind": task.kind, "status": vocab.FINISHED, "parents": [], "duration_s": 20.0,
            "cached": False, "started_at": pd.Timestamp(now - 100, unit="s", tz="UTC"),
            "finished_at": pd.Timestamp(now - 80, unit="s", tz="UTC")}])
    tables.write_fragment(layout, vocab.TASKS, finetunes[0].id, [{
        "task_id": finetunes[0].id, "kind": "finetune", "status": vocab.FAILED, "parents": [pretrains[0].id],
        "error": "RuntimeError: boom\nTraceback (most recent call last): ...",
        "finished_at": pd.Timestamp(now - 600, unit="s", tz="UTC")}])
    progress(layout, finetunes[1], epoch=3, epochs=10, started_at=now - 30, updated_at=now - 1)
    progress(layout, finetunes[0], epoch=1, epochs=10, started_at=now - 900, updated_at=now - 899)  # before it failed

    snap = status.status_snapshot(layout, now=now)
    assert [r["task_id"] for r in snap["running"]] == [finetunes[1].id]
    run = snap["running"][0]
    assert (run["epoch"], run["epochs"], run["elapsed_s"]) == (3, 10, 30.0)
    assert run["eta_s"] == pytest.approx(7 * 29 / 3 - 1, abs=0.2)   # 7 epochs at 29 s / 3, the last ended 1 s ago
    assert snap["failed"] == [{"task_id": finetunes[0].id, "kind": "finetune", "error": "RuntimeError: boom"}]
    assert snap["eta_s"] is not None and snap["eta_s"] > run["eta_s"] / 2
    n_finetune = len(finetunes)
    assert snap["counts"]["finetune"] == {"planned": n_finetune, "finished": 0, "failed": 1, "skipped": 0,
                                          "remaining": n_finetune - 1}     # the running one remains
    # the rest at the pretrains' mean (20 s), the running one its own ETA, shared by the pretrains' overlap
    waiting = len(graph) - len(pretrains) - 2
    at_once = 20.0 * len(pretrains) / 20.0
    assert snap["eta_s"] == pytest.approx((20.0 * waiting + run["eta_s"]) / max(1.0, at_once), abs=0.2)

    assert cli.main(["status", directory]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"{finetunes[1].id}\s+epoch 3/10\s+\d+s elapsed\s+ETA \d+m?\d*s\s+loss 0\.500", out), out
    assert f"{finetunes[0].id}  RuntimeError: boom" in out and "failed (1" in out
    assert re.search(r"% finished; ETA ~\d", out)

    assert cli.main(["status", directory, "--json"]) == 1
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["counts"] == snap["counts"] and parsed["running"][0]["task_id"] == finetunes[1].id
    assert parsed["failed"][0]["error"] == "RuntimeError: boom" and parsed["directory"] == layout.root


def test_a_stopped_sweep_shows_no_task_running_and_says_how_to_resume(sweep, capsys):
    """After Ctrl-C (the run freed its lock), a training task's progress.json stays as it was: status shows
    the sweep as stopped, the task as interrupted at its epoch, nothing as running and no ETA, rather than
    a run whose elapsed time keeps growing."""
    layout, graph, directory = sweep
    pretrains = [t for t in graph.tasks.values() if t.kind == "pretrain"]
    now = time.time()
    finish(layout, pretrains[:1])
    tables.write_fragment(layout, vocab.TASKS, pretrains[0].id, [{
        "task_id": pretrains[0].id, "kind": "pretrain", "status": vocab.FINISHED, "parents": [], "duration_s": 20.0,
        "cached": False, "started_at": pd.Timestamp(now - 300, unit="s", tz="UTC"),
        "finished_at": pd.Timestamp(now - 280, unit="s", tz="UTC")}])
    progress(layout, pretrains[1], epoch=276, epochs=300, started_at=now - 102, updated_at=now - 52)

    snap = status.status_snapshot(layout, now=now)
    assert snap["running"] == [] and snap["stopped"] and not snap["live_run"] and snap["eta_s"] is None
    assert [(r["task_id"], r["epoch"], r["epochs"]) for r in snap["interrupted"]] == [(pretrains[1].id, 276, 300)]
    assert "elapsed_s" not in snap["interrupted"][0] and snap["last_progress_s_ago"] == 52.0
    assert snap["counts"]["pretrain"]["remaining"] == len(pretrains) - 1

    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert "stopped: no run holds this sweep (last progress 52s ago); rerun the same `mmc-sweep run` command to " \
           "resume" in out, out
    assert "running training tasks" not in out and "elapsed" not in out and "ETA ~" not in out, out
    interrupted = rf"interrupted training tasks \(1\):\n  {pretrains[1].id}\s+epoch 276/300\s+\(last epoch 52s ago\)"
    assert re.search(interrupted, out), out


def test_watch_ends_once_no_run_holds_the_sweep(sweep):
    """The run is stopped (Ctrl-C: its lock is freed) right after the first refresh: --watch shows the stopped
    sweep once and returns, where it refreshed until killed before."""
    layout, graph, _ = sweep
    pretrain = next(t for t in graph.tasks.values() if t.kind == "pretrain")
    now = time.time()
    progress(layout, pretrain, epoch=3, epochs=300, started_at=now - 30, updated_at=now - 1)
    run = sweep_lock(layout)
    run.__enter__()

    class Stream(list):
        def write(self, text):
            self.append(text)
            if "% finished" in text and self.count_of("% finished") == 1:
                run.__exit__(None, None, None)          # the run stops
            assert self.count_of("% finished") <= 3, "--watch kept refreshing a stopped sweep"

        def count_of(self, needle):
            return "".join(self).count(needle)

        def flush(self):
            pass

        def isatty(self):
            return False

    stream = Stream()
    assert status.print_status(layout, watch=True, interval_s=0.01, stream=stream) == 0
    text = "".join(stream)
    assert stream.count_of("% finished") == 2 and text.count("stopped: no run holds this sweep") == 1
    assert text.count("running training tasks (1)") == 1 and "interrupted training tasks (1)" in text


def ended_pid() -> int:
    """The pid of a process of this machine that has ended (and was reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def lock_of(pid: int, host: str | None = None, renewed_s_ago: float | None = 0.0) -> bytes:
    """A `run.lock` as a driver writes it (orchestrator/storage/lock.py): this host's unless `host` is
    given; with a 60 s lease renewed `renewed_s_ago` seconds ago, or without a lease (None)."""
    lock = {"pid": pid, "host": host or socket.gethostname(), "started_at": time.time() - 3600}
    if renewed_s_ago is not None:
        lock.update(lease_s=60.0, renewed_at=time.time() - renewed_s_ago)
    return json.dumps(lock).encode()


@pytest.mark.parametrize("content, holds", [
    (None, False),                                                   # no run.lock: a run that ended freed it
    (lambda: lock_of(ended_pid()), False),                           # a killed driver's, on this machine
    (lambda: lock_of(os.getpid()), True),                            # a live driver's
    (lambda: lock_of(1, host="elsewhere"), True),                    # another machine's, its lease live
    (lambda: lock_of(1, host="elsewhere", renewed_s_ago=3600), False),   # ... its lease long expired
    (lambda: lock_of(1, host="elsewhere", renewed_s_ago=None), True),    # ... without a lease: never stale
    (lambda: b"", True),                                             # being written
    (lambda: b"not a lock", True),                                   # garbled: status cannot tell
], ids=["none", "killed", "live", "remote-live", "remote-expired", "remote-no-lease", "empty", "garbled"])
def test_a_run_holds_the_sweep_while_its_lock_has_a_holder_not_provably_gone(sweep, content, holds):
    """By the lock's own rule (`lock.holder_gone`): what status calls stopped, a new run could take over."""
    layout = sweep[0]
    if content is not None:
        layout.storage.write_bytes(layout.lock_file(), content())
    assert status.run_holds(layout) is holds


def test_watch_with_json_prints_one_object_per_refresh(sweep):
    layout, graph, _ = sweep
    tasks = list(graph.tasks.values())
    finish(layout, tasks[:5])

    class Stream(list):
        def write(self, text):
            self.append(text)
            if text.startswith("{") and len(self.objects()) == 1:
                finish(layout, tasks[5:])

        def objects(self):
            return [json.loads(line) for line in "".join(self).splitlines() if line.strip()]

        def flush(self):
            pass

        def isatty(self):
            return False

    stream = Stream()
    with sweep_lock(layout):        # a run is going on
        assert status.print_status(layout, watch=True, interval_s=0.01, stream=stream, as_json=True) == 0
    assert [o["total"]["finished"] for o in stream.objects()] == [5, len(tasks)]


def test_plan_json_is_the_plan_for_scripts(capsys):
    graph = build_graph(load_spec(SMOKE_SPEC))
    assert cli.main(["plan", str(SMOKE_SPEC), "--json", "--list"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sweep"] == "smoke" and out["tasks"] == len(graph) and out["kinds"] == graph.counts()
    assert out["pairs"] == {"cue~nocue": 1, "pretrained~ft:naive": 1, "pretrained~ft:cbft": 1}
    assert [t["task_id"] for t in out["task_list"]] == list(graph.tasks)
    assert out["task_list"][-1]["parents"] == list(list(graph.tasks.values())[-1].parents)
    assert cli.main(["plan", str(SMOKE_SPEC), "--json", "--resolved",
                     "mlflow.tracking_uri=http://user:secret@127.0.0.1:5000"]) == 0
    text = capsys.readouterr().out
    resolved = json.loads(text)
    assert resolved["name"] == "smoke" and resolved["pretrain"]["epochs"] == 1 and "secret" not in text
    assert resolved["mlflow"]["tracking_uri"] == "http://***@127.0.0.1:5000"


def test_a_training_task_keeps_its_progress_json_up_to_date(sweep):
    """What status reads is what a training task writes: on start (or resume) its starting epoch, after
    every epoch the epochs done, of the epochs it plans (LP-FT: head epochs, then the others)."""
    import torch

    from orchestrator.run import work
    from orchestrator.run.resume import ResumeLog, attach_storage_resume
    from tasks.train import EpochReport

    layout, graph, _ = sweep
    task = next(t for t in graph.tasks.values() if t.kind == "pretrain")
    assert progress_lib.planned_epochs(task) == task.settings["pretrain.epochs"]
    lpft = dataclasses.replace(task, kind="finetune", config={"method": "lpft"},
                               settings={"finetune.epochs": 3, "finetune.llrt_epochs": 2})
    assert progress_lib.planned_epochs(lpft) == 5
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    attach_storage_resume(env, layout, task.kind, task.id, ResumeLog(lambda epoch: "train"), epochs=4)
    assert env.resume_state() is None
    record = progress_lib.read_progress(layout, task.kind, task.id)
    assert (record["epoch"], record["start_epoch"], record["epochs"]) == (0, 0, 4)
    model = torch.nn.Linear(2, 2)
    for epoch in range(2):
        env.on_epoch(EpochReport(epoch, 0.5 - 0.1 * epoch, 0.7, 0.05, 0.01, model, torch.optim.SGD(model.parameters(), 0.1)))
    record = progress_lib.read_progress(layout, task.kind, task.id)
    assert (record["epoch"], record["epochs"], record["loss"]) == (2, 4, 0.4)
    with sweep_lock(layout):        # its run holds the sweep
        assert status.status_snapshot(layout)["running"][0]["epoch"] == 2

    assert env.resume_state().epoch == 2                    # a restarted attempt starts at its saved epoch
    record = progress_lib.read_progress(layout, task.kind, task.id)
    assert (record["epoch"], record["start_epoch"]) == (2, 2)


def test_the_run_draws_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    """`mmc-sweep run`'s progress: on a terminal one line redrawn in place behind a bar (ended before
    anything else is printed); in a log or a pipe (`ray job logs`) one plain line per update."""
    class Stream(list):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def write(self, text):
            self.append(text)

        def flush(self):
            pass

        def isatty(self):
            return self.tty

    tty = Stream(True)
    line = progress_lib.TerminalLine(tty)
    line.show("1/4 finished", 0.25)
    line.show("4/4 finished", 1.0, final=True)
    assert tty[0].startswith("\r\x1b[2K[#####...............] 1/4 finished") and not tty[0].endswith("\n")
    assert tty[1].startswith("\r\x1b[2K[####################] 4/4") and tty[1].endswith("\n")
    monkeypatch.setenv("COLUMNS", "80")        # an 80-column terminal: cut in the middle, the ETA kept
    narrow = Stream(True)
    progress_lib.TerminalLine(narrow).show("[  88.1s] 1/3 finished | done 1 | cached 0 | running 1 | pending 1 | "
                                           "failed 0 | skipped 0 | ETA 12s", 0.3)
    assert narrow[0].endswith("ETA 12s") and len(narrow[0]) <= len("\r\x1b[2K") + 79 and "…" in narrow[0]
    pipe = Stream(False)
    progress_lib.TerminalLine(pipe).show("1/4 finished", 0.25)
    assert "".join(pipe) == "1/4 finished\n"


def test_a_pass_over_many_tasks_gives_each_task_the_answer_it_gets_alone(sweep, monkeypatch):
    """`outputs.verify_many` (status's pass, in forked processes from `PARALLEL_FROM` tasks) answers
    every task as `verify_outputs` does: finished, damaged checkpoint, garbled marker, no marker."""
    layout, graph, _ = sweep
    tasks = sorted(graph.tasks.values(), key=lambda t: t.id)
    finish(layout, tasks[:-1])
    blob = b"weights" * 100
    damaged = next(t for t in tasks[:-1] if t.kind == vocab.PRETRAIN)
    path = layout.task_file(damaged.kind, damaged.id, "model.safetensors")
    layout.storage.write_bytes(path, blob[:-1])
    name = path[len(layout.root) + 1:]
    marker = {"version": outputs.MARKER_VERSION, "task_id": damaged.id, "kind": damaged.kind,
              "files": {name: hashlib.sha256(blob).hexdigest()}, "sizes": {name: len(blob)},
              "tables": [], "metrics": {}, "meta": {}, "finished_at": time.time()}
    layout.storage.write_bytes(layout.marker_file(damaged.kind, damaged.id), json.dumps(marker).encode())
    garbled = tasks[1] if tasks[1] is not damaged else tasks[2]
    layout.storage.write_bytes(layout.marker_file(garbled.kind, garbled.id), b"{not json")
    alone = {t.id: outputs.verify_outputs(layout, t.kind, t.id) for t in tasks}
    assert alone[damaged.id] == (False, f"size mismatch in {path}") and alone[tasks[-1].id] == (False, "no done.json")
    fine = next(t for t in tasks[:-1] if t not in (damaged, garbled))
    assert alone[garbled.id] == (False, f"{layout.marker_file(garbled.kind, garbled.id)} is unreadable (JSONDecodeError)")
    assert alone[fine.id] == (True, "")
    pairs = [(t.kind, t.id) for t in tasks]
    assert outputs.verify_many(layout, pairs) == alone
    monkeypatch.setattr(outputs, "PARALLEL_FROM", 2)      # the forked processes, on a small sweep
    assert outputs.verify_many(layout, pairs, {}, processes=3) == alone


@pytest.fixture()
def compacted(sweep):
    """The smoke sweep finished by the synthetic runner (markers, fragments, `tasks` rows) and compacted,
    as a run leaves it: (layout, graph, DIR)."""
    import torch

    from orchestrator.results import compact
    from orchestrator.run import recording, work
    from tests.support import runners

    layout, graph, directory = sweep
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    for task in graph.tasks.values():
        result = work.execute(task, runners.name("synthetic"), env)
        assert result.status == vocab.DONE, result.error
        tables.write_fragment(layout, vocab.TASKS, task.id, [recording.task_row(
            task, vocab.FINISHED, spec_hash="test", rev=None, duration_s=result.duration_s)])
    compact.compact(layout)
    return layout, graph, directory


def test_a_finished_compacted_sweep_is_verified_without_reading_the_tasks_table(compacted, capsys, monkeypatch):
    """Every task of a compacted sweep counts as finished (its fragments' rows verified through their
    part's sha256), the `tasks` table is read only when some task has not finished, and a part damaged
    afterwards makes each task whose rows it holds count as remaining, named as damaged."""
    layout, graph, directory = compacted
    reads = []
    read_table = tables.read_table
    monkeypatch.setattr(tables, "read_table", lambda layout_, table: reads.append(table) or read_table(layout_, table))
    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert rows_of(out)["total"]["finished"] == len(graph) and "100% finished" in out and reads == []
    assert status.CHECKED in out                               # what was checked is said
    part = next(n for n in layout.storage.listdir(layout.table_dir(vocab.BARRIERS)) if n.startswith("part-"))
    path = layout.storage.local_path(layout.storage.join(layout.table_dir(vocab.BARRIERS), part))
    path.write_bytes(path.read_bytes()[:-10])                  # truncated after the sweep finished
    assert cli.main(["status", directory]) == 0
    out = capsys.readouterr().out
    path_evals = sorted(t.id for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL)
    assert rows_of(out)[vocab.PATH_EVAL] == {"planned": len(path_evals), "finished": 0, "failed": 0, "skipped": 0,
                                             "remaining": len(path_evals)}
    assert rows_of(out)["total"]["finished"] == len(graph) - len(path_evals) and reads == [vocab.TASKS]
    assert f"{len(path_evals)} finished task(s) no longer verify" in out
    assert f"{path_evals[0]}: missing {layout.fragment(vocab.BARRIERS, path_evals[0])}" in out


def test_the_quick_read_of_markers_refuses_and_answers_as_a_task_alone_does(compacted, monkeypatch, capsys):
    """`verify_many` reads local markers with one `open` (`_LocalMarkers`), yet answers as `verify_outputs`
    does: a link as the marker or as the task's directory is refused (LinkError), a FIFO is not a
    marker (and does not block), a marker listing another task's file is refused, and a task id that
    also occurs in the fixed part of its outputs' names is still matched exactly."""
    from orchestrator.storage.layout import LinkError

    layout, graph, directory = compacted
    tasks = sorted(graph.tasks.values(), key=lambda t: t.id)
    pairs = [(t.kind, t.id) for t in tasks]
    fifo, foreign = [t for t in tasks if t.kind == vocab.PATH_EVAL][:2]
    marker = layout.storage.local_path(layout.marker_file(fifo.kind, fifo.id))
    marker.unlink()
    os.mkfifo(marker)
    other = json.loads(layout.storage.read_bytes(layout.marker_file(foreign.kind, foreign.id)))
    theirs = layout.fragment(vocab.PATHS, fifo.id)[len(layout.root) + 1:]
    other["files"][theirs] = other["files"].pop(layout.fragment(vocab.PATHS, foreign.id)[len(layout.root) + 1:])
    layout.storage.write_bytes(layout.marker_file(foreign.kind, foreign.id), json.dumps(other).encode())
    odd = "results"                                 # occurs in "results/paths/results.parquet" twice
    rel = layout.fragment(vocab.PATHS, odd)[len(layout.root) + 1:]
    data = b"rows"
    layout.storage.write_bytes(layout.fragment(vocab.PATHS, odd), data)
    layout.storage.write_bytes(layout.marker_file(vocab.PATH_EVAL, odd), json.dumps({
        "version": outputs.MARKER_VERSION, "task_id": odd, "kind": vocab.PATH_EVAL, "sizes": {rel: len(data)},
        "files": {rel: hashlib.sha256(data).hexdigest()}, "tables": [], "metrics": {}, "meta": {}}).encode())
    pairs.append((vocab.PATH_EVAL, odd))
    alone = {task_id: outputs.verify_outputs(layout, kind, task_id) for kind, task_id in pairs}
    assert alone[fifo.id] == (False, f"{layout.marker_file(fifo.kind, fifo.id)} is not a regular file")
    assert alone[foreign.id][1].endswith("which is not an output of this task") and alone[odd] == (True, "")
    assert sum(ok for ok, _ in alone.values()) == len(pairs) - 2
    assert outputs.verify_many(layout, pairs) == alone
    monkeypatch.setattr(outputs, "PARALLEL_FROM", 2)
    assert outputs.verify_many(layout, pairs, {}, processes=2) == alone
    monkeypatch.setattr(outputs, "PARALLEL_FROM", 20_000)
    victim = next(t for t in tasks if t.kind == vocab.PRETRAIN)
    task_dir = layout.storage.local_path(layout.task_dir(victim.kind, victim.id))
    moved = task_dir.with_name(task_dir.name + "-moved")
    task_dir.rename(moved)
    task_dir.symlink_to(moved)                              # the task's directory is a link
    for verify in (lambda: outputs.verify_outputs(layout, victim.kind, victim.id), lambda: outputs.verify_many(layout, pairs)):
        with pytest.raises(LinkError):
            verify()
    task_dir.unlink()
    moved.rename(task_dir)
    marker = layout.storage.local_path(layout.marker_file(victim.kind, victim.id))
    marker.rename(marker.with_name("elsewhere.json"))
    marker.symlink_to(marker.with_name("elsewhere.json"))   # the marker itself is a link
    for verify in (lambda: outputs.verify_outputs(layout, victim.kind, victim.id), lambda: outputs.verify_many(layout, pairs)):
        with pytest.raises(LinkError):
            verify()
    assert cli.main(["status", directory]) == cli.EXIT_BAD_INPUT       # one line, naming the link
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(marker) in err and len(err.splitlines()) == 1, err


def test_status_of_a_finished_sweep_imports_neither_torch_nor_the_spec(sweep):
    """`status` of a finished sweep reads the plan and the markers: torch, scipy and the spec (whose
    settings live in `tasks/`) are ~1.3 s of a fresh process's imports and none of it is needed."""
    import subprocess
    import sys

    layout, graph, directory = sweep
    finish(layout, graph.tasks.values())
    probe = ("import sys; from orchestrator import cli; code = cli.main(['status', sys.argv[1]]); "
             "heavy = [m for m in ('torch', 'scipy', 'tasks', 'orchestrator.spec.schema') if m in sys.modules]; "
             "print('HEAVY', heavy); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", probe, directory], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    first = next(iter(graph.tasks.values()))         # a failed task: its row is read (the schemas, lazily)
    fail(layout, [first])
    os.remove(layout.storage.local_path(layout.marker_file(first.kind, first.id)))
    proc = subprocess.run([sys.executable, "-c", probe, directory], capture_output=True, text=True, timeout=120)
    assert f"{first.id}  RuntimeError: boom" in proc.stdout, proc.stdout + proc.stderr


def test_status_and_the_tables_of_a_sweep_are_read_without_torch(sweep):
    """`mmc-sweep status`, `open_sweep(DIR).table(...)` and `tables.read_table` load no torch (nor scipy):
    the tables' columns come from `tasks/settings/`, which imports neither (importing torch was ~2 s of a
    10^5-task sweep's 3 s `status`). Checked in a fresh interpreter in which importing torch fails."""
    import subprocess
    import sys

    layout, graph, directory = sweep
    fail(layout, list(graph.tasks.values())[:2])
    finish(layout, list(graph.tasks.values())[2:])
    code = f"""
import sys
sys.modules["torch"] = sys.modules["scipy"] = None          # any import of them raises ImportError
from orchestrator import cli, open_sweep, vocab
from orchestrator.results import tables
from orchestrator.storage.layout import open_sweep_dir
code = cli.main(["status", {directory!r}])
rows = [len(open_sweep({directory!r}).table(t)) for t in vocab.TABLES]
assert rows == [len(tables.read_table(open_sweep_dir({directory!r}), t)) for t in vocab.TABLES]
print("rows", rows, "exit", code)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rows [2, 0, 0, 0, 0] exit 1" in out.stdout, out.stdout[-2000:]      # 2 failed: exit 1
    assert rows_of(out.stdout)["total"]["finished"] == len(graph.tasks) - 2


def test_a_retried_task_counts_by_its_latest_row_and_skipped_tasks_make_exit_1(sweep, capsys):
    """A task skipped in one run (its parent failed) and failed when run again counts as failed with the
    later error; a sweep whose only problem is skipped tasks still exits 1, and the failed header says
    how many were skipped."""
    layout, graph, directory = sweep
    finetunes = [t for t in graph.tasks.values() if t.kind == vocab.FINETUNE]
    retried, skipped = finetunes[0], finetunes[1]
    tables.write_fragment(layout, vocab.TASKS, retried.id, [
        {"task_id": retried.id, "kind": retried.kind, "status": vocab.SKIPPED, "parents": list(retried.parents)},
        {"task_id": retried.id, "kind": retried.kind, "status": vocab.FAILED, "parents": list(retried.parents),
         "error": "RuntimeError: second attempt"}])
    path_eval = next(t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL)
    fail(layout, [skipped, path_eval], vocab.SKIPPED)
    snap = status.status_snapshot(layout)
    assert snap["counts"][vocab.FINETUNE][vocab.FAILED] == 1 and snap["counts"][vocab.FINETUNE][vocab.SKIPPED] == 1
    assert snap["failed"] == [{"task_id": retried.id, "kind": vocab.FINETUNE, "error": "RuntimeError: second attempt"}]
    assert "failed (1; 2 skipped because of them):" in status.format_status(snap)
    layout.storage.delete(layout.fragment(vocab.TASKS, retried.id))
    assert cli.main(["status", directory]) == 1                     # skipped only: still worth exit 1
    rows = rows_of(capsys.readouterr().out)
    assert rows["total"][vocab.SKIPPED] == 2 and rows["total"][vocab.FAILED] == 0


def test_the_sweep_eta_takes_each_kinds_mean_duration_over_the_tasks_not_started(sweep, held):
    """Finished one after the other (no overlap): the tasks not started take their kind's mean duration of
    the finished ones (two path evaluations of 30 s: 30 s each), kinds with none finished the mean of all
    finished; the sum is the ETA."""
    layout, graph, _ = sweep
    by_kind = {k: [t for t in graph.tasks.values() if t.kind == k] for k in vocab.TASK_KINDS}
    first = [*by_kind[vocab.PRETRAIN], by_kind[vocab.FINETUNE][0], *by_kind[vocab.PATH_EVAL][:2]]
    now = time.time()
    start = now - 1000.0
    seconds = {vocab.PRETRAIN: 20.0, vocab.FINETUNE: 60.0, vocab.PATH_EVAL: 30.0}
    durations = {t.id: seconds[t.kind] for t in first}
    finish(layout, first)
    for task in first:
        tables.write_fragment(layout, vocab.TASKS, task.id, [{
            "task_id": task.id, "kind": task.kind, "status": vocab.FINISHED, "parents": list(task.parents),
            "duration_s": durations[task.id], "cached": False, "started_at": pd.Timestamp(start, unit="s", tz="UTC"),
            "finished_at": pd.Timestamp(start + durations[task.id], unit="s", tz="UTC")}])
        start += durations[task.id]
    overall = sum(durations.values()) / len(durations)
    rest = [t for t in graph.tasks.values() if t.id not in durations]
    expected = sum(seconds.get(t.kind, overall) for t in rest)
    assert {vocab.FINETUNE, vocab.PATH_EVAL, vocab.ALIGN} <= {t.kind for t in rest}
    assert status.status_snapshot(layout, now=now)["eta_s"] == pytest.approx(expected, abs=0.1)


# ----- the sweep's ETA and the printed table, from hand-made rows (no sweep directory) ----------------

def _rows(*tasks: tuple) -> pd.DataFrame:
    """`tasks` rows of finished tasks: (kind, started at, finished at) in seconds, optionally `cached`."""
    return pd.DataFrame([{"task_id": f"t{i}", "kind": kind, "status": vocab.FINISHED, "duration_s": end - start,
                          "cached": bool(cached[0]) if cached else False,
                          "started_at": pd.Timestamp(start, unit="s", tz="UTC"),
                          "finished_at": pd.Timestamp(end, unit="s", tz="UTC")}
                         for i, (kind, start, end, *cached) in enumerate(tasks)])


def test_the_sweep_eta_shares_the_work_by_how_many_of_the_finished_tasks_ran_at_once():
    """Four path evaluations of 10 s in [0, 15] (two from 0 s, two from 5 s) ran 40 s of work in 15 s: 8/3 at
    once. Six more of 10 s: 60 s of work, at 8/3 at once 22.5 s."""
    rows = _rows(("path_eval", 0, 10), ("path_eval", 0, 10), ("path_eval", 5, 15), ("path_eval", 5, 15))
    assert status._sweep_eta(rows, ["path_eval"] * 6, []) == pytest.approx(60 / (40 / 15), abs=0.05)


def test_the_sweep_eta_reads_the_overlap_of_the_latest_finished_tasks_only():
    """Fifty tasks one after the other long ago, then the latest RECENT_TASKS all at once (10 s each, within
    the same 10 s): the work left is shared by RECENT_TASKS tasks at once, as the latest ones ran."""
    old = [("path_eval", 10 * i, 10 * i + 10) for i in range(50)]
    recent = [("path_eval", 1000, 1010)] * status.RECENT_TASKS
    rows = _rows(*recent, *old)                      # the table's order is not the order they finished in
    assert status._sweep_eta(rows, ["path_eval"] * 100, []) == pytest.approx(100 * 10 / status.RECENT_TASKS, abs=0.05)


def test_the_sweep_eta_takes_the_mean_of_a_kinds_computed_tasks_not_its_cached_ones():
    """Path evaluations of 10, 20 and 60 s, one after the other (one at a time): their mean is 30 s (the median
    would be 20 s); cached rows (a task found finished, 0 s) take no part. One left: 30 s."""
    rows = _rows(("path_eval", 0, 10), ("path_eval", 10, 30), ("path_eval", 30, 90),
                 ("path_eval", 90, 90, True), ("path_eval", 90, 90, True))
    assert status._sweep_eta(rows, ["path_eval"], []) == pytest.approx(30.0, abs=0.05)


def test_the_sweep_eta_of_running_tasks_is_their_own_eta_or_their_kinds_mean_shared_by_the_running_ones():
    """No overlap in the finished rows (one at a time): still, four tasks running at once share the work of the
    four (100 s each: 100 s); a running task without an ETA of its own takes its kind's mean (50 s); with
    nothing left, the ETA is 0."""
    rows = _rows(("finetune", 0, 50), ("pretrain", 50, 60))
    running = [{"kind": "pretrain", "eta_s": 100.0} for _ in range(4)]
    assert status._sweep_eta(rows, [], running) == pytest.approx(100.0, abs=0.05)
    assert status._sweep_eta(rows, [], [{"kind": "finetune", "eta_s": None}]) == pytest.approx(50.0, abs=0.05)
    assert status._sweep_eta(None, [], []) == 0.0


def _snapshot(counts: dict, failed: int = 0, eta_s=None) -> dict:
    total = {k: sum(c[k] for c in counts.values()) for k in status.COLUMNS}
    return {"counts": counts, "total": total, "finished_fraction": total["finished"] / max(1, total["planned"]),
            "running": [], "eta_s": eta_s,
            "failed": [{"task_id": f"task{i:02d}", "kind": "finetune", "error": "RuntimeError: boom"} for i in range(failed)]}


def _count(planned=0, finished=0, failed=0, skipped=0, remaining=0) -> dict:
    return {"planned": planned, "finished": finished, "failed": failed, "skipped": skipped, "remaining": remaining}


def test_the_table_shows_only_the_kinds_the_plan_holds_and_no_eta_once_nothing_remains():
    snap = _snapshot({"pretrain": _count(2, 2), "finetune": _count(0), "path_eval": _count(3, 3)}, eta_s=0.0)
    text = status.format_status(snap)
    assert set(rows_of(text)) == {"pretrain", "path_eval", "total"}
    assert "100% finished" in text and "ETA" not in text
    going = _snapshot({"pretrain": _count(2, 1, remaining=1)}, eta_s=90.0)
    assert "50% finished; ETA ~1m30s" in status.format_status(going)


@pytest.mark.parametrize("n_failed, shown, more", [(10, 10, None), (12, 10, "  ... and 2 more")])
def test_the_table_names_the_first_ten_failed_tasks_and_counts_the_rest(n_failed, shown, more):
    snap = _snapshot({"finetune": _count(n_failed, failed=n_failed)}, failed=n_failed)
    lines = status.format_status(snap).splitlines()
    assert sum(line.startswith("  task") for line in lines) == shown == status.FAILED_SHOWN
    assert [line for line in lines if "more" in line] == ([more + " (`mmc-sweep status --json`, or the `tasks` table)"]
                                                          if more else [])


@pytest.mark.parametrize("n, more", [(5, []), (7, ["  ... and 2 more"])])
def test_damaged_tasks_are_named_up_to_five_and_the_rest_counted(n, more):
    lines = status.format_damaged({f"t{i}": "size mismatch" for i in range(n)}).splitlines()
    assert lines[0].startswith(f"{n} finished task(s) no longer verify")
    assert lines[1:] == [f"  - t{i}: size mismatch" for i in range(5)] + more


@pytest.mark.parametrize("n, names", [(0, None), (5, "t0, t1, t2, t3, t4"), (7, "t0, t1, t2, t3, t4 and 2 more")])
def test_set_aside_tasks_are_counted_all_and_named_up_to_five_and_the_rest_counted(n, names):
    """The line names the first five set-aside tasks and counts the rest; its count is all of them."""
    text = status.format_set_aside([f"t{i}" for i in range(n)])
    if names is None:
        assert text == ""
        return
    assert text.startswith(f"{n} finished task(s) set aside, counted as remaining:"), text
    assert text.endswith(f"recomputes it: {names}"), text


def test_a_running_tasks_times_are_since_its_start_and_since_its_last_epoch():
    """elapsed: since the attempt started (60 s); the last epoch: since the record was updated (5 s)."""
    record = {"epoch": 2, "epochs": 4, "start_epoch": 0, "started_at": 940.0, "updated_at": 995.0, "loss": 0.5, "acc": 0.9}
    run = status._running(record, "t", "pretrain", now=1000.0)
    assert (run["elapsed_s"], run["updated_s_ago"]) == (60.0, 5.0)
    assert run["eta_s"] == pytest.approx(2 * 55 / 2 - 5)   # 2 epochs left at 27.5 s each, the last ended 5 s ago


def test_a_report_counts_a_finished_task_whose_done_marker_was_deleted_as_not_run(compacted, capsys):
    """A task's directory (its done.json with it) deleted after the sweep finished: `status` counts it as
    remaining, and so must the report, whose `tasks` table still says finished: its banner is not the green
    "complete" one and names the task, as for a damaged checkpoint."""
    layout, graph, directory = compacted
    task = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN)
    layout.storage.delete(layout.marker_file(task.kind, task.id))
    assert cli.main(["report", directory]) == 0
    capsys.readouterr()
    page = Path(layout.report_file("report.html")).read_text()
    assert 'class="banner ok"' not in page and "the sweep is complete" not in page
    assert f"<code>{task.id}</code>: no done.json: its outputs are gone since it finished" in page
    assert f"{len(graph) - 1} of {len(graph)} tasks finished" in page


def test_status_into_a_pipe_whose_reader_left_is_no_error(sweep, monkeypatch):
    """`mmc-sweep status DIR | head`: the reader leaves, the write fails with BrokenPipeError; that is exit 0 as
    for `plan --list | head`, not "cannot read the status" with exit 2."""
    layout, graph, directory = sweep

    def reader_left(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(status, "print_status", reader_left)
    monkeypatch.setattr(os, "dup2", lambda fd, fd2: None)        # leave pytest's stdout where it is
    assert cli.main(["status", directory]) == cli.EXIT_OK
