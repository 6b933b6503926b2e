"""Compaction of result fragments into part files: same rows before and after, idempotent, crash-safe
(an exception or a SIGKILL at every step, then a rerun: every row exactly once), newer fragments win,
parts merge, object stores (pyarrow's mock file system), the CLI, and sweeps that compact when they end
or are interrupted and resume afterwards without recomputing anything."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

from orchestrator import cli, knobs, vocab
from orchestrator.results import compact, manifest, outputs, tables
from orchestrator.results.schemas import SCHEMA_VERSION, SCHEMA_VERSION_KEY, SCHEMAS
from orchestrator.run import recording, schedule, sweep, work
from orchestrator.run.capacity import ClusterView
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import dump_spec, load_spec
from tests.support import runners

REPO = Path(__file__).resolve().parents[3]
NAME = "compacted"


def write_sweep(layout: SweepLayout, graph) -> None:
    """Every task's outputs as the synthetic runner writes them, and its `tasks` row (no Ray)."""
    for task in graph.tasks.values():
        env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
        result = work.execute(task, runners.name("synthetic"), env)
        assert result.status == vocab.DONE, result.error
        row = recording.task_row(task, vocab.FINISHED, spec_hash="test", rev=None, duration_s=result.duration_s)
        tables.write_fragment(layout, vocab.TASKS, task.id, [row])


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Two seeds of the default graph (100 tasks), written once; each test works on a copy."""
    directory = tmp_path_factory.mktemp("template")
    spec = load_spec(None, ["seeds=[0,1]", f"storage={directory}", f"name={NAME}"])
    graph = build_graph(spec)
    layout = SweepLayout(Storage(str(directory)), NAME)
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    write_sweep(layout, graph)
    return directory, graph, snapshot(layout)


@pytest.fixture
def swept(template, tmp_path):
    directory, graph, before = template
    shutil.copytree(directory, tmp_path / "store")
    return SweepLayout(Storage(str(tmp_path / "store")), NAME), graph, before


def snapshot(layout) -> dict[str, pd.DataFrame]:
    return {t: tables.read_table(layout, t) for t in vocab.TABLES}


def assert_same_rows(layout, before: dict[str, pd.DataFrame]) -> None:
    for table, expected in before.items():
        got = tables.read_table(layout, table)
        assert got["task_id"].tolist() == expected["task_id"].tolist(), table
        pd.testing.assert_frame_equal(got, expected, obj=table)


def fragments(layout, table: str) -> list[str]:
    return list(manifest.list_table(layout, table).fragments)


def assert_all_verified(layout, graph) -> None:
    for task_id, task in graph.tasks.items():
        assert outputs.verify_outputs(layout, task.kind, task_id) == (True, ""), task_id
        assert tables.verify_fragment(layout, vocab.TASKS, task_id), task_id


# ----- compaction ------------------------------------------------------------------------------

def test_compaction_keeps_every_row_and_leaves_one_file_per_table(swept):
    layout, graph, before = swept
    assert len(fragments(layout, vocab.TASKS)) == len(graph)
    done = compact.compact(layout)
    assert {t: c.files for t, c in done.items()} == {t: 1 for t in vocab.TABLES}   # one part (manifests: results/_manifests/)
    assert done[vocab.TASKS].absorbed == len(graph) and done[vocab.PATHS].rows == len(before[vocab.PATHS])
    assert all(not fragments(layout, t) for t in vocab.TABLES)
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)       # finished tasks stay finished (outputs.verify_outputs)
    for task_id, task in graph.tasks.items():   # one task's rows, read back from its part
        for table in ([vocab.PATHS, vocab.BARRIERS] if task.kind == vocab.PATH_EVAL else [vocab.TASKS]):
            expected = before[table][before[table]["task_id"] == task_id].reset_index(drop=True)
            pd.testing.assert_frame_equal(tables.read_fragment(layout, table, task_id), expected, check_dtype=False)
    with pytest.raises(FileNotFoundError):
        tables.read_fragment(layout, vocab.PATHS, "path_eval-0000000000000000")


def test_compaction_is_idempotent(swept):
    layout, graph, before = swept
    compact.compact(layout)
    root = Path(layout.root) / "results"
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = compact.compact(layout)
    assert not any(c.changed for c in again.values())
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps
    assert_same_rows(layout, before)


def test_a_run_leaves_fewer_fragments_than_the_threshold_alone(swept, monkeypatch):
    layout, graph, before = swept
    done = compact.compact(layout, min_fragments=len(graph) + 1)
    assert not any(c.changed for c in done.values())
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, str(len(graph)))
    logged = []
    compact.compact_after_run(layout, log=logged.append)
    assert not fragments(layout, vocab.TASKS) and fragments(layout, vocab.EVALUATIONS)   # fewer than len(graph) stay
    assert logged and f"tasks {len(graph)} fragments -> 1 file" in logged[0]
    assert_same_rows(layout, before)


@pytest.mark.parametrize("step", ["part", "manifest", "delete"])
def test_an_exception_at_any_step_loses_and_duplicates_nothing(swept, monkeypatch, step):
    layout, graph, before = swept

    class Boom(Exception):
        pass

    real_manifest, real_delete, deleted = compact._write_manifest, compact._delete_file, []

    def failing_manifest(*args):
        if step == "manifest":
            real_manifest(*args)
        raise Boom

    def failing_delete(fs, path):
        if len(deleted) == 30:
            raise Boom
        deleted.append(path)
        real_delete(fs, path)

    if step == "delete":
        monkeypatch.setattr(compact, "_delete_file", failing_delete)
    else:
        monkeypatch.setattr(compact, "_write_manifest", failing_manifest)
    with pytest.raises(Boom):
        compact.compact(layout)
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    monkeypatch.undo()
    compact.compact(layout)
    assert_same_rows(layout, before)
    assert all(compact.files_per_table(layout)[t] == 1 for t in vocab.TABLES)
    assert not list((Path(layout.root) / "results").rglob("*.tmp-*"))


KILL = """
import os, signal, sys
from orchestrator.results import compact
from orchestrator.storage.layout import Storage, SweepLayout
step, root, name = sys.argv[1:4]
layout = SweepLayout(Storage(root), name)
die = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
if step == "writing":        # in the middle of writing the part
    write = compact._HashingFile.write
    compact._HashingFile.write = lambda self, data: die() if self.tell() > 2000 else write(self, data)
elif step == "part":         # the part written, the manifest not
    compact._write_manifest = die
elif step == "manifest":     # the manifest written, no fragment deleted
    real = compact._write_manifest
    compact._write_manifest = lambda *a: (real(*a), die())
elif step == "delete":       # half of the fragments deleted
    real, n = compact._delete_file, []
    compact._delete_file = lambda fs, path: die() if len(n) == 50 else (n.append(1), real(fs, path))
compact.compact(layout)
"""


@pytest.mark.parametrize("step", ["writing", "part", "manifest", "delete"])
def test_compaction_killed_at_any_step_then_rerun_keeps_every_row_once(swept, step):
    layout, graph, before = swept
    root = str(Path(layout.root).parent)
    proc = subprocess.run([sys.executable, "-c", KILL, step, root, NAME], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    compact.compact(layout)
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    assert all(compact.files_per_table(layout)[t] == 1 for t in vocab.TABLES)
    assert not list((Path(layout.root) / "results").rglob("*.tmp-*"))


def test_a_part_writer_killed_mid_write_leaves_a_file_that_directory_readers_skip_and_compaction_deletes(swept):
    """A SIGKILL while a part is written leaves its truncated temporary file in the table's directory: the reads
    of the directory that docs/ANALYSIS.md shows (pandas, `pyarrow.dataset`) still read the table's rows, each
    once, and the next compaction deletes it."""
    layout, graph, before = swept
    proc = subprocess.run([sys.executable, "-c", KILL, "writing", str(Path(layout.root).parent), NAME], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftover, = (Path(layout.root) / "results").rglob("*.tmp-*")
    with pytest.raises(Exception, match="magic bytes"):
        pq.read_table(leftover)                                # torn: not a Parquet file
    table, directory = leftover.parent.name, leftover.parent
    assert len(pd.read_parquet(directory, dtype_backend="pyarrow")) == len(before[table])
    assert ds.dataset(directory, format="parquet").to_table().num_rows == len(before[table])
    compact.compact(layout)
    assert not leftover.exists()
    assert len(pd.read_parquet(directory)) == len(before[table])


def test_a_task_rerun_after_compaction_wins_and_is_absorbed_next_time(swept):
    layout, graph, before = swept
    compact.compact(layout)
    rerun = next(t for t, task in graph.tasks.items() if task.kind == vocab.PATH_EVAL)
    old = tables.read_fragment(layout, vocab.PATHS, rerun)
    new_rows = [{"pair_type": r.pair_type, "path_kind": r.path_kind, "alpha": r.alpha, "eval_set": r.eval_set,
                 "loss": 99.0, "acc": 0.5} for r in old.itertuples()][:7]
    tables.write_fragment(layout, vocab.PATHS, rerun, new_rows)
    expected = before[vocab.PATHS]
    expected = pd.concat([expected[expected.task_id != rerun],
                          tables.read_fragment(layout, vocab.PATHS, rerun)]).sort_values("task_id", kind="stable")
    got = tables.read_table(layout, vocab.PATHS)
    assert len(got) == len(expected) and (got[got.task_id == rerun]["loss"] == 99.0).all()
    assert got[got.task_id == rerun].shape[0] == 7
    assert manifest.compacted_digest(layout, layout.fragment(vocab.PATHS, rerun)) is not None
    done = compact.compact(layout)[vocab.PATHS]
    assert done.absorbed == 1 and done.files == 1 and done.merged_parts == 1   # the stale part is rewritten
    pd.testing.assert_frame_equal(tables.read_table(layout, vocab.PATHS), expected.reset_index(drop=True))
    assert (tables.read_fragment(layout, vocab.PATHS, rerun)["loss"] == 99.0).all()


def test_many_parts_and_stale_parts_are_merged(swept, monkeypatch):
    layout, graph, before = swept
    monkeypatch.setattr(compact, "MAX_PARTS", 3)
    table, full = vocab.TASKS, before[vocab.TASKS]
    saved = {t: layout.storage.read_bytes(layout.fragment(table, t)) for t in graph.tasks}
    for task_id in saved:
        layout.storage.delete(layout.fragment(table, task_id))
    ids = sorted(saved)
    for i in range(5):                                      # five runs, each compacting its own tasks
        for task_id in ids[i::5]:
            layout.storage.write_bytes(layout.fragment(table, task_id), saved[task_id])
        compact.compact_table(layout, table)
        assert len(manifest.read_manifest(layout, table).parts) <= 3
    pd.testing.assert_frame_equal(tables.read_table(layout, table), full)
    for task_id in ids[:60]:                                # most tasks ran again: the old parts go stale
        row = recording.task_row(graph.tasks[task_id], vocab.FAILED, spec_hash="test", rev=None, error="again")
        tables.write_fragment(layout, table, task_id, [row])
    compact.compact_table(layout, table)
    current = manifest.read_manifest(layout, table)
    live = current.live_rows()
    assert all(live[p] == info.rows for p, info in current.parts.items())   # no part keeps rows that no longer count
    assert compact.files_per_table(layout)[table] == len(current.parts)
    got = tables.read_table(layout, table)
    assert got["task_id"].tolist() == full["task_id"].tolist()
    assert (got.set_index("task_id").loc[ids[:60], "error"] == "again").all()
    assert got.set_index("task_id").loc[ids[60:], "error"].isna().all()


def warned(caplog, text: str) -> bool:
    return any(r.levelname == "WARNING" and text in r.getMessage() for r in caplog.records)


def test_a_corrupt_part_is_not_trusted(swept, caplog):
    layout, graph, before = swept
    compact.compact(layout)
    (name,) = manifest.read_manifest(layout, vocab.BARRIERS).parts
    part = Path(layout.compacted_file(vocab.BARRIERS, name))
    blob = bytearray(part.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    part.write_bytes(bytes(blob))
    got = tables.read_table(layout, vocab.BARRIERS)
    assert warned(caplog, "size or sha256 other than the manifest's")
    expected = before[vocab.BARRIERS]                        # only rows that verify come back from it
    pd.testing.assert_frame_equal(got, expected[expected.task_id.isin(set(got.task_id))].reset_index(drop=True))
    task_id = before[vocab.BARRIERS]["task_id"].iloc[0]
    assert not tables.verify_fragment(layout, vocab.BARRIERS, task_id)
    assert manifest.compacted_digest(layout, layout.fragment(vocab.BARRIERS, task_id)) is None
    assert outputs.verify_outputs(layout, vocab.PATH_EVAL, task_id)[0] is False   # it will be recomputed
    assert tables.verify_fragment(layout, vocab.PATHS, task_id)                   # other tables are fine


def test_an_unreadable_manifest_stops_compaction_and_readers_warn(swept, caplog):
    """With no done.json left to vouch for the parts' rows (`orphan_parts`), nothing is taken from them."""
    layout, graph, before = swept
    compact.compact(layout)
    for task_id in before[vocab.PATHS]["task_id"].unique():
        layout.storage.delete(layout.marker_file(graph.tasks[task_id].kind, task_id))
    layout.storage.write_bytes(manifest.manifest_path(layout, vocab.PATHS), b"not parquet")
    with pytest.raises(compact.CompactionError, match="manifest"):
        compact.compact_table(layout, vocab.PATHS)
    assert tables.read_table(layout, vocab.PATHS).empty
    assert warned(caplog, "manifest")


def test_a_deleted_manifest_never_costs_the_part_its_rows(swept, capsys, caplog):
    """The manifest deleted after compaction (the fragments deleted too): its part is the only copy of the
    rows. Readers leave the part out (which rows count is the manifest's to say) and say why. Compaction and
    a run's repair never take the part for the orphan of a compaction cut short: they write back as a fragment
    the rows of each task that give exactly the fragment its done.json lists (`orphan_parts`), but only when
    every task's marker vouches: while one cannot (here its done.json is gone) they write back nothing (the part
    stays, and fragments beside it would count twice in a glob) and refuse (exit 2, naming it). Once the tasks'
    fragments are back (a run recomputes them), the manifest is rebuilt, the part moved to the quarantine: every
    row once, every output verified."""
    layout, graph, before = swept
    table = vocab.PATHS
    saved = {t: layout.storage.read_bytes(layout.fragment(table, t)) for t in fragments(layout, table)}
    compact.compact(layout)
    (part,) = Path(layout.table_dir(table)).iterdir()
    layout.storage.delete(manifest.manifest_path(layout, table))
    with caplog.at_level("WARNING"):
        assert tables.read_table(layout, table).empty           # readers say why the rows are left out
    assert warned(caplog, f"the manifest of `{table}` is missing, but 1 part file(s) beside it hold rows")
    unvouched = sorted(saved)[0]
    marker = layout.marker_file(graph.tasks[unvouched].kind, unvouched)
    kept = layout.storage.read_bytes(marker)
    layout.storage.delete(marker)
    assert cli.main(["compact", layout.root]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"the manifest of `{table}` is missing, but 1 part file beside it holds rows" in err, err
    assert f"its parts hold the rows of {len(saved)} tasks without a fragment (e.g. {unvouched})" in err, err
    assert fragments(layout, table) == [] and glob_rows(layout, table) == len(before[table])   # none beside the part
    compact.repair(layout, log=lambda *a: None)                # a run's start: warns, deletes nothing
    compact.compact_after_run(layout, log=lambda *a: None, one_part=True)
    assert part.is_file()
    layout.storage.write_bytes(marker, kept)                   # the run recomputed them all
    for task_id, data in saved.items():
        layout.storage.write_bytes(layout.fragment(table, task_id), data)
    done = compact.compact_table(layout, table)
    assert done.rebuilt == len(saved) and done.files == 1 and not part.is_file()
    assert any(p.name.endswith(part.name) for p in (Path(layout.root) / "results" / "_quarantine" / table).iterdir())
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)


def test_rows_of_a_part_without_its_manifest_come_back_only_as_the_bytes_each_marker_lists(swept, capsys):
    """Without a manifest nothing says the part is intact, so each task's marker decides: where one task's rows
    would not give the sha256 its done.json lists (a marker that names other bytes), nothing is written back;
    with every marker vouching, all are, byte for byte; and with every marker vouching, compaction rebuilds
    the manifest in one go and says how many came from the parts. (The `tasks` table, whose rows no marker
    lists, is vouched for by the plan: the next test.)"""
    layout, graph, before = swept
    compact.compact(layout)
    for table in (vocab.EVALUATIONS, vocab.TASKS):
        layout.storage.delete(manifest.manifest_path(layout, table))
    evaluated = sorted(before[vocab.EVALUATIONS]["task_id"].unique())
    doubted = evaluated[0]
    path = layout.marker_file(graph.tasks[doubted].kind, doubted)
    kept = layout.storage.read_bytes(path)
    marker = json.loads(kept)
    name = outputs.relative_path(layout, layout.fragment(vocab.EVALUATIONS, doubted))
    marker["files"][name] = "0" * 64
    layout.storage.write_bytes(path, json.dumps(marker).encode())
    with pytest.raises(compact.CompactionError, match=f"{len(evaluated)} tasks without a fragment \\(e.g. {doubted}\\)"):
        compact.compact_table(layout, vocab.EVALUATIONS)
    assert fragments(layout, vocab.EVALUATIONS) == []          # all or none: nothing beside the part
    layout.storage.write_bytes(path, kept)                   # the marker as the task wrote it
    done = compact.compact_table(layout, vocab.EVALUATIONS)
    assert done.rebuilt == done.from_parts == len(evaluated) and done.files == 1
    assert f"({len(evaluated)} written back from the parts" in compact.summary({vocab.EVALUATIONS: done})
    pd.testing.assert_frame_equal(tables.read_table(layout, vocab.EVALUATIONS), before[vocab.EVALUATIONS])


def test_a_lost_tasks_manifest_brings_back_the_drivers_records_the_plan_vouches_for(swept):
    """The `tasks` manifest deleted after compaction: its part is the only record of how each task ran (no
    run recomputes it: the tasks are cached), and no marker lists its rows. They come back when the plan
    vouches: every row names the plan's kind and parents for its task. One row naming other parents (a
    garbled or foreign record) brings back none of them (all or nothing: fragments beside a part that must
    stay would count twice) and compaction refuses, naming the task; restored, the table reads as before."""
    layout, graph, before = swept
    compact.compact(layout)
    (part,) = Path(layout.table_dir(vocab.TASKS)).iterdir()
    original = part.read_bytes()
    rows = pq.read_table(part)
    doubted = rows.column("task_id")[0].as_py()
    layout.storage.delete(manifest.manifest_path(layout, vocab.TASKS))
    garbled = rows.set_column(rows.schema.get_field_index("parents"), "parents",
                              [[["someone-else"]] + rows.column("parents").to_pylist()[1:]])
    pq.write_table(garbled.replace_schema_metadata(rows.schema.metadata), part)
    with pytest.raises(compact.CompactionError, match="without a fragment"):
        compact.compact_table(layout, vocab.TASKS)
    assert fragments(layout, vocab.TASKS) == [] and doubted in graph.tasks
    part.write_bytes(original)
    done = compact.compact_table(layout, vocab.TASKS)
    assert done.rebuilt == done.from_parts == len(graph.tasks) and done.files == 1
    assert "the driver's records of planned tasks, each naming the plan's kind and parents" in \
        compact.summary({vocab.TASKS: done})
    pd.testing.assert_frame_equal(tables.read_table(layout, vocab.TASKS), before[vocab.TASKS])
    assert glob_rows(layout, vocab.TASKS) == len(before[vocab.TASKS])


def test_a_lost_manifest_writes_back_from_the_part_only_the_tasks_without_a_fragment_and_counts_those(swept):
    """The manifest deleted after compaction and one task recomputed since (its fragment is back): the part's
    rows are written back for the other tasks only, all of them (the one with a fragment does not stop the
    rest), and the summary counts what came from the parts, not every task the parts held."""
    layout, graph, before = swept
    table = vocab.EVALUATIONS
    saved = {t: layout.storage.read_bytes(layout.fragment(table, t)) for t in fragments(layout, table)}
    compact.compact(layout)
    layout.storage.delete(manifest.manifest_path(layout, table))
    recomputed = sorted(saved)[0]
    layout.storage.write_bytes(layout.fragment(table, recomputed), saved[recomputed])
    done = compact.compact_table(layout, table)
    assert (done.rebuilt, done.from_parts) == (len(saved), len(saved) - 1)
    assert f"({len(saved) - 1} written back from the parts" in compact.summary({table: done})
    pd.testing.assert_frame_equal(tables.read_table(layout, table), before[table])
    assert glob_rows(layout, table) == len(before[table])


def test_a_lost_manifest_of_two_parts_writes_back_the_rows_of_both(swept):
    """A table compacted in two steps holds two parts; its manifest deleted, the rows of the tasks of either
    part are written back (every task's done.json vouches), and the table reads as before, each row once."""
    layout, graph, before = swept
    table = vocab.EVALUATIONS
    saved = {t: layout.storage.read_bytes(layout.fragment(table, t)) for t in fragments(layout, table)}
    later = sorted(saved)[: len(saved) // 2]
    for task_id in later:
        layout.storage.delete(layout.fragment(table, task_id))
    compact.compact_table(layout, table)
    for task_id in later:
        layout.storage.write_bytes(layout.fragment(table, task_id), saved[task_id])
    compact.compact_table(layout, table)
    assert len(manifest.list_table(layout, table).parts) == 2 and fragments(layout, table) == []
    layout.storage.delete(manifest.manifest_path(layout, table))
    done = compact.compact_table(layout, table)
    assert (done.rebuilt, done.from_parts) == (len(saved), len(saved))
    pd.testing.assert_frame_equal(tables.read_table(layout, table), before[table])
    assert glob_rows(layout, table) == len(before[table])


def test_the_summary_of_a_rebuilt_manifest_names_rows_written_back_only_where_there_were_some():
    """Every fragment recomputed, none written back from the parts: the summary does not say any was."""
    line = compact.summary({vocab.EVALUATIONS: compact.TableCompaction(vocab.EVALUATIONS, rebuilt=3)})
    assert "every task whose rows its parts held (3) has them in a fragment again, so the manifest" in line, line
    assert "written back from the parts" not in line, line


def test_a_garbled_manifest_is_rebuilt_once_every_task_of_its_parts_has_its_fragment_again(swept, capsys):
    """The manifest garbled after compaction (the fragments deleted) and no done.json left to vouch for the
    parts' rows: they no longer count and a run recomputes their tasks. While one of them has no fragment, compaction refuses (exit 2, one line
    naming it); once all have, it moves the manifest and the parts to the quarantine, rebuilds from the
    fragments, and says so: every row once (a glob too), every output verified, and idempotent after."""
    layout, graph, before = swept
    table = vocab.EVALUATIONS
    saved = {t: layout.storage.read_bytes(layout.fragment(table, t)) for t in fragments(layout, table)}
    compact.compact(layout)
    layout.storage.write_bytes(manifest.manifest_path(layout, table), b"garbage\n")
    ids = sorted(saved)
    markers = {layout.marker_file(graph.tasks[t].kind, t): None for t in ids}
    for path in markers:                # no marker vouches for the parts' rows: a run recomputes every task
        markers[path] = layout.storage.read_bytes(path)
        layout.storage.delete(path)
    for task_id in ids[1:]:                                   # recomputed: all but one
        layout.storage.write_bytes(layout.fragment(table, task_id), saved[task_id])
    assert cli.main(["compact", layout.root]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"its parts hold the rows of 1 task without a fragment (e.g. {ids[0]})" in err and "Traceback" not in err
    layout.storage.write_bytes(layout.fragment(table, ids[0]), saved[ids[0]])
    for path, data in markers.items():                        # (as the recomputed tasks wrote them)
        layout.storage.write_bytes(path, data)
    done = compact.compact_table(layout, table)
    assert done.rebuilt == len(ids) and done.absorbed == len(ids) and done.files == 1
    assert "its manifest was unreadable or missing; every task whose rows its parts held" in compact.summary({table: done})
    assert_same_rows(layout, before)
    assert glob_rows(layout, table) == len(before[table])
    assert_all_verified(layout, graph)
    quarantine = sorted(p.name for p in (Path(layout.root) / "results" / "_quarantine" / table).iterdir())
    assert len(quarantine) == 2 and any(n.endswith(f"{table}.parquet") for n in quarantine)   # the manifest, a part
    assert not compact.compact_table(layout, table).changed
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK


def test_a_garbled_manifest_whose_part_is_unreadable_too_is_refused_naming_the_part(swept):
    """Which tasks' rows an unreadable part holds is unknown: nothing is moved, the refusal names the part."""
    layout, graph, before = swept
    table = vocab.EVALUATIONS
    compact.compact(layout)
    layout.storage.write_bytes(manifest.manifest_path(layout, table), b"garbage\n")
    (part,) = Path(layout.table_dir(table)).glob("part-*.parquet")
    part.write_bytes(b"also garbage")
    with pytest.raises(compact.CompactionError, match=f"its part .*{part.name} cannot be read either"):
        compact.compact_table(layout, table)
    assert part.exists() and Path(manifest.manifest_path(layout, table)).read_bytes() == b"garbage\n"


def test_compacted_digest_ignores_paths_that_are_not_fragments(swept):
    layout, graph, _ = swept
    compact.compact(layout)
    task = next(iter(graph.tasks.values()))
    assert manifest.compacted_digest(layout, layout.fragment(vocab.TASKS, task.id)) is not None
    assert manifest.compacted_digest(layout, layout.marker_file(task.kind, task.id)) is None
    assert manifest.compacted_digest(layout, layout.compacted_file(vocab.TASKS, "x")) is None
    assert manifest.compacted_digest(layout, "/elsewhere/results/tasks/x.parquet") is None


def test_on_an_object_store(template):
    """pyarrow's mock file system stands in for s3:// (no local paths, moves and listings through pyarrow.fs)."""
    directory, graph, before = template
    storage = Storage("mock:///bucket/sweeps")
    assert not storage.is_local
    layout = SweepLayout(storage, NAME)
    local = Path(directory) / NAME / "results"
    for path in local.rglob("*.parquet"):
        storage.write_bytes(storage.join(layout.root, "results", str(path.relative_to(local))), path.read_bytes())
    assert_same_rows(layout, before)
    compact.compact(layout)
    assert all(n == 1 for n in compact.files_per_table(layout).values())
    infos = storage.fs.get_file_info(pafs.FileSelector(layout.table_dir(vocab.PATHS)))
    assert [i.base_name.split("-")[0] for i in infos] == ["part"]
    assert_same_rows(layout, before)
    task_id = before[vocab.PATHS]["task_id"].iloc[-1]
    assert len(tables.read_fragment(layout, vocab.PATHS, task_id)) == 44
    assert tables.verify_fragment(layout, vocab.PATHS, task_id)


def test_cli_compacts_a_sweep_written_before(swept, capsys):
    layout, graph, before = swept
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK
    assert "compacted results" in capsys.readouterr().out
    assert_same_rows(layout, before)
    assert all(n == 1 for n in compact.files_per_table(layout).values())
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK                 # again: nothing to do, said so
    assert capsys.readouterr().out == "nothing to compact: every table is already in its parts\n"
    rerun = min(graph.tasks)                                 # a task ran again: its part and new rows, merged
    tables.write_fragment(layout, vocab.TASKS, rerun, [recording.task_row(graph.tasks[rerun], vocab.FAILED,
                                                                          spec_hash="test", rev=None, error="again")])
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK
    assert compact.files_per_table(layout)[vocab.TASKS] == 1
    assert tables.read_table(layout, vocab.TASKS).set_index("task_id").loc[rerun, "error"] == "again"
    assert cli.main(["compact", str(Path(layout.root).parent / "nope")]) == cli.EXIT_BAD_INPUT


def test_cli_refuses_while_a_run_holds_the_lock(swept, capsys):
    layout, graph, _ = swept
    layout.storage.write_bytes(layout.lock_file(), b'{"pid": 1, "host": "elsewhere", "started_at": 0}')
    assert cli.main(["compact", layout.root]) == cli.EXIT_BAD_INPUT
    assert "another `mmc-sweep run`" in capsys.readouterr().err
    assert len(fragments(layout, vocab.TASKS)) == len(graph)


# ----- sweeps that compact when they end (tasks run inline, without Ray) -------------------------

class Interrupted(KeyboardInterrupt):
    pass


def inline_run_graph(stop_after: int | None):
    """`schedule.run_graph` without Ray: ready tasks one by one in this process (`schedule.run_task`, as a trial
    runs them; a task taken back is cached, as `on_trial_complete` has it); Ctrl-C after `stop_after`."""
    def run_graph(state, layout, ctx, *, max_concurrent, progress=None, run_name=None, concurrency=None,
                  stall_wait_s=None):
        ran = 0
        while (task_id := state.ready.first()) is not None:
            task = ctx.graph.tasks[task_id]
            state.set_status(task_id, vocab.RUNNING, started_at=0.0)
            result = schedule.run_task(task, ctx, {p: ctx.graph.tasks[p].kind for p in task.parents})
            status = vocab.CACHED if result.reused else vocab.DONE if result.status == vocab.DONE else vocab.FAILED
            state.set_status(task_id, status, result.error, result=result, duration_s=result.duration_s,
                             error_type=result.error_type)
            ran += 1
            if stop_after is not None and ran >= stop_after:
                raise Interrupted
    return run_graph


@pytest.fixture
def inline(monkeypatch):
    monkeypatch.setattr(sweep, "_connect", lambda *a: None)
    monkeypatch.setattr(sweep.preflight, "check_cluster", lambda *a, **k: None)
    monkeypatch.setattr(sweep, "read_cluster", lambda *a, **k: ClusterView(visible={"CPU": 2}))
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")

    def use(stop_after=None):
        monkeypatch.setattr(sweep, "run_graph", inline_run_graph(stop_after))
    return use


def test_an_interrupted_run_records_and_compacts_then_the_rerun_resumes(tmp_path, inline):
    spec = load_spec(None, ["seeds=[0]", f"storage={tmp_path}", "name=resumed"])
    graph = build_graph(spec)
    inline(stop_after=20)
    logged = []
    with pytest.raises(Interrupted):
        sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=logged.append)
    layout = SweepLayout(Storage(str(tmp_path)), "resumed")
    assert any(line.startswith("compacted results") for line in logged)
    first = tables.read_table(layout, vocab.TASKS)
    assert len(first) == 20 and first["task_id"].is_unique and first["mlflow_run_id"].notna().all()
    assert all(compact.files_per_table(layout)[t] <= 1 for t in vocab.TABLES)

    inline()
    logged.clear()
    outcome = sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=logged.append)
    assert "20 already finished" in "\n".join(logged)
    assert outcome.counts["cached"] == 20 and outcome.counts["done"] == len(graph) - 20
    tasks = tables.read_table(layout, vocab.TASKS)
    assert sorted(tasks["task_id"]) == sorted(graph.tasks) and (tasks["status"] == vocab.FINISHED).all()
    paths = tables.read_table(layout, vocab.PATHS)
    assert paths.groupby("task_id").size().eq(44).all()
    assert set(paths["task_id"]) == {t for t, task in graph.tasks.items() if task.kind == vocab.PATH_EVAL}
    assert all(compact.files_per_table(layout)[t] == 1 for t in vocab.TABLES)   # a finished run: one part

    inline()
    again = sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=logged.append)
    assert again.counts["cached"] == len(graph) and again.counts["done"] == 0
    pd.testing.assert_frame_equal(tables.read_table(layout, vocab.TASKS), tasks)


def test_the_rerun_after_a_garbled_manifest_takes_the_rows_back_and_repairs_it(tmp_path, inline):
    """The user's probe: a finished sweep, its `evaluations` manifest garbled. The rerun's repair writes back
    from the part the rows each task's done.json vouches for (one line says so) and rebuilds the manifest: it
    recomputes nothing, every row is there once, the run after warns nothing, and `mmc-sweep compact`
    succeeds. (Before, a lost manifest recomputed every task whose rows only the part held.)"""
    spec = load_spec(None, ["seeds=[0]", f"storage={tmp_path}", "name=garbled"])
    graph = build_graph(spec)
    inline()
    sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=lambda line: None)
    layout = SweepLayout(Storage(str(tmp_path)), "garbled")
    before = tables.read_table(layout, vocab.EVALUATIONS)
    Path(manifest.manifest_path(layout, vocab.EVALUATIONS)).write_text("garbage\n")
    inline()
    logged = []
    outcome = sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=logged.append)
    assert outcome.counts["done"] == 0 and outcome.counts["cached"] == len(graph)
    n = before["task_id"].nunique()
    assert any(f"evaluations: its manifest was unreadable or missing; every task whose rows its parts held ({n}) has "
               f"them in a fragment again ({n} written back from the parts" in line for line in logged), logged
    after = tables.read_table(layout, vocab.EVALUATIONS)
    pd.testing.assert_frame_equal(after, before)
    assert glob_rows(layout, vocab.EVALUATIONS) == len(before)
    inline()
    logged.clear()
    again = sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=logged.append)
    assert again.counts["cached"] == len(graph) and again.counts["done"] == 0
    assert not any("manifest" in line for line in logged), logged
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK


# ----- a real run on Ray -------------------------------------------------------------------------

def test_a_run_on_ray_compacts_and_a_rerun_skips_every_finished_task(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")
    spec = load_spec(None, ["seeds=[0]", f"storage={tmp_path}", "name=onray", "max_concurrent=2"])
    graph = build_graph(spec)
    first = sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=lambda *a: None)
    assert first.ok and first.counts["done"] == len(graph)
    layout = first.layout
    assert all(compact.files_per_table(layout)[t] == 1 for t in vocab.TABLES)
    before = snapshot(layout)
    assert sorted(before[vocab.TASKS]["task_id"]) == sorted(graph.tasks)
    second = sweep.run_sweep(spec, runner=runners.name("synthetic"), report=False, log=lambda *a: None)
    assert second.counts["cached"] == len(graph) and second.counts["done"] == 0
    assert_same_rows(layout, before)


# ----- damage mended, nothing lost (every file checked against the manifest's size and sha256) --------

def glob_rows(layout, table: str) -> int:
    """What `read_parquet('results/<table>/*.parquet')` counts."""
    import pyarrow.dataset as ds

    files = sorted(str(p) for p in (Path(layout.root) / "results" / table).glob("*.parquet"))
    return ds.dataset(files, format="parquet").count_rows() if files else 0


def test_a_fragment_counts_as_compacted_only_while_its_part_verifies(swept, caplog):
    """The part is lost; the recomputed fragments are byte-identical to the ones it absorbed (CPU runs
    are deterministic). They are read, and compaction absorbs them again: no row is lost."""
    layout, graph, before = swept
    saved = {t: layout.storage.read_bytes(layout.fragment(vocab.BARRIERS, t)) for t in fragments(layout, vocab.BARRIERS)}
    compact.compact(layout)
    (part,) = Path(layout.table_dir(vocab.BARRIERS)).glob("part-*.parquet")
    part.unlink()
    assert tables.read_table(layout, vocab.BARRIERS).empty
    assert warned(caplog, "is missing")
    for task_id, data in saved.items():                 # what the rerun writes for the recomputed tasks
        layout.storage.write_bytes(layout.fragment(vocab.BARRIERS, task_id), data)
    assert_same_rows(layout, before)
    done = compact.compact(layout)[vocab.BARRIERS]
    assert done.absorbed == len(saved) and done.files == 1 and not done.lost
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)


def test_a_damaged_part_gives_back_the_rows_that_verify_and_is_set_aside(swept, monkeypatch, caplog):
    layout, graph, before = swept
    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 1)        # a row group per task: damage stays local
    compact.compact(layout)
    (part,) = Path(layout.table_dir(vocab.PATHS)).glob("part-*.parquet")
    blob = bytearray(part.read_bytes())
    group = pq.ParquetFile(part).metadata.row_group(5)              # the rows of the sixth task
    start = group.column(0).dictionary_page_offset or group.column(0).data_page_offset
    middle = start + sum(group.column(j).total_compressed_size for j in range(group.num_columns)) // 2
    blob[middle:middle + 64] = bytes(64)
    part.write_bytes(bytes(blob))
    expected = before[vocab.PATHS]
    got = tables.read_table(layout, vocab.PATHS)                 # readers take back what verifies
    assert warned(caplog, "size or sha256 other than the manifest's")
    assert 0 < got["task_id"].nunique() < expected["task_id"].nunique()
    pd.testing.assert_frame_equal(got, expected[expected.task_id.isin(set(got.task_id))].reset_index(drop=True))
    done = compact.compact(layout)[vocab.PATHS]
    assert done.restored == got["task_id"].nunique() and done.restored + len(done.lost) == expected["task_id"].nunique()
    assert done.files == 1 and len(done.quarantined) == 1 and "_quarantine/paths/" in done.quarantined[0]
    assert Path(done.quarantined[0]).read_bytes() == bytes(blob)   # set aside, not deleted
    pd.testing.assert_frame_equal(tables.read_table(layout, vocab.PATHS), got)
    for task_id in set(expected.task_id):                       # the lost ones are recomputed by the next run
        assert outputs.verify_outputs(layout, vocab.PATH_EVAL, task_id)[0] == (task_id not in done.lost)
    assert "restored" in compact.summary({vocab.PATHS: done}) and "recomputes them" in compact.summary({vocab.PATHS: done})


def test_a_renamed_part_is_put_back(swept):
    layout, graph, before = swept
    compact.compact(layout)
    for table in vocab.TABLES:
        (part,) = Path(layout.table_dir(table)).glob("part-*.parquet")
        part.rename(part.with_name("part-restored-from-backup.parquet"))
    done = compact.compact(layout)
    assert all(c.adopted and not c.lost and c.files == 1 for c in done.values())
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)


def test_a_file_that_is_not_its_tasks_fragment_is_set_aside_with_one_line(swept):
    """A part copied under a fragment's name (the case that once ended `compact` with exit 134): the
    real CLI exits 0, says so in one line and moves the copy out of the table's directory."""
    layout, graph, before = swept
    compact.compact(layout)
    (part,) = Path(layout.table_dir(vocab.PATHS)).glob("part-*.parquet")
    shutil.copy(part, part.with_name("copy.parquet"))
    assert glob_rows(layout, vocab.PATHS) == 2 * len(before[vocab.PATHS])
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "compact", layout.root], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "copy.parquet" in line]
    assert len(warning) >= 1 and all(len(line) < 400 for line in warning) and "Traceback" not in proc.stderr
    assert "it is not the result fragment of task 'copy'" in proc.stderr
    assert glob_rows(layout, vocab.PATHS) == len(before[vocab.PATHS])
    assert list((Path(layout.root) / "results" / "_quarantine" / vocab.PATHS).glob("*copy.parquet"))
    assert_same_rows(layout, before)


def test_a_rerun_after_compaction_leaves_globs_counting_each_task_once(swept, monkeypatch):
    """A task rerun after compaction writes a fragment while its old rows sit in a part: the run's
    compaction at its end (below the fragment threshold too) rewrites that part."""
    layout, graph, before = swept
    compact.compact(layout)
    rerun = sorted(t for t, task in graph.tasks.items() if task.kind == vocab.PATH_EVAL)[:3]
    for task_id in rerun:
        row = recording.task_row(graph.tasks[task_id], vocab.FAILED, spec_hash="test", rev=None, error="again")
        tables.write_fragment(layout, vocab.TASKS, task_id, [row])
    assert glob_rows(layout, vocab.TASKS) == len(graph) + len(rerun)       # counted twice until the run ends
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1000")
    compact.compact_after_run(layout, log=lambda *a: None)
    assert glob_rows(layout, vocab.TASKS) == len(graph) == len(tables.read_table(layout, vocab.TASKS))
    assert (tables.read_table(layout, vocab.TASKS).set_index("task_id").loc[rerun, "error"] == "again").all()


def test_an_earlier_versions_manifest_is_read_then_moved_out_of_the_table(swept):
    """Sweeps compacted before kept `_manifest.parquet` in the table's directory (a glob read it as data)."""
    layout, graph, before = swept
    compact.compact(layout)
    for table in vocab.TABLES:
        Path(layout.manifest_file(table)).rename(layout.legacy_manifest_file(table))
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    done = compact.repair(layout, log=lambda *a: None)
    assert all(c.migrated for c in done.values())
    for table in vocab.TABLES:
        assert not Path(layout.legacy_manifest_file(table)).exists() and Path(layout.manifest_file(table)).is_file()
        assert sorted(p.name[:5] for p in Path(layout.table_dir(table)).iterdir()) == ["part-"]
    assert_same_rows(layout, before)


def test_temporary_files_of_a_killed_compaction_are_deleted_by_the_next_run(swept):
    layout, graph, before = swept
    compact.compact(layout)
    planted = [Path(layout.manifest_file(vocab.PATHS) + ".tmp-0123"),
               *(p.with_name(p.name + ".tmp-4567") for p in Path(layout.table_dir(vocab.PATHS)).glob("part-*")),
               Path(layout.fragment(vocab.PATHS, "path_eval-0000000000000000") + ".tmp-89ab")]
    planted += [p.with_name(f".{p.name.split('.tmp-')[0]}.tmp-cdef") for p in planted]   # as written now: hidden
    for path in planted:
        path.write_bytes(b"half written")
    done = compact.repair(layout, log=lambda *a: None)
    assert done[vocab.PATHS].deleted == len(planted) and not any(p.exists() for p in planted)
    assert_same_rows(layout, before)


# ----- bundles while a run goes ------------------------------------------------------------------

def hold_back(layout, graph, keep) -> dict[str, bytes]:
    """Take away the fragments of the tasks not in `keep` (tasks that have not finished yet); their bytes."""
    held = {}
    for table in vocab.TABLES:
        for task_id, stamp in manifest.list_table(layout, table).fragments.items():
            if task_id not in keep:
                held[stamp.path] = layout.storage.read_bytes(stamp.path)
                layout.storage.delete(stamp.path)
    return held


def test_a_bundle_during_a_run_keeps_writes_in_flight_and_the_end_absorbs_the_rest(swept, monkeypatch):
    layout, graph, before = swept
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")
    first = set(sorted(graph.tasks)[: len(graph) // 2])
    held = hold_back(layout, graph, first)
    in_flight = Path(layout.fragment(vocab.PATHS, "path_eval-0000000000000000") + ".tmp-89ab")
    in_flight.write_bytes(b"a task writing right now")
    running = next(t for t in sorted(graph.tasks) if t not in first and graph.tasks[t].kind == vocab.PATH_EVAL)
    for path in [p for p in held if running in p]:             # a task still running has written some files
        layout.storage.write_bytes(path, held.pop(path))
    done = compact.compact_bundle(layout, finished=first.__contains__)
    assert in_flight.exists()                                  # a task's write in flight: not a leftover
    assert done[vocab.TASKS].absorbed == len(first)
    assert fragments(layout, vocab.TASKS) == fragments(layout, vocab.PATHS) == [running]   # it may write again
    for path, data in held.items():                            # the other tasks finish after the bundle
        layout.storage.write_bytes(path, data)
    assert_same_rows(layout, before)                           # a part and fragments: every row once
    assert_all_verified(layout, graph)
    in_flight.unlink()
    done = compact.compact_after_run(layout, log=lambda *a: None)
    assert {t: c.files for t, c in done.items()} == {t: 2 for t in vocab.TABLES}   # a part per bundle, none merged
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    assert compact.bundle_tasks(100) == compact.BUNDLE_MIN_TASKS
    assert compact.bundle_tasks(10 ** 6) * (compact.MAX_PARTS - 2) >= 10 ** 6   # <= MAX_PARTS - 1 parts per run

    # the end of a run that was not interrupted: the parts merged into one, a fragment beside them absorbed
    # whatever the threshold, rows in task-id order as the manifest says
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, str(10 ** 6))
    rerun = sorted(graph.tasks)[3]
    row = recording.task_row(graph.tasks[rerun], vocab.FAILED, spec_hash="test", rev=None, error="again")
    tables.write_fragment(layout, vocab.TASKS, rerun, [row])
    read = snapshot(layout)
    logged = []
    done = compact.compact_after_run(layout, log=logged.append, one_part=True)
    assert {t: c.files for t, c in done.items()} == {t: 1 for t in vocab.TABLES}
    assert done[vocab.TASKS].absorbed == 1 and all(c.merged_parts == 2 for c in done.values())
    assert "tasks 1 fragment and 2 parts -> 1 file" in logged[0]
    assert_same_rows(layout, read)
    assert read[vocab.TASKS].set_index("task_id").loc[rerun, "error"] == "again"
    for table in vocab.TABLES:
        (part, info), = manifest.read_manifest(layout, table).parts.items()
        entries = manifest.read_manifest(layout, table).entries_of(part)
        assert [t for t, _ in entries] == sorted(t for t, _ in entries)
        assert [e.offset for _, e in entries] == [sum(e.rows for _, e in entries[:i]) for i in range(len(entries))]
    assert not any(c.changed for c in compact.compact_after_run(layout, log=lambda *a: None, one_part=True).values())


@pytest.mark.parametrize("step", ["writing", "manifest", "delete"])
def test_a_bundle_killed_at_any_step_then_the_end_of_the_run_keeps_every_row_once(swept, step, monkeypatch):
    layout, graph, before = swept
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")
    first = set(sorted(graph.tasks)[: len(graph) // 3])
    held = hold_back(layout, graph, first)
    compact.compact_bundle(layout)                             # the first bundle, then more tasks finish
    for path, data in held.items():
        layout.storage.write_bytes(path, data)
    script = KILL.replace("compact.compact(layout)", "compact.compact(layout, running=True)")
    proc = subprocess.run([sys.executable, "-c", script, step, str(Path(layout.root).parent), NAME], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    compact.compact_after_run(layout, log=lambda *a: None)
    assert_same_rows(layout, before)
    assert_all_verified(layout, graph)
    assert all(compact.files_per_table(layout)[t] <= 2 for t in vocab.TABLES)
    assert not list((Path(layout.root) / "results").rglob("*.tmp-*"))


def test_interleaved_parts_merged_into_one_keep_every_row_in_task_order(swept, monkeypatch):
    """Three bundles' parts (their tasks interleaved, each part of many row groups), two tasks rerun since: merged
    into one part (`one_part`) a row group of several tasks at a time, each part's rows read a row group at a
    time: every table reads as before, each task's rows where its entry says, in task-id order."""
    layout, graph, _ = swept
    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 3_000)       # parts of many small row groups
    ids = sorted(graph.tasks)
    for k in range(3):
        compact.compact_bundle(layout, finished=lambda t, k=k: ids.index(t) % 3 == k)
    assert all(len(manifest.read_manifest(layout, t).parts) == 3 for t in vocab.TABLES)
    for rerun in (ids[4], ids[-1]):
        row = recording.task_row(graph.tasks[rerun], vocab.FAILED, spec_hash="test", rev=None, error="again")
        tables.write_fragment(layout, vocab.TASKS, rerun, [row])
    read = snapshot(layout)
    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 40_000)      # a row group spans several of each part's
    done = compact.compact(layout, one_part=True)
    assert {t: c.files for t, c in done.items()} == {t: 1 for t in vocab.TABLES}
    assert all(c.merged_parts == 3 for c in done.values())
    assert_same_rows(layout, read)
    assert_all_verified(layout, graph)
    for table in vocab.TABLES:
        (part,) = manifest.read_manifest(layout, table).parts
        entries = manifest.read_manifest(layout, table).entries_of(part)
        assert [t for t, _ in entries] == sorted(t for t, _ in entries)
        if table in (vocab.PATHS, vocab.TASKS):
            assert pq.ParquetFile(layout.compacted_file(table, part)).metadata.num_row_groups > 1
        for task_id in sorted(set(read[table]["task_id"]))[::7]:
            expected = read[table][read[table]["task_id"] == task_id].reset_index(drop=True)
            pd.testing.assert_frame_equal(tables.read_fragment(layout, table, task_id), expected, check_dtype=False)


def test_rows_the_writer_kept_are_not_parsed_again_and_make_the_same_part(swept, monkeypatch):
    layout, graph, before = swept
    copy = SweepLayout(Storage(str(Path(layout.root).parent.parent / "copy")), NAME)
    shutil.copytree(Path(layout.root), Path(copy.root))
    table = vocab.TASKS
    recorder = recording.TasksTable(layout, "test", None)     # the driver writes the `tasks` rows
    ended = [recording.EndedTask(graph.tasks[t], vocab.DONE, None, 1.0, 1.0, 2.0, "cpu", {}, []) for t in sorted(graph.tasks)]
    recorder.tasks_ended(ended, {})
    for e in ended:
        shutil.copy(layout.fragment(table, e.task.id), copy.fragment(table, e.task.id))
    changed = ended[1].task.id                                 # rewritten since (another writer): parsed
    row = recording.task_row(graph.tasks[changed], vocab.FAILED, spec_hash="test", rev=None, error="again")
    for target in (layout, copy):
        tables.write_fragment(target, table, changed, [row])
    parsed, real = [], tables.parse_fragment
    monkeypatch.setattr(tables, "parse_fragment", lambda t, data, task_id=None: (parsed.append((t, task_id)),
                                                                                 real(t, data, task_id))[1])
    compact.compact_table(layout, table, rows_of=recorder.rows_of)
    assert parsed == [(table, changed)]
    compact.compact_table(copy, table)                         # every fragment parsed
    assert len(parsed) == 1 + len(graph)
    (kept,), (read,) = (manifest.read_manifest(x, table).parts.values() for x in (layout, copy))
    assert (kept.sha256, kept.size) == (read.sha256, read.size)   # the same bytes: the same rows
    assert tables.read_table(layout, table).set_index("task_id").loc[changed, "error"] == "again"


def test_pieces_gathered_into_blocks_make_the_same_part(swept, monkeypatch):
    """A row group's pieces are copied into contiguous blocks as they come (a parsed fragment's buffers
    take ~10-30x its rows' size; at 10^4 fragments they held ~1 GiB): the part's bytes are the same."""
    layout, graph, before = swept
    copy = SweepLayout(Storage(str(Path(layout.root).parent.parent / "copy")), NAME)
    shutil.copytree(Path(layout.root), Path(copy.root))
    compact.compact(copy)
    monkeypatch.setattr(compact, "GATHER", 3)
    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 20_000)     # several row groups, each from several blocks
    compact.compact(layout)
    monkeypatch.undo()
    assert_same_rows(layout, before)
    for table in vocab.TABLES:
        (gathered,), (plain,) = (manifest.read_manifest(x, table).parts.values() for x in (layout, copy))
        assert gathered.rows == plain.rows and gathered.rows > 0
        if table == vocab.PATHS:
            assert pq.ParquetFile(layout.compacted_file(table, gathered.name)).metadata.num_row_groups > 1


# ----- small tables written directly (no run) ------------------------------------------------------

def _small(tmp_path) -> SweepLayout:
    return SweepLayout(Storage(str(tmp_path / "small")), "small")


def _evaluations(loss: float) -> list[dict]:
    return [{"eval_set": "cue", "loss": loss, "acc": 0.5, "n": 10}, {"eval_set": "nocue", "loss": loss + 1, "acc": 0.5, "n": 10}]


def test_a_single_new_fragment_is_compacted_at_the_default_threshold(tmp_path):
    """`min_fragments=1` (the default): one fragment to absorb is enough."""
    layout = _small(tmp_path)
    tables.write_fragment(layout, vocab.EVALUATIONS, "t0", _evaluations(1.0))
    done = compact.compact_table(layout, vocab.EVALUATIONS)
    assert (done.absorbed, done.rows, done.files) == (1, 2, 1) and done.part is not None
    assert not fragments(layout, vocab.EVALUATIONS)
    assert tables.read_table(layout, vocab.EVALUATIONS)["loss"].tolist() == [1.0, 2.0]


def test_kept_rows_are_used_only_for_the_very_bytes_they_were_written_as(tmp_path):
    """`rows_of`: rows the writer kept count only for a fragment with their sha256 and size; a fragment of
    the same size but other bytes is parsed, and its own rows go into the part."""
    layout = _small(tmp_path)
    path = tables.write_fragment(layout, vocab.EVALUATIONS, "t0", _evaluations(1.0))
    data = layout.storage.read_bytes(path)
    stale = tables.rows_to_table(vocab.EVALUATIONS, "t0", _evaluations(7.0))
    compact.compact_table(layout, vocab.EVALUATIONS,
                          rows_of=lambda p: (manifest.sha256_hex(b"other bytes"), len(data), stale) if p == path else None)
    assert tables.read_table(layout, vocab.EVALUATIONS)["loss"].tolist() == [1.0, 2.0]


def test_prefetch_gives_every_result_in_order():
    for n in (0, 3, 2 * 4 - 1, 2 * 4, 100):
        assert list(compact._prefetch(lambda x: x * x, list(range(n)), window=4)) == [x * x for x in range(n)]


def test_a_fragment_written_again_after_it_was_listed_is_not_deleted(tmp_path):
    """`_delete` deletes what the manifest made redundant, but a fragment whose size or mtime changed since it
    was listed was written again meanwhile: it is newer and stays."""
    layout = _small(tmp_path)
    tables.write_fragment(layout, vocab.EVALUATIONS, "t0", _evaluations(1.0))
    tables.write_fragment(layout, vocab.EVALUATIONS, "t1", _evaluations(1.0))
    listed = manifest.list_table(layout, vocab.EVALUATIONS).fragments
    tables.write_fragment(layout, vocab.EVALUATIONS, "t1", _evaluations(1.0) * 3)   # rewritten since
    assert compact._delete(layout, vocab.EVALUATIONS, [listed["t0"], listed["t1"]]) == 1
    assert fragments(layout, vocab.EVALUATIONS) == ["t1"]


def test_parts_are_merged_only_once_there_would_be_more_than_max_parts(tmp_path, monkeypatch):
    layout = _small(tmp_path)
    monkeypatch.setattr(compact, "MAX_PARTS", 3)
    for i in range(3):
        tables.write_fragment(layout, vocab.EVALUATIONS, f"t{i}", _evaluations(float(i)))
        assert compact.compact_table(layout, vocab.EVALUATIONS).merged_parts == 0
    assert len(manifest.read_manifest(layout, vocab.EVALUATIONS).parts) == 3      # MAX_PARTS parts: kept
    tables.write_fragment(layout, vocab.EVALUATIONS, "t3", _evaluations(3.0))
    assert compact.compact_table(layout, vocab.EVALUATIONS).merged_parts == 3     # one more: merged
    assert len(manifest.read_manifest(layout, vocab.EVALUATIONS).parts) == 1
    assert tables.read_table(layout, vocab.EVALUATIONS)["task_id"].tolist() == [f"t{i // 2}" for i in range(8)]


def test_one_part_absorbs_even_fewer_fragments_than_the_threshold(tmp_path):
    """`one_part`: a part and fragments beside it would be read in two pieces, so every fragment goes in."""
    layout = _small(tmp_path)
    tables.write_fragment(layout, vocab.EVALUATIONS, "t1", _evaluations(1.0))
    compact.compact_table(layout, vocab.EVALUATIONS)
    tables.write_fragment(layout, vocab.EVALUATIONS, "t0", _evaluations(0.0))
    assert compact.compact_table(layout, vocab.EVALUATIONS, min_fragments=100).part is None   # below the threshold
    done = compact.compact_table(layout, vocab.EVALUATIONS, min_fragments=100, one_part=True)
    assert done.absorbed == 1 and done.files == 1 and not fragments(layout, vocab.EVALUATIONS)
    assert tables.read_table(layout, vocab.EVALUATIONS)["task_id"].tolist() == ["t0", "t0", "t1", "t1"]


def test_a_part_whose_every_task_ran_again_is_deleted(tmp_path):
    """Rerun tasks' rows win; a part left with no row that counts is dropped from the manifest and deleted
    (also one that never held a row: tasks that wrote empty fragments), so that a glob over the table's
    files counts each task once."""
    for first in (_evaluations, lambda loss: []):
        layout = SweepLayout(Storage(str(tmp_path / f"small-{id(first)}")), "small")
        for i in range(2):
            tables.write_fragment(layout, vocab.EVALUATIONS, f"t{i}", first(float(i)))
        compact.compact_table(layout, vocab.EVALUATIONS)
        assert len(manifest.read_manifest(layout, vocab.EVALUATIONS).parts) == 1
        for i in range(2):
            tables.write_fragment(layout, vocab.EVALUATIONS, f"t{i}", _evaluations(10.0 + i))
        compact.compact_table(layout, vocab.EVALUATIONS)
        current = manifest.read_manifest(layout, vocab.EVALUATIONS)
        assert len(current.parts) == 1
        assert compact.files_per_table(layout)[vocab.EVALUATIONS] == 1
        glob = pd.read_parquet(layout.table_dir(vocab.EVALUATIONS))
        assert sorted(glob["loss"]) == [10.0, 11.0, 11.0, 12.0]


def test_a_manifest_entry_pointing_outside_its_part_is_refused(tmp_path):
    """A manifest whose task's rows would lie beyond its part's recorded rows does not hold together: it is
    refused (readers warn, compaction stops), never read as rows of another task or none."""
    from dataclasses import replace

    layout = _small(tmp_path)
    for i in range(2):
        tables.write_fragment(layout, vocab.EVALUATIONS, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, vocab.EVALUATIONS)
    good = manifest.read_manifest(layout, vocab.EVALUATIONS)
    (info,) = good.parts.values()
    assert (good.tasks["t1"].offset, good.tasks["t1"].rows, info.rows) == (2, 2, 4)
    for offset, rows in ((3, 2), (2, 3), (4, 1)):
        bad = manifest.Manifest(vocab.EVALUATIONS, good.parts,
                                {**good.tasks, "t1": replace(good.tasks["t1"], offset=offset, rows=rows)})
        with pytest.raises(ValueError, match="points outside its part"):
            manifest.parse_manifest(vocab.EVALUATIONS, manifest.manifest_bytes(bad))
    bad = manifest.Manifest(vocab.EVALUATIONS, good.parts,
                            {**good.tasks, "t1": replace(good.tasks["t1"], offset=2, rows=2)})
    assert manifest.parse_manifest(vocab.EVALUATIONS, manifest.manifest_bytes(bad)).tasks == good.tasks


def test_a_manifest_rewritten_by_another_process_is_read_again(tmp_path):
    """The per-process cache of manifests holds only while the file's size and mtime do: a manifest another
    process rewrote (no `forget_cached` here) is read again."""
    layout = _small(tmp_path)
    for i in range(2):
        tables.write_fragment(layout, vocab.EVALUATIONS, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, vocab.EVALUATIONS)
    assert manifest.compacted_entry(layout, vocab.EVALUATIONS, "t1") is not None
    current = manifest.read_manifest(layout, vocab.EVALUATIONS)
    fewer = manifest.Manifest(vocab.EVALUATIONS, current.parts, {"t0": current.tasks["t0"]})
    layout.storage.write_bytes(manifest.manifest_path(layout, vocab.EVALUATIONS), manifest.manifest_bytes(fewer))
    assert manifest.compacted_entry(layout, vocab.EVALUATIONS, "t1") is None
    assert manifest.compacted_entry(layout, vocab.EVALUATIONS, "t0") == current.tasks["t0"]


# ----- sweeps written by an earlier version --------------------------------------------------------

def write_as_schema_version_2(monkeypatch) -> None:
    """From now on tables are written as the version before the tasks table's `restarts`: without it, and each
    file marked `mmc_sweep.schema_version` 2."""
    tasks = SCHEMAS[vocab.TASKS]
    monkeypatch.setitem(SCHEMAS, vocab.TASKS, tasks.remove(tasks.get_field_index("restarts")))
    monkeypatch.setattr(tables, "SCHEMA_VERSION", "2")


def schema_versions(layout, table: str) -> list[bytes]:
    return [pq.read_metadata(p).metadata[SCHEMA_VERSION_KEY] for p in sorted(Path(layout.table_dir(table)).iterdir())]


def test_mmc_sweep_compact_rewrites_the_parts_of_an_older_schema_version_to_the_current_one(swept, capsys):
    """A sweep compacted by the version before `restarts`: one part per table, marked schema version 2, no
    `restarts` column. `mmc-sweep compact` conforms every part to the current schema (its `restarts` null),
    says so, and the rows read the same; a second time there is nothing to do."""
    layout, graph, _ = swept
    with pytest.MonkeyPatch.context() as old:
        write_as_schema_version_2(old)
        compact.compact(layout, one_part=True)
    assert schema_versions(layout, vocab.TASKS) == [b"2"]
    assert "restarts" not in pq.read_schema(next(Path(layout.table_dir(vocab.TASKS)).iterdir())).names
    read = snapshot(layout)                                    # conformed on read: `restarts` null
    assert read[vocab.TASKS]["restarts"].isna().all()
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"tasks: 1 part written by an older version rewritten to schema version {SCHEMA_VERSION}" in out, out
    for table in vocab.TABLES:
        assert schema_versions(layout, table) == [SCHEMA_VERSION.encode()], table
    (part,) = Path(layout.table_dir(vocab.TASKS)).iterdir()
    assert pq.read_schema(part).names == SCHEMAS[vocab.TASKS].names
    assert_same_rows(layout, read)
    assert_all_verified(layout, graph)
    assert cli.main(["compact", layout.root]) == cli.EXIT_OK
    assert capsys.readouterr().out == "nothing to compact: every table is already in its parts\n"


def test_a_runs_compaction_that_writes_a_part_rewrites_an_older_versions_part_into_it(swept, monkeypatch):
    """An interrupted run's end (no merge into one part) absorbs a new task's fragment, of the current schema,
    into a new part: the table's part of schema version 2 goes into it too, so that the table's directory holds
    files of one schema (polars reads its glob). A table the run's end does not compact keeps its older part."""
    layout, graph, _ = swept
    late = max(t for t in graph.tasks if graph.tasks[t].kind == vocab.PRETRAIN)
    held = hold_back(layout, graph, set(graph.tasks) - {late})
    with pytest.MonkeyPatch.context() as old:
        write_as_schema_version_2(old)
        compact.compact(layout)
    for path, data in held.items():                            # the new version's run: one more task
        layout.storage.write_bytes(path, data)
    read = snapshot(layout)
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")
    done = compact.compact_after_run(layout, log=lambda *a: None)
    assert done[vocab.TASKS].files == 1 and done[vocab.TASKS].upgraded == 1
    assert schema_versions(layout, vocab.TASKS) == [SCHEMA_VERSION.encode()]
    assert len(pl.scan_parquet(f"{layout.table_dir(vocab.TASKS)}/*.parquet").collect()) == len(read[vocab.TASKS])
    assert not fragments(layout, vocab.PATHS) and schema_versions(layout, vocab.PATHS) == [b"2"]   # nothing new
    assert_same_rows(layout, read)
    assert_all_verified(layout, graph)


def test_a_small_sweep_resumed_by_a_newer_version_leaves_one_schema_in_each_table(swept, monkeypatch):
    """A sweep too small to be compacted (every table in fragments), written by the version before `restarts`;
    a newer version's run adds one task, far fewer fragments than a run compacts. Its end finds the tasks
    table's files in two schemas and absorbs them into one part of the current schema, so that a glob reads;
    the tables that hold one schema stay as fragments."""
    layout, graph, _ = swept
    late = max(t for t in graph.tasks if graph.tasks[t].kind == vocab.PRETRAIN)
    with pytest.MonkeyPatch.context() as old:
        write_as_schema_version_2(old)
        for task_id, task in graph.tasks.items():
            if task_id != late:
                row = recording.task_row(task, vocab.FINISHED, spec_hash="test", rev=None, duration_s=1.0)
                tables.write_fragment(layout, vocab.TASKS, task_id, [{k: v for k, v in row.items() if k != "restarts"}])
    assert sorted(set(schema_versions(layout, vocab.TASKS))) == [b"2", SCHEMA_VERSION.encode()]
    read = snapshot(layout)
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, str(10 * len(graph)))     # a sweep too small to compact
    done = compact.compact_after_run(layout, log=lambda *a: None, one_part=True)
    assert done[vocab.TASKS].files == 1 and schema_versions(layout, vocab.TASKS) == [SCHEMA_VERSION.encode()]
    assert len(pl.scan_parquet(f"{layout.table_dir(vocab.TASKS)}/*.parquet").collect()) == len(graph)
    assert len(fragments(layout, vocab.PATHS)) == len(manifest.list_table(layout, vocab.PATHS).fragments) > 1
    assert_same_rows(layout, read)
    assert_all_verified(layout, graph)


def test_rows_taken_back_from_a_damaged_part_go_into_the_one_part_with_the_others(swept, monkeypatch):
    """`mmc-sweep compact` (`one_part`) of a table with an intact part and a damaged one: the rows that verify in
    the damaged part are taken back and merged with the intact part's into one part (no second part beside it)."""
    layout, graph, before = swept
    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 1)        # a row group per task: damage stays local
    ids = sorted(before[vocab.PATHS]["task_id"].unique())
    first = set(ids[:len(ids) // 2])
    compact.compact(layout, [vocab.PATHS], finished=lambda t: t in first)   # a part of the first half's rows
    (damaged,) = Path(layout.table_dir(vocab.PATHS)).glob("part-*.parquet")
    compact.compact(layout, [vocab.PATHS])                                   # a second part, of the others
    assert len(list(Path(layout.table_dir(vocab.PATHS)).glob("part-*.parquet"))) == 2
    blob = bytearray(damaged.read_bytes())
    group = pq.ParquetFile(damaged).metadata.row_group(1)
    start = group.column(0).dictionary_page_offset or group.column(0).data_page_offset
    middle = start + sum(group.column(j).total_compressed_size for j in range(group.num_columns)) // 2
    blob[middle:middle + 64] = bytes(64)
    damaged.write_bytes(bytes(blob))
    done = compact.compact(layout, [vocab.PATHS], one_part=True)[vocab.PATHS]
    assert done.restored > 0 and done.lost
    assert done.files == 1 and len(list(Path(layout.table_dir(vocab.PATHS)).glob("part-*.parquet"))) == 1
    got = tables.read_table(layout, vocab.PATHS)
    expected = before[vocab.PATHS]
    assert set(got["task_id"]) == set(ids) - set(done.lost)
    pd.testing.assert_frame_equal(got, expected[~expected.task_id.isin(done.lost)].reset_index(drop=True))
