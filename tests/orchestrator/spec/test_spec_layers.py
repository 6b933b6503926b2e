"""Which layer set each key (`SweepSpec.provenance`, `mmc-sweep plan --resolved --explain`): the
declared default, the dataset's profile, the sweep a spec `extends` (and the one that extends), the
file, a `key=value` override; swept keys name the layer that swept them. The explained spec is the
resolved spec, loadable again, with credentials redacted."""
from __future__ import annotations

import yaml

from orchestrator import cli
from orchestrator.spec.schema import declared
from orchestrator.spec.explain import explain_spec
from orchestrator.spec.sweep_spec import Variant, load_spec, parse_spec
from tests.conftest import write_spec


def leaves(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_each_key_names_its_layer(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\nextends: default\nfinetune: {lam: 3}\nresources: {pretrain: {cpus: 2}}\n")
    spec = load_spec(path, ["finetune.lr=0.5", "paths.num_alphas=5", "resources.pretrain.gpus=0.5"])
    keys, file = spec.provenance.keys, f"file:{path}"
    assert spec.provenance.layers == ("default", "profile:digits", "extends:default", file,
                                      "override:finetune.lr=0.5", "override:paths.num_alphas=5",
                                      "override:resources.pretrain.gpus=0.5")
    # `resources` is in no layer below the file: the file's mapping comes in whole, its override with it
    assert keys["resources.pretrain.gpus"] == "override:resources.pretrain.gpus=0.5"
    assert keys["name"] == keys["finetune.lam"] == keys["resources.pretrain.cpus"] == file
    assert keys["finetune.lr"] == "override:finetune.lr=0.5"
    assert keys["paths.num_alphas"] == "override:paths.num_alphas=5"
    assert keys["seeds"] == keys["paths.pairs"] == keys["max_concurrent"] == "extends:default"
    assert keys["cue_proportions"] == "extends:default"            # the profile sets it too; extends wins
    assert keys["pretrain.epochs"] == keys["models"] == "profile:digits"
    assert keys["finetune.margin"] == keys["resources.pretrain.workers"] == keys["data.dataset"] == "default"
    assert keys["description"] == keys["axes"] == keys["mlflow.enabled"] == "default"
    assert set(keys) == leaves(spec.resolved)                      # every key of the resolved spec


def test_an_override_beats_the_file_and_a_chain_of_extends_names_each_sweep(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nextends: default\nfinetune: {lam: 9, epochs: 3}\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\nfinetune: {lam: 4}\n")
    keys = load_spec(child).provenance.keys
    assert keys["finetune.lam"] == f"file:{child}" and keys["finetune.epochs"] == "extends:base.yaml"
    assert keys["seeds"] == "extends:default" and keys["finetune.lr"] == "profile:digits"
    spec = load_spec(child, ["finetune.lam=5"])
    assert spec.variants[0].finetune.lam == 5.0 and spec.provenance.keys["finetune.lam"] == "override:finetune.lam=5"
    assert spec.provenance.layers == ("default", "profile:digits", "extends:default", "extends:base.yaml",
                                      f"file:{child}", "override:finetune.lam=5")
    # an override of a whole mapping replaces it in the file, which then merges over the layers below
    spec = load_spec(child, ["finetune={epochs: 2}"])
    keys = spec.provenance.keys
    assert spec.variants[0].finetune.epochs == 2 and keys["finetune.epochs"] == "override:finetune={epochs: 2}"
    assert spec.variants[0].finetune.lam == 9.0 and keys["finetune.lam"] == "extends:base.yaml"


def test_a_swept_key_names_the_layer_that_swept_it():
    spec = load_spec(None, ["finetune.lam={grid: [1, 3]}", "axes=[{finetune.lr: [0.1, 0.2]}]"])
    keys = spec.provenance.keys
    assert keys["finetune.lam"] == "override:finetune.lam={grid: [1, 3]}, swept"
    assert keys["finetune.lr"] == "override:axes=[{finetune.lr: [0.1, 0.2]}], swept by axes"
    assert keys["axes"] == "override:axes=[{finetune.lr: [0.1, 0.2]}] and the {grid: ...} values"
    assert load_spec(None, ["finetune.lam={grid: [1, 3]}"]).provenance.keys["axes"] == "the {grid: ...} values"


def test_the_explained_spec_is_the_resolved_spec_with_a_layer_per_line():
    spec = load_spec(None, ["finetune.lam=3"])
    text = explain_spec(spec)
    assert yaml.safe_load(text) == spec.resolved
    assert parse_spec(text).resolved == spec.resolved
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert all("  # " in line for line in lines if not line.endswith(":")), lines
    assert any(line.startswith("  lam: 3.0") and line.endswith("# override:finetune.lam=3") for line in lines)
    assert "default < profile:digits < extends:default < override:finetune.lam=3" in text


def test_plan_resolved_explain_on_the_command_line(tmp_path, capsys):
    spec = write_spec(tmp_path)
    secret = "s3://AKIAFAKE:SUPERSECRETfake@bucket/runs"
    code = cli.main(["plan", str(spec), f"storage={secret}", "mlflow.enabled=false", "--resolved", "--explain"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and "SUPERSECRET" not in out
    assert "storage: 's3://***@bucket/runs'  " in out and "# override:storage=s3://***@bucket/runs" in out
    assert "name: tiny" in out and f"# file:{spec}" in out
    assert cli.main(["plan", str(spec), "--explain"]) == 0 and "# file:" in capsys.readouterr().out


def test_variant_has_a_field_per_swept_section():
    """Adding a swept section is `schema.TopLevel` plus a field of `Variant`; this keeps them together."""
    swept = [d.name for d in declared() if d.key.swept is not None]
    assert [f for f in Variant.__dataclass_fields__ if f != "swept"] == swept
