"""The `done.json` marker: written compactly (version 3, step series as one string each), read back with
everything the cache check and the driver use, and markers of version 2 (indented, step series as
[key, step, value] lists) still read and verified as before, alone and in a pass over the sweep."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.results import marker_format, outputs
from orchestrator.run import work
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.conftest import SMOKE_SPEC
from tests.support import runners


@pytest.fixture()
def finished(tmp_path):
    """The smoke sweep's tasks run by the synthetic runner (fragments and markers as a task writes them):
    (layout, tasks, {task_id: the TaskResult it reported})."""
    spec = load_spec(SMOKE_SPEC).with_top(storage=str(tmp_path / "runs"))
    layout = SweepLayout(Storage(spec.storage), spec.name)
    graph = build_graph(spec)
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    results = {}
    for task in graph.tasks.values():
        results[task.id] = work.execute(task, runners.name("synthetic"), env)
        assert results[task.id].status == vocab.DONE, results[task.id].error
    return layout, sorted(graph.tasks.values(), key=lambda t: t.id), results


def _by_key(steps) -> dict[str, list[tuple]]:
    """Step series by key, each in its order (what MLflow draws)."""
    out: dict[str, list[tuple]] = {}
    for key, step, value in steps:
        out.setdefault(key, []).append((step, value))
    return out


def _raw(layout, task) -> bytes:
    return layout.storage.read_bytes(layout.marker_file(task.kind, task.id))


def _answers(layout, tasks) -> tuple[dict, dict]:
    """(each task verified alone, the same in one pass): they must agree."""
    alone = {t.id: outputs.verify_outputs(layout, t.kind, t.id) for t in tasks}
    return alone, outputs.verify_many(layout, [(t.kind, t.id) for t in tasks])


def test_the_marker_is_compact_and_reads_back_what_the_cache_check_and_the_driver_use(finished):
    layout, tasks, results = finished
    path_eval = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    assert results[path_eval.id].steps and results[path_eval.id].metrics          # the runner's series
    for task in tasks:
        raw = _raw(layout, task)
        stored = json.loads(raw)
        assert stored["version"] == outputs.MARKER_VERSION == 3 and b"\n" not in raw and b'", "' not in raw
        assert all(isinstance(text, str) for text in stored["steps"].values())
        marker = outputs.read_marker(layout, task.kind, task.id)
        result = results[task.id]
        assert _by_key(marker["steps"]) == _by_key(result.steps)                   # MLflow's charts
        assert marker["metrics"] == result.metrics and marker["meta"]["duration_s"] >= 0
        assert set(marker["files"]) == set(marker["sizes"])                         # the cache check's
        assert marker["tables"] == sorted({name.split("/")[1] for name in marker["files"]})
        assert bool(marker["tables"]) == (task.kind != vocab.ALIGN)
    alone, many = _answers(layout, tasks)
    assert alone == many == {t.id: (True, "") for t in tasks}


def test_an_old_indented_marker_with_its_series_still_verifies(finished):
    """Version 2 markers (every sweep written before version 3): the same answers, the same steps."""
    layout, tasks, results = finished
    for task in tasks:
        marker = outputs.read_marker(layout, task.kind, task.id)
        old = {**marker, "version": 2, "steps": [list(x) for x in results[task.id].steps]}   # as version 2 wrote
        layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(old, indent=1).encode())
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    assert _raw(layout, task).startswith(b'{\n "version": 2') and b'[\n   "path.' in _raw(layout, task)
    alone, many = _answers(layout, tasks)
    assert alone == many == {t.id: (True, "") for t in tasks}
    assert outputs.read_marker(layout, task.kind, task.id)["steps"] == [list(x) for x in results[task.id].steps]


@pytest.mark.parametrize("version,read_ahead,indexed", [(2, False, False), (3, False, False), (3, True, False),
                                                     (3, True, True)])
def test_a_damaged_output_and_a_truncated_marker_are_named(finished, version, read_ahead, indexed, monkeypatch):
    """... alone and in a pass, also when the pass reads its markers ahead in threads, in several batches,
    and when a run indexed every marker before the damage (a rewritten marker is read, not its entry)."""
    layout, tasks, _ = finished
    if indexed:
        assert outputs.index_markers(layout, [(t.kind, t.id) for t in tasks]) == len(tasks)
    if read_ahead:
        assert len(tasks) >= 4
        monkeypatch.setattr(outputs, "_PREFETCH_THREADS", 2)
        monkeypatch.setattr(outputs, "_PREFETCH_BATCH", 3)
        read_many, calls = outputs._LocalMarkers.read_many, []
        monkeypatch.setattr(outputs._LocalMarkers, "read_many",
                            lambda self, batch, paths, pool: calls.append(pool) or read_many(self, batch, paths, pool))
    damaged, truncated = [t for t in tasks if t.kind == vocab.PATH_EVAL][:2]
    if version == 2:
        for task in (damaged, truncated):
            old = {**outputs.read_marker(layout, task.kind, task.id), "version": 2}
            layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(old, indent=1).encode())
    fragment = layout.fragment(vocab.PATHS, damaged.id)
    data = bytearray(layout.storage.read_bytes(fragment))
    data[len(data) // 2] ^= 1                                          # same size, other bytes
    layout.storage.write_bytes(fragment, bytes(data))
    marker = layout.marker_file(truncated.kind, truncated.id)
    layout.storage.write_bytes(marker, _raw(layout, truncated)[:-20])
    alone, many = _answers(layout, tasks)
    assert alone == many
    assert alone[damaged.id] == (False, f"sha256 mismatch in {fragment}")
    assert alone[truncated.id] == (False, f"{marker} is unreadable (JSONDecodeError)")
    assert sum(ok for ok, _ in alone.values()) == len(tasks) - 2
    if read_ahead:
        assert len(calls) == -(-len(tasks) // 3) and all(pool is not None for pool in calls)


def test_a_step_series_that_does_not_read_back_is_left_out_not_the_task(finished, caplog):
    """The series only draw MLflow's charts: a garbled one is dropped with a warning; the task stays
    finished (its numbers are in its verified tables). A `steps` that is not a mapping is no marker."""
    layout, tasks, results = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    stored = json.loads(_raw(layout, task))
    first, *rest = stored["steps"]
    stored["steps"][first] = stored["steps"][first][:-5]
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(stored).encode())
    with caplog.at_level(logging.WARNING, logger=marker_format.__name__):
        steps = outputs.read_marker(layout, task.kind, task.id)["steps"]
    assert _by_key(steps) == {k: v for k, v in _by_key(results[task.id].steps).items() if k != first}
    assert f"unreadable step series {first!r}" in caplog.text
    assert outputs.verify_outputs(layout, task.kind, task.id) == (True, "")
    stored["steps"] = [["x", 0, 1.0]]                                   # version 3 holds a mapping
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(stored).encode())
    assert outputs.verify_outputs(layout, task.kind, task.id)[1].endswith("`steps` is not a mapping")


def test_an_indexed_marker_is_not_read_while_its_stamp_holds(finished, monkeypatch):
    """A marker the run indexed is not read again by the pass while its size, mtime, ctime and inode are
    those indexed (the answers stay those of the markers read alone); one rewritten in place to the same
    size with its mtime put back (only its ctime moves) is read and judged; a forged entry that lists
    another task's file is refused with the marker's own reason; a garbled index file is skipped."""
    import os

    from orchestrator.results import marker_index

    layout, tasks, _ = finished
    ids = [(t.kind, t.id) for t in tasks]
    assert outputs.index_markers(layout, ids) == len(tasks)
    reads = []
    read_file = outputs.read_regular_file
    monkeypatch.setattr(outputs, "read_regular_file", lambda path, *a, **k: reads.append(path) or read_file(path, *a, **k))
    assert outputs.verify_many(layout, ids) == {t.id: (True, "") for t in tasks}
    assert reads == []                                                   # every marker answered by its entry

    changed, forged = [t for t in tasks if t.kind == vocab.PATH_EVAL][:2]
    path = layout.marker_file(changed.kind, changed.id)
    raw, info = _raw(layout, changed), os.stat(path)
    other = next(t for t in tasks if t.kind == changed.kind and t.id not in (changed.id, forged.id))
    assert len(other.id) == len(changed.id)
    time.sleep(0.02)                      # ctime follows the kernel's coarse clock (ticks of up to 10 ms)
    with open(path, "r+b") as f:                                   # in place: same inode, same size
        f.write(raw.replace(changed.id.encode(), other.id.encode()))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))        # and the mtime put back: only ctime moved
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (info.st_size, info.st_mtime_ns, info.st_ino)
    assert after.st_ctime_ns != info.st_ctime_ns

    rows = marker_index.read_index(layout)
    entry = marker_index.entry_of(rows[forged.id])
    stolen = layout.fragment(vocab.PATHS, other.id)[len(layout.root) + 1:]
    marker_index.write_index(layout, [(forged.id, entry._replace(files={**entry.files, stolen: "0" * 64}))])
    layout.storage.write_bytes(layout.marker_index_file("index-99999999T999999.999999999-garbled.parquet"), b"PAR1 not one")

    reads.clear()
    alone, many = _answers(layout, tasks)
    assert alone[changed.id] == many[changed.id] == (False, f"{path} is not a marker of this task")
    forged_path = layout.marker_file(forged.kind, forged.id)
    assert many[forged.id] == (False, f"{forged_path} lists {stolen!r}, which is not an output of this task")
    assert alone[forged.id] == (True, "")              # its marker itself is fine: only the entry was forged
    assert {k: v for k, v in many.items() if k not in (changed.id, forged.id)} == \
        {t.id: (True, "") for t in tasks if t.id not in (changed.id, forged.id)}
    assert path in reads and forged_path not in reads


def test_a_checkpoint_the_run_hashed_when_it_indexed_the_task_is_hashed_again_only_once_it_changed(finished,
                                                                                                   monkeypatch):
    """`status` hashed every checkpoint on every call (at paper scale ~250 files of ~40 MB): a checkpoint
    that the run hashed when it indexed the task is not hashed again while its size, mtime, ctime and
    inode hold; rewritten in place to the same size with its mtime put back, it is hashed and named. A
    `hashed` key inside a marker itself is not trusted."""
    import hashlib
    import os

    from orchestrator.results import marker_index

    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PRETRAIN)
    checkpoint = layout.checkpoint_files(task.kind, task.id)["model.safetensors"]
    blob = bytes(range(256)) * 64
    layout.storage.write_bytes(checkpoint, blob)
    name = checkpoint[len(layout.root) + 1:]
    marker = json.loads(_raw(layout, task))
    marker["files"][name], marker["sizes"][name] = hashlib.sha256(blob).hexdigest(), len(blob)
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())
    ids = [(t.kind, t.id) for t in tasks]
    assert outputs.index_markers(layout, ids) == len(tasks)
    hashed = []
    file_sha256 = outputs._file_sha256
    monkeypatch.setattr(outputs, "_file_sha256", lambda storage, path: hashed.append(path) or file_sha256(storage, path))
    assert outputs.verify_many(layout, ids)[task.id] == (True, "") and checkpoint not in hashed

    info = os.stat(checkpoint)
    time.sleep(0.02)                      # ctime follows the kernel's coarse clock (ticks of up to 10 ms)
    with open(checkpoint, "r+b") as f:
        f.write(b"\xff")                                              # same size, same inode
    os.utime(checkpoint, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.stat(checkpoint).st_ctime_ns != info.st_ctime_ns
    alone, many = _answers(layout, tasks)
    assert alone[task.id] == many[task.id] == (False, f"sha256 mismatch in {checkpoint}") and checkpoint in hashed

    hashed.clear()                                                    # a marker cannot vouch for its own files
    layout.storage.write_bytes(checkpoint, blob)
    marker["hashed"] = {name: list(marker_index.stamp_of(os.stat(checkpoint)))}
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())
    assert outputs.verify_many(layout, ids)[task.id] == (True, "") and checkpoint in hashed



def test_a_checkpoint_damaged_before_the_run_indexed_it_is_not_vouched_for(finished):
    """The run hashes a checkpoint when it indexes the task and keeps its stamp only where the sha256 is the
    listed one: one damaged in between (after the task wrote it) is hashed by `status` and named."""
    import hashlib

    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PRETRAIN)
    checkpoint = layout.checkpoint_files(task.kind, task.id)["model.safetensors"]
    blob = bytes(range(256)) * 64
    name = checkpoint[len(layout.root) + 1:]
    marker = json.loads(_raw(layout, task))
    marker["files"][name], marker["sizes"][name] = hashlib.sha256(blob).hexdigest(), len(blob)
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())
    layout.storage.write_bytes(checkpoint, blob[::-1])                  # same size, other bytes
    ids = [(t.kind, t.id) for t in tasks]
    assert outputs.index_markers(layout, ids) == len(tasks)
    assert outputs.verify_many(layout, ids)[task.id] == (False, f"sha256 mismatch in {checkpoint}")


def test_a_fragment_rewritten_after_compaction_is_checked_not_vouched_for_by_its_part(finished):
    """A fragment counts as compacted only while its marker lists the sha256 the manifest recorded: a task
    that ran again after compaction lists its new fragment's sha256, and that file must be there and match."""
    import hashlib

    from orchestrator.results import compact

    layout, tasks, _ = finished
    compact.compact(layout)
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    fragment = layout.fragment(vocab.PATHS, task.id)
    assert not layout.storage.exists(fragment)                           # absorbed into the part
    assert outputs.verify_outputs(layout, task.kind, task.id) == (True, "")
    rerun = b"the rerun's fragment"
    layout.storage.write_bytes(fragment, rerun)
    marker = json.loads(_raw(layout, task))
    name = fragment[len(layout.root) + 1:]
    marker["files"][name], marker["sizes"][name] = hashlib.sha256(rerun).hexdigest(), len(rerun)
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())
    alone, many = _answers(layout, tasks)
    assert alone[task.id] == many[task.id] == (True, "")
    layout.storage.delete(fragment)                                      # the rerun's fragment is lost
    alone, many = _answers(layout, tasks)
    assert alone[task.id] == many[task.id] == (False, f"missing {fragment}")


def test_a_fragment_compacted_into_a_damaged_part_no_longer_verifies(finished):
    """A fragment's rows count as compacted only while the part holding them has its recorded sha256: once
    the part is damaged, the tasks whose fragments it absorbed are not finished (alone or in a pass)."""
    from orchestrator.results import compact, manifest

    layout, tasks, _ = finished
    compact.compact(layout)
    ids = [(t.kind, t.id) for t in tasks]
    assert outputs.verify_many(layout, ids) == {t.id: (True, "") for t in tasks}
    (name,) = manifest.read_manifest(layout, vocab.PATHS).parts
    part = layout.compacted_file(vocab.PATHS, name)
    data = bytearray(layout.storage.read_bytes(part))
    data[len(data) // 2] ^= 1                                            # same size, other bytes
    layout.storage.write_bytes(part, bytes(data))
    alone, many = _answers(layout, tasks)
    assert alone == many
    path_evals = [t for t in tasks if t.kind == vocab.PATH_EVAL]
    for task in path_evals:
        assert many[task.id] == (False, f"missing {layout.fragment(vocab.PATHS, task.id)}")


@pytest.mark.parametrize("change", [lambda b: b[:-10], lambda b: b + b"appended"], ids=["truncated", "grown"])
def test_a_fragment_of_another_size_is_told_by_its_size_without_hashing_it(finished, monkeypatch, change):
    """The marker records each file's size: a file of another size, shorter or longer, fails the check at once
    (named a size mismatch), before any hashing."""
    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    fragment = layout.fragment(vocab.PATHS, task.id)
    layout.storage.write_bytes(fragment, change(layout.storage.read_bytes(fragment)))
    hashed = []
    file_sha256 = outputs._file_sha256
    monkeypatch.setattr(outputs, "_file_sha256", lambda storage, path: hashed.append(path) or file_sha256(storage, path))
    alone, many = _answers(layout, tasks)
    assert alone[task.id] == many[task.id] == (False, f"size mismatch in {fragment}")
    assert fragment not in hashed


@pytest.mark.parametrize("digest", ["0" * 63, "0" * 65, "0" * 64 + "\n", "A" * 64, 7])
def test_a_marker_listing_a_malformed_sha256_is_no_marker(finished, digest):
    """A recorded sha256 is exactly 64 lowercase hex digits; anything else makes the marker not this task's."""
    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    marker = json.loads(_raw(layout, task))
    name = next(iter(marker["files"]))
    marker["files"][name] = digest
    path = layout.marker_file(task.kind, task.id)
    layout.storage.write_bytes(path, json.dumps(marker).encode())
    assert outputs.read_marker(layout, task.kind, task.id) is None
    alone, many = _answers(layout, tasks)
    assert alone[task.id] == many[task.id] == (False, f"{path} holds a malformed sha256 for {name}")


def test_an_output_that_is_gone_or_not_a_regular_file_is_missing(finished):
    """A fragment deleted, or a directory where it was: the task does not verify, alone or in a pass."""
    import os

    layout, tasks, _ = finished
    gone, replaced = [t for t in tasks if t.kind == vocab.PATH_EVAL][:2]
    for task in (gone, replaced):
        os.remove(layout.fragment(vocab.PATHS, task.id))
    os.mkdir(layout.fragment(vocab.PATHS, replaced.id))
    alone, many = _answers(layout, tasks)
    assert alone == many
    for task in (gone, replaced):
        assert alone[task.id] == (False, f"missing {layout.fragment(vocab.PATHS, task.id)}")
    assert sum(ok for ok, _ in alone.values()) == len(tasks) - 2


@pytest.mark.parametrize("key, value", [("tables", {"paths": 1}), ("tables", "paths"), ("metrics", []),
                                        ("meta", "x")])
def test_a_marker_whose_tables_metrics_or_meta_have_the_wrong_shape_is_no_marker(finished, key, value):
    """`tables` is a list, `metrics` and `meta` mappings: a marker holding anything else is not read as one
    (alone or in a pass), and says which key."""
    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    marker = json.loads(_raw(layout, task))
    marker[key] = value
    path = layout.marker_file(task.kind, task.id)
    layout.storage.write_bytes(path, json.dumps(marker).encode())
    assert outputs.read_marker(layout, task.kind, task.id) is None
    alone, many = _answers(layout, tasks)
    shape = "a list" if key == "tables" else "a mapping"
    assert alone[task.id] == many[task.id] == (False, f"{path}: `{key}` is not {shape}")


def test_the_tasks_table_a_task_returns_is_neither_written_nor_listed_in_its_marker(finished):
    """The driver writes a task's `tasks` row (it knows the MLflow run): rows a task hands back for that table
    are dropped, and the marker names only the tables the task wrote."""
    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    marker = outputs.write_outputs(layout, task, outputs.TaskOutput(tables={vocab.TASKS: [{"task_id": task.id}]}))
    assert marker["tables"] == [] and marker["files"] == {}
    assert outputs.read_marker(layout, task.kind, task.id)["tables"] == []


def test_a_marker_with_a_size_that_is_not_a_whole_number_is_still_indexed(finished):
    """The index keeps the sizes that are whole numbers and leaves the others out: one odd marker (a size
    written as text) neither keeps the other markers out of the index nor its own task from verifying."""
    from orchestrator.results import marker_index

    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    marker = json.loads(_raw(layout, task))
    name = next(iter(marker["sizes"]))
    marker["sizes"][name] = str(marker["sizes"][name])
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(marker).encode())
    ids = [(t.kind, t.id) for t in tasks]
    assert outputs.index_markers(layout, ids) == len(tasks)
    entry = marker_index.entry_of(marker_index.read_index(layout)[task.id])
    assert name in entry.files and name not in entry.sizes
    assert outputs.verify_many(layout, ids) == {t.id: (True, "") for t in tasks}


def test_a_file_is_read_for_the_index_only_when_it_is_a_regular_file_unchanged_by_the_read(tmp_path):
    """`_while_unchanged`: the read and the file's stamp when the file is a regular file whose stamp is the
    same before and after the read; None for a file changed meanwhile, and for anything but a regular file
    (which is not read at all)."""
    import os

    from orchestrator.results import marker_index

    path = tmp_path / "done.json"
    path.write_bytes(b"{}")

    def rewritten(p):
        data = open(p, "rb").read()
        with open(p, "wb") as f:
            f.write(b'{"x": 1}')
        return data

    assert outputs._while_unchanged(str(path), rewritten) is None
    assert outputs._while_unchanged(str(path), lambda p: open(p, "rb").read()) == \
        (b'{"x": 1}', marker_index.stamp_of(os.lstat(path)))
    reads = []
    assert outputs._while_unchanged(str(tmp_path), lambda p: reads.append(p) or b"") is None and reads == []
    assert outputs._while_unchanged(str(tmp_path / "gone"), lambda p: reads.append(p) or b"") is None and reads == []


def test_a_tasks_table_returned_before_the_others_drops_only_its_own_rows(finished):
    """Rows a task hands back for the `tasks` table are dropped wherever that table comes in its output: the
    tables after it are still written and listed in the marker (else the task is finished without its rows)."""
    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    produced = runners.synthetic(task, env)
    assert produced.tables and vocab.TASKS not in produced.tables
    output = outputs.TaskOutput(tables={vocab.TASKS: [{"task_id": task.id}], **produced.tables},
                                metrics=produced.metrics, steps=produced.steps)
    marker = outputs.write_outputs(layout, task, output)
    assert marker["tables"] == sorted(produced.tables)
    assert {layout.fragment(t, task.id)[len(layout.root) + 1:] for t in produced.tables} <= set(marker["files"])
    assert outputs.verify_outputs(layout, task.kind, task.id) == (True, "")


def test_a_file_replaced_by_another_of_the_same_size_while_read_is_not_indexed(tmp_path):
    """`_while_unchanged` compares the whole stamp (size, mtime, ctime, inode), not the size alone: a marker
    replaced meanwhile by one of the same size (a rename over it) is read again by `status`, not indexed with
    the bytes of the one it replaced."""
    import os

    path = tmp_path / "done.json"
    path.write_bytes(b'{"a": 1}')

    def replaced(p):
        data = open(p, "rb").read()
        other = tmp_path / "other.json"
        other.write_bytes(b'{"b": 2}')
        os.replace(other, p)
        return data

    assert outputs._while_unchanged(str(path), replaced) is None


def test_a_set_aside_marker_is_taken_back_only_where_its_parents_gave_the_bits_it_was_made_from(tmp_path):
    """A fine-tuning made from a pretrained model records that model's `input_digest` (its checkpoint's sha256s).
    Set aside while the model is recomputed, it is taken back where the new checkpoint has the same bits, and
    given up (the set-aside file removed: the task runs again) where they differ, where its own outputs no
    longer verify, or where it recorded no inputs (written before they were recorded)."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "aside")
    graph = build_graph(load_spec(SMOKE_SPEC))
    child = next(t for t in graph.tasks.values() if t.kind == vocab.FINETUNE)
    parent = graph.tasks[child.parents[0]]
    kinds = {parent.id: parent.kind}
    outputs.write_outputs(layout, parent, outputs.TaskOutput(checkpoint={"w": torch.arange(4.0)},
                                                             meta={"duration_s": 1.0}))
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"), parent_kinds=kinds)
    assert work.execute(child, runners.name("synthetic"), env).status == vocab.DONE    # a task records its inputs
    assert outputs.read_marker(layout, child.kind, child.id)["meta"]["inputs"] == {
        parent.id: outputs.input_digest(outputs.read_marker(layout, parent.kind, parent.id))}
    made = outputs.TaskOutput(checkpoint={"w": torch.ones(3)}, meta={"inputs": outputs.inputs_of(layout, kinds)})
    outputs.write_outputs(layout, child, made)
    aside = layout.set_aside_marker_file(child.kind, child.id)

    def set_aside_then_take_back():
        outputs.set_aside(layout, child.kind, child.id)
        assert outputs.verify_outputs(layout, child.kind, child.id) == (False, outputs.NOT_FINISHED)
        return outputs.take_back(layout, child.kind, child.id, kinds)

    # the parent recomputed with the same bits (its meta.json's time differs: not something the child read)
    outputs.write_outputs(layout, parent, outputs.TaskOutput(checkpoint={"w": torch.arange(4.0)},
                                                             meta={"duration_s": 2.0}))
    assert set_aside_then_take_back()["task_id"] == child.id and not layout.storage.exists(aside)
    assert outputs.verify_outputs(layout, child.kind, child.id) == (True, "")
    # ... with other bits: given up
    outputs.write_outputs(layout, parent, outputs.TaskOutput(checkpoint={"w": torch.arange(4.0) + 1e-6}))
    assert set_aside_then_take_back() is None and not layout.storage.exists(aside)
    assert not outputs.verify_outputs(layout, child.kind, child.id)[0]
    # the child's own outputs damaged: given up
    outputs.write_outputs(layout, child, outputs.TaskOutput(checkpoint={"w": torch.ones(3)},
                                                            meta={"inputs": outputs.inputs_of(layout, kinds)}))
    path = layout.checkpoint_files(child.kind, child.id)["model.safetensors"]
    layout.storage.write_bytes(path, layout.storage.read_bytes(path)[:-1] + b"\0")
    assert set_aside_then_take_back() is None and not layout.storage.exists(aside)
    # no inputs recorded (written before they were): given up
    outputs.write_outputs(layout, child, outputs.TaskOutput(checkpoint={"w": torch.ones(3)}))
    assert set_aside_then_take_back() is None and not layout.storage.exists(aside)


def test_a_set_aside_marker_is_given_up_while_a_parent_it_was_made_from_has_no_marker(tmp_path):
    """Taken back only where every parent has a marker now that gives the digest recorded: a parent whose
    done.json is gone (it runs again, or failed) gives up the child whatever the child recorded of it, also
    where the child recorded nothing of it."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "aside")
    graph = build_graph(load_spec(SMOKE_SPEC))
    child = next(t for t in graph.tasks.values() if t.kind == vocab.FINETUNE)
    parent = graph.tasks[child.parents[0]]
    kinds = {parent.id: parent.kind}
    outputs.write_outputs(layout, parent, outputs.TaskOutput(checkpoint={"w": torch.arange(4.0)}))
    for recorded in (outputs.inputs_of(layout, kinds), {}):
        outputs.write_outputs(layout, child, outputs.TaskOutput(checkpoint={"w": torch.ones(3)},
                                                                meta={"inputs": recorded}))
        outputs.set_aside(layout, child.kind, child.id)
        outputs.invalidate(layout, parent.kind, parent.id)
        assert outputs.take_back(layout, child.kind, child.id, kinds) is None
        assert not layout.storage.exists(layout.set_aside_marker_file(child.kind, child.id))
        outputs.write_outputs(layout, parent, outputs.TaskOutput(checkpoint={"w": torch.arange(4.0)}))


def test_a_parents_marker_reached_through_a_link_is_refused_not_left_out(tmp_path):
    """`inputs_of` leaves out a parent whose marker cannot be read (the task is then only recomputed), but a
    marker reached through a symbolic link is refused (LinkError), as every read under the sweep refuses it:
    not read, and not quietly taken for a parent that has none."""
    from orchestrator.storage.layout import LinkError

    layout = SweepLayout(Storage(str(tmp_path / "runs")), "linked")
    graph = build_graph(load_spec(SMOKE_SPEC))
    parent = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN)
    elsewhere = tmp_path / "elsewhere.json"
    outputs.write_outputs(layout, parent, outputs.TaskOutput(checkpoint={"w": torch.arange(4.0)}))
    marker = layout.marker_file(parent.kind, parent.id)
    elsewhere.write_bytes(layout.storage.read_bytes(marker))
    layout.storage.delete(marker)
    (tmp_path / "runs" / "linked").joinpath(marker.split("/linked/", 1)[1]).symlink_to(elsewhere)
    with pytest.raises(LinkError):
        outputs.inputs_of(layout, {parent.id: parent.kind})


def test_a_path_tasks_input_digest_is_that_of_its_paths_rows_alone():
    """What a path task's children read of it is its `paths` rows: its `input_digest` follows their sha256 and
    not that of its other outputs (its `barriers` rows, its meta.json)."""
    def marker(paths: str, barriers: str) -> dict:
        return {"files": {"results/paths/e.parquet": paths, "results/barriers/e.parquet": barriers,
                          "tasks/path_eval/e/meta.json": "c" * 64}}
    assert outputs.input_digest(marker("a" * 64, "b" * 64)) == outputs.input_digest(marker("a" * 64, "d" * 64))
    assert outputs.input_digest(marker("a" * 64, "b" * 64)) != outputs.input_digest(marker("e" * 64, "b" * 64))


def test_a_damaged_checkpoint_is_named_by_its_path_in_the_sweep(finished):
    """`load_checkpoint` of a task whose safetensors file was altered raises CorruptCheckpointError naming the
    file by its storage path (which task's it is), not by its bare file name."""
    from tasks.checkpoint import CorruptCheckpointError

    layout, tasks, _ = finished
    task = next(t for t in tasks if t.kind == vocab.PRETRAIN)
    outputs.write_outputs(layout, task, outputs.TaskOutput(checkpoint={"w": torch.ones(3)}))
    paths = layout.checkpoint_files(task.kind, task.id)
    name, path = next((n, p) for n, p in paths.items() if n.endswith(".safetensors"))
    data = bytearray(layout.storage.read_bytes(path))
    data[-8:] = bytes(8)
    layout.storage.write_bytes(path, bytes(data))
    with pytest.raises(CorruptCheckpointError) as caught:
        outputs.load_checkpoint(layout, task.kind, task.id)
    assert caught.value.file == path and task.id in str(caught.value)
