"""tasks.checkpoint: round trip, provenance, atomic save, and refusal of altered or pickled files."""
from __future__ import annotations

import hashlib
import json
import pickle
import platform
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch

from tasks.checkpoint import (FORMAT_VERSION, META_FILE, TENSORS_FILE, CorruptCheckpointError, checkpoint_files,
                              load_checkpoint, read_checkpoint, read_record, save_checkpoint)


def sample_tensors() -> dict[str, torch.Tensor]:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        "w": base,
        "w_view": base[1],            # shares storage with `w`
        "w_t": base.t(),              # non-contiguous
        "half": torch.linspace(-1, 1, 5, dtype=torch.bfloat16),
        "count": torch.tensor(7, dtype=torch.int64),
    }


def test_round_trip_in_memory_and_on_disk(tmp_path):
    tensors, meta = sample_tensors(), {"task_id": "pretrain-abc", "epochs": 3, "nested": {"a": [1, 2.5, None]}}
    files = checkpoint_files(tensors, meta)
    assert set(files) == {TENSORS_FILE, META_FILE}
    loaded, loaded_meta = read_checkpoint(files)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        torch.testing.assert_close(loaded[name], value, rtol=0, atol=0)
        assert loaded[name].dtype == value.dtype

    record = read_record(files)
    assert record["sha256"] == hashlib.sha256(files[TENSORS_FILE]).hexdigest()
    assert record["torch_version"] == torch.__version__
    assert record["python_version"] == platform.python_version()
    assert record["created_utc"]

    save_checkpoint(tmp_path / "ckpt", tensors, meta)
    save_checkpoint(tmp_path / "ckpt", {"w": tensors["w"] * 2}, {"v": 2})  # overwrite in place
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [META_FILE, TENSORS_FILE]  # no temp files
    loaded, loaded_meta = load_checkpoint(tmp_path / "ckpt")
    assert loaded_meta == {"v": 2}
    torch.testing.assert_close(loaded["w"], tensors["w"] * 2)


def test_flipped_byte_is_refused(tmp_path):
    directory = save_checkpoint(tmp_path / "ckpt", sample_tensors(), {})
    path = directory / TENSORS_FILE
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside tensor data: safetensors alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors`: sha256 .* does not match"):
        load_checkpoint(directory)


def test_missing_or_garbled_meta_is_refused(tmp_path):
    files = checkpoint_files(sample_tensors(), {})
    with pytest.raises(CorruptCheckpointError, match=r"meta\.json`: missing"):
        read_checkpoint({TENSORS_FILE: files[TENSORS_FILE]})
    with pytest.raises(CorruptCheckpointError, match="not valid JSON"):
        read_checkpoint({**files, META_FILE: b"{not json"})
    directory = save_checkpoint(tmp_path / "ckpt", sample_tensors(), {})
    (directory / META_FILE).unlink()
    with pytest.raises(CorruptCheckpointError, match=r"ckpt/meta\.json`: missing"):
        load_checkpoint(directory)


class _Payload:
    """Unpickling this creates `marker`: proof that a loader executed pickle code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_renamed_to_safetensors_is_refused_without_running_it(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()  # the payload is live

    marker = tmp_path / "pwned"
    evil = pickle.dumps({"w": _Payload(marker)})
    good = checkpoint_files(sample_tensors(), {})
    directory = tmp_path / "ckpt"
    directory.mkdir()
    (directory / TENSORS_FILE).write_bytes(evil)
    (directory / META_FILE).write_bytes(good[META_FILE])
    with pytest.raises(CorruptCheckpointError, match="does not match"):
        load_checkpoint(directory)

    # even with a meta.json whose sha256 matches the pickle, it is parsed as safetensors only
    record = json.loads(good[META_FILE])
    record.update(sha256=hashlib.sha256(evil).hexdigest(), size=len(evil))
    (directory / META_FILE).write_text(json.dumps(record))
    with pytest.raises(CorruptCheckpointError, match="not a safetensors file"):
        load_checkpoint(directory)
    assert not marker.exists()


def test_bad_inputs_name_the_problem():
    with pytest.raises(TypeError, match=r"'lr' is a float"):
        checkpoint_files({"lr": 0.1}, {})
    with pytest.raises(TypeError, match="JSON-able"):
        checkpoint_files({}, {"loss": float("nan")})


def test_a_record_of_another_format_or_without_its_fields_or_tensors_is_refused():
    files = checkpoint_files(sample_tensors(), {"epochs": 3})
    record = json.loads(files[META_FILE])
    for change, words in (({"format": FORMAT_VERSION + 1}, f"format {FORMAT_VERSION + 1}"),
                          ({"sha256": None}, "needs `sha256` and `meta`")):
        altered = json.dumps({**record, **change}).encode()
        with pytest.raises(CorruptCheckpointError, match=words):
            read_checkpoint({**files, META_FILE: altered})
    without_meta = json.dumps({k: v for k, v in record.items() if k != "meta"}).encode()
    with pytest.raises(CorruptCheckpointError, match="needs `sha256` and `meta`"):
        read_checkpoint({**files, META_FILE: without_meta})
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors`: missing"):
        read_checkpoint({META_FILE: files[META_FILE]})


def test_a_corrupt_file_on_disk_is_named_by_its_path(tmp_path):
    directory = save_checkpoint(tmp_path / "ckpt", sample_tensors(), {})
    path = directory / TENSORS_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint(directory)
    assert info.value.file == str(path) and str(path) in str(info.value)


def test_a_save_that_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    import tasks.checkpoint as checkpoint_module

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ckpt", sample_tensors(), {})
    assert list((tmp_path / "ckpt").iterdir()) == []


def test_a_save_interrupted_after_the_tensors_leaves_no_meta_json(tmp_path, monkeypatch):
    """meta.json is written last: a save that dies after its first file never leaves a meta.json beside
    missing or older tensors, so a half-written checkpoint reads as missing, never as complete."""
    import tasks.checkpoint as checkpoint_module

    real_replace, replaced = checkpoint_module.os.replace, []

    def replace_once(source, target):
        if replaced:
            raise OSError("killed")
        replaced.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace_once)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(tmp_path / "ckpt", sample_tensors(), {})
    assert replaced == [TENSORS_FILE] and not (tmp_path / "ckpt" / META_FILE).exists()
    with pytest.raises(CorruptCheckpointError, match=r"meta\.json`: missing"):
        load_checkpoint(tmp_path / "ckpt")


def test_the_record_holds_the_tensor_files_size_and_a_utc_creation_time():
    """meta.json records `size` (bytes of model.safetensors) and `created_utc`, an ISO time in UTC (offset 0)
    within a minute of now."""
    before = datetime.now(timezone.utc)
    files = checkpoint_files(sample_tensors(), {})
    record = read_record(files)
    assert record["size"] == len(files[TENSORS_FILE])
    created = datetime.fromisoformat(record["created_utc"])
    assert created.utcoffset() == timedelta(0)
    assert abs(created - before) < timedelta(minutes=1)


def test_a_corrupt_checkpoint_error_keeps_its_file_and_problem_across_processes():
    """Ray pickles the error: the copy names the same file and the same problem, in that order."""
    error = CorruptCheckpointError("run/ckpt/model.safetensors", "sha256 mismatch")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.problem) == ("run/ckpt/model.safetensors", "sha256 mismatch") and str(copy) == str(error)


@pytest.mark.parametrize("text", [b"\xff\xfe{}", b"[1, 2]", b"null", b"[" * 100_000],
                         ids=["not-utf8", "a-list", "null", "nested-too-deep"])
def test_a_meta_json_that_holds_no_checkpoint_record_is_a_corrupt_checkpoint(text):
    """Whatever meta.json holds, reading it either gives a record or raises CorruptCheckpointError naming the
    file (a resume treats that as "start over"); never a UnicodeDecodeError, AttributeError or RecursionError."""
    files = checkpoint_files(sample_tensors(), {})
    with pytest.raises(CorruptCheckpointError, match=r"meta\.json`: not (valid JSON|a checkpoint record)"):
        read_checkpoint({**files, META_FILE: text})


def test_a_checkpoint_written_in_the_documented_format_1_layout_is_read():
    """The module docstring's layout, written by hand: {"format": 1, "sha256", "size", "torch_version",
    "python_version", "created_utc", "meta"} beside a safetensors file; checkpoints on disk from earlier runs must
    stay readable, and a new record has exactly these fields."""
    from safetensors.torch import save

    blob = save({"w": torch.arange(3, dtype=torch.float32)})
    record = {"format": 1, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob), "torch_version": "2.0.0",
              "python_version": "3.11.0", "created_utc": "2026-01-01T00:00:00+00:00", "meta": {"epochs": 2}}
    tensors, meta = read_checkpoint({TENSORS_FILE: blob, META_FILE: json.dumps(record).encode()})
    assert meta == {"epochs": 2} and torch.equal(tensors["w"], torch.arange(3, dtype=torch.float32))
    assert set(read_record(checkpoint_files(sample_tensors(), {}))) == set(record)


def test_a_directory_where_a_checkpoint_file_belongs_is_a_missing_file(tmp_path):
    """"CorruptCheckpointError if a file is missing": a directory of that name is no file (not an OSError)."""
    directory = save_checkpoint(tmp_path / "ckpt", sample_tensors(), {})
    (directory / TENSORS_FILE).unlink()
    (directory / TENSORS_FILE).mkdir()
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors`: missing"):
        load_checkpoint(directory)


def test_a_checkpoint_is_saved_into_a_directory_whose_parents_do_not_exist_yet(tmp_path):
    """`save_checkpoint` writes into `directory`, creating it with any missing parents (a task's checkpoint
    folder inside an output tree not created yet), and the files read back."""
    target = tmp_path / "run" / "task-1" / "ckpt"
    assert save_checkpoint(target, sample_tensors(), {"epoch": 1}) == target
    tensors, meta = load_checkpoint(target)
    assert meta == {"epoch": 1} and torch.equal(tensors["w"], sample_tensors()["w"])


def test_a_record_that_names_no_format_is_refused_not_read_as_format_1():
    """A meta.json record must say which format it is: one without `format` is a corrupt checkpoint, not
    silently taken for the format this code reads."""
    files = checkpoint_files(sample_tensors(), {"epochs": 3})
    record = json.loads(files[META_FILE])
    del record["format"]
    altered = {**files, META_FILE: json.dumps(record).encode()}
    with pytest.raises(CorruptCheckpointError, match="format None"):
        read_record(altered)
    with pytest.raises(CorruptCheckpointError, match="format None"):
        read_checkpoint(altered)
