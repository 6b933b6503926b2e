"""Which layer set each key (`SweepSpec.provenance`, `mmc-sweep plan --resolved --explain`): the
declared default, the dataset's profile, the sweep a spec `extends` (and the one that extends), the
file, a `key=value` override; swept keys name the layer that swept them. The explained spec is the
resolved spec, loadable again, with credentials redacted."""
from __future__ import annotations

import pytest
import yaml

from orchestrator import cli
from orchestrator.spec.schema import SpecError, declared
from orchestrator.spec.explain import explain_spec
from orchestrator.spec.sweep_spec import Variant, load_spec, parse_spec, spec_hash
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
    assert keys["name"] != "extends:default" and keys["max_concurrent"] == "extends:default"
    assert keys["seeds"] == keys["paths.pairs"] == "default"       # the built-in sweep keeps the defaults
    assert keys["cue_proportions"] == "profile:digits"
    assert keys["pretrain.epochs"] == keys["models"] == "profile:digits"
    assert keys["finetune.margin"] == keys["resources.pretrain.workers"] == keys["data.dataset"] == "default"
    assert keys["description"] == keys["axes"] == keys["mlflow.enabled"] == "default"
    assert set(keys) == leaves(spec.resolved)                      # every key of the resolved spec


def test_an_override_beats_the_file_and_a_chain_of_extends_names_each_sweep(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nextends: default\nfinetune: {lam: 9, epochs: 3}\n"
                                        "cue_proportions: [0.0, 0.5]\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\nfinetune: {lam: 4}\n")
    keys = load_spec(child).provenance.keys
    assert keys["finetune.lam"] == f"file:{child}" and keys["finetune.epochs"] == "extends:base.yaml"
    assert keys["max_concurrent"] == "extends:default" and keys["finetune.lr"] == "profile:digits"
    assert keys["cue_proportions"] == "extends:base.yaml"          # the profile sets it too; extends wins
    spec = load_spec(child, ["finetune.lam=5"])
    assert spec.variants[0].finetune.lam == 5.0 and spec.provenance.keys["finetune.lam"] == "override:finetune.lam=5"
    assert spec.provenance.layers == ("default", "profile:digits", "extends:default", "extends:base.yaml",
                                      f"file:{child}", "override:finetune.lam=5")
    # an override of a whole mapping replaces it in the file, which then merges over the layers below
    spec = load_spec(child, ["finetune={epochs: 2}"])
    keys = spec.provenance.keys
    assert spec.variants[0].finetune.epochs == 2 and keys["finetune.epochs"] == "override:finetune={epochs: 2}"
    assert spec.variants[0].finetune.lam == 9.0 and keys["finetune.lam"] == "extends:base.yaml"


def test_an_empty_section_is_one_left_out_and_the_profile_and_extends_below_it_stand(tmp_path):
    """`pretrain:` with every key commented out (null), or the override `pretrain=null`, means the section is left
    out: the dataset's profile and an `extends:` base still set it, never the paper's defaults beneath them
    (a silent switch to 100 epochs at lr 0.1)."""
    plain = parse_spec("name: x\n")
    empty = parse_spec("name: x\npretrain:\n#  epochs: 5\nmidpoint:\nfinetune:\npaths:\n")
    assert empty.variants == plain.variants and spec_hash(empty) == spec_hash(plain)
    assert empty.provenance.keys["pretrain.epochs"] == "profile:digits"
    assert load_spec(None, ["pretrain=null"]).variants == plain.variants
    (tmp_path / "base.yaml").write_text("name: base\npretrain: {epochs: 3}\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\npretrain:\n")
    spec = load_spec(child)
    assert spec.variants[0].pretrain.epochs == 3 and spec.provenance.keys["pretrain.epochs"] == "extends:base.yaml"
    # an override into the empty section sets its key; the section's other keys still come from below
    spec = load_spec(child, ["pretrain.lr=0.2"])
    assert (spec.variants[0].pretrain.lr, spec.variants[0].pretrain.epochs) == (0.2, 3)


@pytest.mark.parametrize("override", ["seeds=", "cue_proportions= ", "finetune=", "max_concurrent=", "finetune.lr="])
def test_an_override_without_a_value_is_refused_not_read_as_the_default(tmp_path, override):
    """`seeds=$SEEDS` with the variable unset: the file's seeds must not silently become the default three (nor
    the file's fine-tuning section the profile's); refused, naming the key and how to give a value."""
    spec = tmp_path / "ov.yaml"
    spec.write_text("name: ov\nseeds: [0]\ncue_proportions: [0.0, 0.9]\nfinetune: {lr: 0.5}\nmax_concurrent: 2\n")
    key = override.split("=")[0]
    with pytest.raises(SpecError, match=f"override '{override}' gives `{key}` no value; .*`{key}=null` for its "
                                        "default, or leave it out"):
        load_spec(spec, [override])
    assert load_spec(spec, ["max_concurrent=null"]).max_concurrent is None          # asked for, in so many words


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


def test_an_override_of_a_whole_mapping_drops_what_an_earlier_override_set_inside_it():
    """Overrides apply in order, each replacing its key: `finetune={epochs: 2}` replaces the whole
    `finetune` mapping, so the earlier `finetune.lam=3` is gone and `lam` comes from the layers below
    (the digits profile's 10.0) and is labelled so, not as the dropped override."""
    spec = load_spec(None, ["finetune.lam=3", "finetune={epochs: 2}"])
    keys = spec.provenance.keys
    assert spec.variants[0].finetune.lam == 10.0 and keys["finetune.lam"] == "profile:digits"
    assert keys["finetune.epochs"] == "override:finetune={epochs: 2}"
    assert not spec.explicit("finetune.lam") and spec.explicit("finetune.epochs")
    # the later mapping sets `lam` again: it is that override's, not the replaced one's
    spec = load_spec(None, ["finetune.lam=3", "finetune={lam: 4}"])
    assert spec.variants[0].finetune.lam == 4.0 and spec.provenance.keys["finetune.lam"] == "override:finetune={lam: 4}"


def test_an_override_value_may_hold_an_equals_sign():
    """`key=value`: the key ends at the first `=`; the value is all the rest."""
    spec = load_spec(None, ["description=a=b", "name=x"])
    assert spec.description == "a=b" and spec.provenance.keys["description"] == "override:description=a=b"


def test_a_spec_may_extend_through_max_extends_depth_levels_and_no_more(tmp_path):
    """MAX_EXTENDS_DEPTH (5) sweeps may stand below a spec file, each extending the next; a sixth is refused."""
    for i in range(1, 7):
        tail = f"extends: b{i + 1}.yaml\n" if i < 6 else ""
        (tmp_path / f"b{i}.yaml").write_text(f"name: b{i}\n{tail}seeds: [{i}]\n")
    five = tmp_path / "five.yaml"
    five.write_text("name: five\nextends: b2.yaml\n")            # b2 .. b6
    spec = load_spec(five)
    assert spec.seeds == (2,) and spec.provenance.layers == (
        "default", "profile:digits", *(f"extends:b{i}.yaml" for i in (6, 5, 4, 3, 2)), f"file:{five}")
    six = tmp_path / "six.yaml"
    six.write_text("name: six\nextends: b1.yaml\n")              # b1 .. b6
    with pytest.raises(SpecError, match="`extends`: more than 5 levels"):
        load_spec(six)


def test_a_sweep_that_extends_another_names_it_relative_to_its_own_file(tmp_path):
    """`extends:` is "a spec file (relative to this one)": the file a sub-directory's sweep extends lies
    beside that sweep, not beside the spec that extends it."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("name: base\nextends: grand.yaml\n")
    (tmp_path / "sub" / "grand.yaml").write_text("name: grand\nseeds: [7]\n")
    (tmp_path / "grand.yaml").write_text("name: decoy\nseeds: [8]\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: sub/base.yaml\n")
    spec = load_spec(child)
    assert spec.seeds == (7,) and spec.provenance.keys["seeds"] == "extends:grand.yaml"


def test_only_the_spec_file_and_the_overrides_are_the_users_requests(tmp_path):
    """USER_LAYERS: a key set by the file or an override is a request; one set by a default, the
    profile or an `extends:`d sweep is not."""
    (tmp_path / "base.yaml").write_text("name: base\nseeds: [5]\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\nfinetune: {lam: 4}\n")
    spec = load_spec(child, ["paths.pairs=[cue~nocue]"])
    assert spec.explicit("paths.pairs") and spec.explicit("finetune.lam") and spec.explicit("name")
    assert not spec.explicit("seeds") and not spec.explicit("finetune.lr") and not spec.explicit("finetune.margin")


def test_an_override_of_a_mapping_in_no_layer_below_keeps_its_label_under_the_files():
    """`resources` is in no layer below the file (the default sweep and the profile leave it out): the
    file's `resources` comes in whole, and what an override set inside it keeps the override's label,
    however deep (a key's own path, or its mapping's, one level under `resources`)."""
    keys = load_spec(None, ["resources.pretrain={gpus: 0.5}"]).provenance.keys
    assert keys["resources.pretrain.gpus"] == "override:resources.pretrain={gpus: 0.5}"
    assert keys["resources.pretrain.cpus"] == "default"
    keys = load_spec(None, ["resources={pretrain: {gpus: 0.5}}"]).provenance.keys
    assert keys["resources.pretrain.gpus"] == "override:resources={pretrain: {gpus: 0.5}}"


def test_the_explained_spec_never_shows_a_credential_even_without_the_cli():
    """explain_spec: "Credentials in URIs are redacted" in the text itself (the Python API prints it
    without the CLI's redacting console), in values, in the layers of the header and in each key's layer."""
    secret = "s3://AKIAFAKE:SUPERSECRETfake@bucket/runs"
    text = explain_spec(load_spec(None, [f"storage={secret}", "mlflow.enabled=false"]))
    assert "SUPERSECRET" not in text and "AKIAFAKE" not in text
    assert "storage: 's3://***@bucket/runs'" in text and "# override:storage=s3://***@bucket/runs" in text
    assert "< override:storage=s3://***@bucket/runs" in text.splitlines()[1]


def test_a_grid_and_a_mapping_replace_each_other_when_layers_merge():
    """layers.py: "Mappings merge key by key; lists, scalars and `{grid: ...}` replace": a `{grid: ...}` is
    one value, so a grid over a mapping (or a mapping over a grid) takes its place whole, labelled with
    the layer that set it; it is never merged key by key into the other."""
    from orchestrator.spec.layers import layer, stack

    base = layer({"finetune": {"lam": {"x": 1}, "lr": {"grid": [0.1, 0.2]}}}, "extends:base")
    top = layer({"finetune": {"lam": {"grid": [1, 3]}, "lr": {"y": 2}}}, "file:top")
    merged = stack(base, top)
    assert merged.raw == {"finetune": {"lam": {"grid": [1, 3]}, "lr": {"y": 2}}}
    assert merged.origin(("finetune", "lam")) == merged.origin(("finetune", "lr")) == "file:top"
    # two mappings do merge, each key keeping its own layer
    merged = stack(layer({"finetune": {"lam": 3, "lr": 0.1}}, "extends:base"), layer({"finetune": {"lr": 0.5}}, "file:top"))
    assert merged.raw == {"finetune": {"lam": 3, "lr": 0.5}}
    assert (merged.origin(("finetune", "lam")), merged.origin(("finetune", "lr"))) == ("extends:base", "file:top")


def test_an_extends_with_a_slash_names_a_file_beside_the_spec_never_a_resource_of_the_package(tmp_path):
    """`extends:` is a shipped sweep's *name* or a path relative to the spec: `../profiles/digits` has a
    slash, so it is a path (none exists beside the spec), not the package's profiles/digits.yaml reached
    from its sweeps/ folder."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nextends: ../profiles/digits\n")
    with pytest.raises(SpecError, match="neither a shipped sweep"):
        load_spec(spec)


def test_a_file_that_is_no_spec_is_named_as_such_without_showing_its_keys(tmp_path):
    """`extends: /etc/shadow` in a spec someone else wrote, or such a file given directly: it parses as a
    mapping whose keys are its lines, and an error listing them would print the file. A spec's typo, and
    a spec with one stray key, are still named key by key."""
    shadow = tmp_path / "shadow"
    shadow.write_text("root:*:20228:0:99999:7:::\ndaemon:$6$salt$hash:20228:0:99999:7:::\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: x\nextends: {shadow}\n")
    for path in (spec, shadow):
        with pytest.raises(SpecError) as e:
            load_spec(path)
        assert "is not a sweep spec: none of its 2 top-level keys is a spec key" in str(e.value)
        assert "root:" not in str(e.value) and "daemon" not in str(e.value) and "$6$" not in str(e.value)
    spec.write_text("name: x\nnmae: y\nsecret_token: z\n")
    with pytest.raises(SpecError) as e:
        load_spec(spec)
    assert "`nmae`: unknown key; did you mean `name`?" in str(e.value) and "`secret_token`: unknown key" in str(e.value)


def test_the_explained_spec_spells_text_as_the_resolved_spec_does():
    """explain_spec writes the resolved spec "as `dump_spec`": a description in any script reads as
    written (dump_spec writes UTF-8, allow_unicode), not as `\\xFC` escapes."""
    from orchestrator.spec.sweep_spec import dump_spec

    spec = load_spec(None, ["description=Glühwein über alles"])
    assert "description: Glühwein über alles\n" in dump_spec(spec)
    line = next(line for line in explain_spec(spec).splitlines() if line.startswith("description:"))
    assert line.startswith("description: Glühwein über alles  ") and line.endswith("# override:description=Glühwein über alles")


@pytest.mark.parametrize("text, key", [
    (f"name: x\nextends: {'a' * 20_000}\n", "extends"),                 # a shipped sweep's name, then a file's
    (f"name: x\nextends: {'a' * 300}.yaml\n", "extends"),
    (f"name: x\ndata: {{dataset: {'a' * 20_000}}}\n", "data.dataset"),   # its profile's file name
])
def test_a_name_too_long_for_a_file_is_one_problem_naming_its_key(text, key):
    """A name longer than the file system takes (pathlib's is_file raises ENAMETOOLONG rather than
    answering False) is no shipped sweep, no spec file and no profile: one problem naming the key, the
    value shortened, not a traceback."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, "test.yaml")
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"`{key}`: 'aaaa")
    assert len(str(info.value)) < 500


def test_a_long_override_is_shortened_where_the_error_names_its_source():
    """The error's first line names the spec and its overrides; a value of a million characters is
    shown shortened there, as in the problem itself."""
    with pytest.raises(SpecError) as info:
        load_spec(None, ["description=" + "a" * 1_100_000])
    assert len(str(info.value)) < 500 and "more than the 1000000" in str(info.value)


def test_a_problem_in_a_spec_that_is_extended_names_that_file(tmp_path):
    """A typo in the base a spec extends is reported against the spec given, naming the base it is in."""
    (tmp_path / "base.yaml").write_text("name: base\npretrain: {epohcs: 3}\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\nfinetune: {lamm: 2}\n")
    with pytest.raises(SpecError) as info:
        load_spec(child)
    problems = info.value.problems
    assert any(p.startswith("`pretrain.epohcs`: unknown key") and p.endswith("(set in base.yaml, which it extends)")
               for p in problems), problems
    assert any(p.startswith("`finetune.lamm`: unknown key") and "which it extends" not in p for p in problems), problems


def test_a_spec_file_without_a_name_is_named_after_its_file_never_after_the_sweep_it_extends(tmp_path):
    """Every key left out defaults, the name too: `my-run.yaml` runs the sweep `my-run`, also when it extends
    `default` (whose name would share the default sweep's directory); `name:` left empty is left out; an override
    still names it; a file whose name is no sweep name leaves `name` missing, refused saying why."""
    (tmp_path / "my-run.yaml").write_text("extends: default\nseeds: [5]\n")
    spec = load_spec(tmp_path / "my-run.yaml")
    assert spec.name == "my-run" and spec.provenance.keys["name"] == f"file:{tmp_path / 'my-run.yaml'}"
    (tmp_path / "plain.yml").write_text("name:\nseeds: [5]\n")
    assert load_spec(tmp_path / "plain.yml").name == "plain"
    assert load_spec(tmp_path / "my-run.yaml", ["name=other"]).name == "other"
    (tmp_path / "no good.yaml").write_text("seeds: [5]\n")
    with pytest.raises(SpecError, match="`name`: is missing; .* a spec file without one is named after its file"):
        load_spec(tmp_path / "no good.yaml")
    assert load_spec(None).name == "default"


def test_a_null_setting_over_a_grid_the_base_sweeps_is_refused_not_read_as_the_base_sweep(tmp_path):
    """A setting written `null` (`finetune: {lam: null}`) is refused as it is over a plain value: it never
    silently keeps a `{grid: ...}` of the spec it `extends`, which would sweep a setting the spec seems to
    clear (only a whole empty section means "left out": the layers below it stand)."""
    (tmp_path / "base.yaml").write_text("name: base\nseeds: [0]\nfinetune: {lam: {grid: [1, 3]}}\n")
    assert load_spec(tmp_path / "base.yaml").swept_keys == ("finetune.lam",)
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\nfinetune: {lam: null}\n")
    with pytest.raises(SpecError, match="`finetune.lam`: null is not allowed"):
        load_spec(child)
    (tmp_path / "plain.yaml").write_text("name: plain\nseeds: [0]\nfinetune: {lam: 3}\n")
    child.write_text("name: child\nextends: plain.yaml\nfinetune: {lam: null}\n")
    with pytest.raises(SpecError, match="`finetune.lam`: null is not allowed"):
        load_spec(child)


def test_a_spec_file_with_dots_in_its_name_is_named_after_all_of_it_but_the_yaml_suffix(tmp_path):
    """`v1.2-run.yaml` without `name:` runs the sweep `v1.2-run` (a sweep name may hold dots): only the
    `.yaml`/`.yml` suffix goes, so `v1.2-run.yaml` and `v1.3-run.yaml` never share a sweep directory."""
    (tmp_path / "v1.2-run.yaml").write_text("seeds: [5]\n")
    (tmp_path / "v1.3-run.yml").write_text("seeds: [5]\n")
    assert load_spec(tmp_path / "v1.2-run.yaml").name == "v1.2-run"
    assert load_spec(tmp_path / "v1.3-run.yml").name == "v1.3-run"


def test_an_empty_extends_is_refused_as_no_name_not_looked_up_as_a_file(tmp_path):
    """`extends: ''` names nothing: refused as a value that is not allowed, listing the shipped sweeps, the same
    way as `extends: 3`, not looked for as a file (the spec's own directory is no spec file)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nextends: ''\n")
    with pytest.raises(SpecError, match=r"`extends`: '' is not allowed; give a shipped sweep name \(.*default"):
        load_spec(spec)
