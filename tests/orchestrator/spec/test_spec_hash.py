"""A sweep's identity: `spec_hash` (sha256 of the canonical JSON of the spec's science part),
`differences` between a stored and a new resolved spec, and `dump_spec`, the record a sweep keeps. The
hash must change exactly when what the sweep computes changes: never with how a spec is written (key
order, 3 vs 3.0), always with a setting; `differences` lists every science key that differs, added or
removed."""
from __future__ import annotations

import hashlib
import json

from orchestrator.spec import sweep_spec as S
from orchestrator.spec.sweep_spec import load_spec, parse_spec


def test_the_spec_hash_is_the_sha256_of_the_canonical_json_of_the_science_part():
    """The docstring's recipe: sorted keys, no whitespace, UTF-8; storage and MLflow are not in it."""
    spec = parse_spec("name: x\nstorage: /somewhere\nfinetune: {lam: 3}\n")
    part = {k: v for k, v in spec.resolved.items() if k not in ("storage", "mlflow", "resources", "max_concurrent",
                                                                 "description")}
    part["data"] = {k: v for k, v in part["data"].items() if k != "root"}
    assert S.science(spec.resolved) == part
    canonical = json.dumps(part, sort_keys=True, separators=(",", ":")).encode("utf-8")
    assert S.spec_hash(spec) == hashlib.sha256(canonical).hexdigest()


def test_the_order_keys_are_written_in_a_zipped_axis_is_not_a_new_spec():
    """`{finetune.lr: [...], finetune.epochs: [...]}` and the same group written the other way round are
    the same combinations: one sweep, one hash."""
    a = parse_spec("name: x\naxes: [{finetune.lr: [0.01, 0.1], finetune.epochs: [30, 10]}]\n")
    b = parse_spec("name: x\naxes: [{finetune.epochs: [30, 10], finetune.lr: [0.01, 0.1]}]\n")
    assert {frozenset(v.swept) for v in a.variants} == {frozenset(v.swept) for v in b.variants}
    assert S.spec_hash(a) == S.spec_hash(b)
    assert S.spec_hash(a) != S.spec_hash(parse_spec("name: x\naxes: [{finetune.lr: [0.01, 0.1], "
                                                    "finetune.epochs: [10, 30]}]\n"))


def test_a_whole_number_for_a_float_setting_is_the_same_spec_as_its_float():
    """`finetune.lam: 3` is the float 3.0 (a float setting), so it resolves, hashes and reads as 3.0."""
    whole, real = parse_spec("name: x\nfinetune: {lam: 3}\n"), parse_spec("name: x\nfinetune: {lam: 3.0}\n")
    assert type(whole.variants[0].finetune.lam) is float
    assert type(whole.resolved["finetune"]["lam"]) is float
    assert S.spec_hash(whole) == S.spec_hash(real)


def test_a_science_key_the_new_spec_no_longer_has_is_a_difference():
    """A key only the stored spec has (one mmc-sweep since removed, or an edited record) is a change,
    written `key: old -> '<absent>'`, like a key only the new one has at a non-default value."""
    new = load_spec(None).resolved
    old = json.loads(json.dumps(new))
    old["finetune"]["retired_setting"] = 7
    old["retired_top_key"] = [1]
    assert S.differences(old, new) == ["finetune.retired_setting: 7 -> '<absent>'",
                                       "retired_top_key: [1] -> '<absent>'"]
    assert S.differences(new, new) == []


def test_the_dumped_spec_redacts_the_credentials_of_the_storage_and_tracking_uris():
    """dump_spec's first line: "Credentials in URIs are redacted"; storage and the MLflow tracking URI are URIs."""
    spec = load_spec(None, ["mlflow.tracking_uri=https://alice:s3cret@mlflow.example.org:5000",
                            "storage=s3://AKIAKEY:topsecret@bucket/runs"])
    text = S.dump_spec(spec)
    assert "s3cret" not in text and "alice" not in text and "topsecret" not in text and "AKIAKEY" not in text
    assert "mlflow.example.org:5000" in text and "bucket/runs" in text


def test_a_sweeps_own_spec_file_keeps_the_layer_it_is_read_as():
    """parse_spec: `label` names the layer; a sweep's spec.yaml read with `stored:<path>` is that layer
    for every key, even though its text starts like a resolved spec (only an unlabelled text is
    taken as `resolved:`)."""
    text = S.dump_spec(load_spec(None))
    stored = parse_spec(text, "spec.yaml", label="stored:spec.yaml")
    assert stored.provenance.keys["name"] == "stored:spec.yaml"
    assert stored.provenance.keys["finetune.lam"] == "stored:spec.yaml"
    assert parse_spec(text, "spec.yaml").provenance.keys["name"] == "resolved:spec.yaml"
    assert not stored.explicit("finetune.methods")


def test_a_swept_spec_given_other_storage_is_the_same_spec():
    """`with_top(storage=...)` (`--storage`) changes where, not what: the resolved spec still writes the
    first combination of swept values, so only `storage` differs and the hash is the same."""
    spec = parse_spec("name: x\nfinetune: {lam: {grid: [3, 1, 10]}}\n")
    moved = spec.with_top(storage="/elsewhere")
    assert moved.resolved == {**spec.resolved, "storage": "/elsewhere"}
    assert moved.resolved["finetune"]["lam"] == 3.0
    assert S.spec_hash(moved) == S.spec_hash(spec) and S.differences(spec.resolved, moved.resolved) == []


def test_a_key_a_stored_spec_of_a_dataset_that_needs_a_root_lacks_at_its_default_is_no_change(tmp_path):
    """A sweep of a dataset that is not built in (cifar10, which needs `data.root`) stored before a key was added
    to mmc-sweep: the key at the value it takes by default is no change, as for the built-in dataset (the default
    is then the declared one: a profile cannot be resolved without a root); the key at another value is."""
    new = parse_spec(f"name: x\ndata: {{dataset: cifar10, root: '{tmp_path}'}}\n").resolved
    old = json.loads(json.dumps(new))
    assert new["paths"]["bn_data"] == "clean"
    del old["paths"]["bn_data"]
    assert S.differences(old, new) == []
    changed = json.loads(json.dumps(new))
    changed["paths"]["bn_data"] = "mix"
    assert S.differences(old, changed) == ["paths.bn_data: '<absent>' -> 'mix'"]
