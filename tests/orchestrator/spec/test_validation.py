"""Reading a spec through its declaration (`orchestrator.spec.validation`): a value of the wrong kind is
one problem naming its key, whatever YAML made it falsy or empty, and a long value is shown shortened."""
from __future__ import annotations

import pytest

from orchestrator.spec.schema import MAX_LIST, SpecError
from orchestrator.spec.sweep_spec import parse_spec


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "test.yaml")
    return info.value.problems


@pytest.mark.parametrize("value", ["''", "0", "-0.0", "[]", "false"])
def test_a_per_kind_mapping_that_is_falsy_but_no_mapping_is_refused(value):
    """`resources: ''` (or 0, [], false) is no mapping of task kinds: refused like `resources: 3`, not read
    as the defaults (only null, or leaving the key out, is)."""
    problems = problems_of(f"name: x\nresources: {value}\n")
    assert len(problems) == 1 and problems[0].startswith("`resources`: ") and "must map task kinds" in problems[0]


def test_a_null_resources_is_the_defaults():
    assert parse_spec("name: x\nresources: null\n").resources["pretrain"].cpus == 1.0


@pytest.mark.parametrize("models, index", [("[null]", 0), ("[small_cnn, null]", 1), ("\n  - small_cnn\n  -", 1)])
def test_a_null_item_of_a_list_of_settings_is_refused(models, index):
    """`models: [null]` (or a `-` with nothing after it) names no model: refused, not the default model."""
    problems = problems_of(f"name: x\nmodels: {models}\n")
    assert problems == [f"`models[{index}]`: null is not allowed; each item is a mapping of name, width or a "
                        "name alone"]


@pytest.mark.parametrize("key", ["population.kinds", "population.cue_proportions", "claims.barrier_sets"])
def test_a_list_setting_of_a_section_has_at_most_max_list_items(key):
    """As every list of a spec: more than MAX_LIST items is refused by count, its items not listed."""
    section, name = key.split(".")
    items = ", ".join(["0"] * (MAX_LIST + 1))
    problems = problems_of(f"name: x\n{section}: {{{name}: [{items}]}}\n")
    assert problems == [f"`{key}`: {MAX_LIST + 1} items; at most {MAX_LIST}"]


@pytest.mark.parametrize("key", ["population.kinds", "population.cue_proportions", "claims.basin_sets"])
def test_a_long_list_setting_is_shown_shortened(key):
    """A refused list of a section's setting is quoted shortened (as `show` does), and at most a few of its
    items not allowed are named: the message is one readable line, not the whole list."""
    section, name = key.split(".")
    items = ", ".join(str(i + 2) for i in range(500))
    problems = problems_of(f"name: x\n{section}: {{{name}: [{items}]}}\n")
    assert len(problems) == 1 and problems[0].startswith(f"`{key}`: [2, 3, 4") and len(problems[0]) < 400


@pytest.mark.parametrize("key, spelled", [("null", "null"), ("true", "true"), ("3", "3"), ("1.5", "1.5")])
def test_an_unknown_key_that_is_no_text_is_named_as_yaml_spells_it(key, spelled):
    """A key YAML reads as null, a boolean or a number is named as the spec wrote it (`paths.null`, not
    Python's `paths.None`)."""
    problems = problems_of(f"name: x\npaths: {{{key}: 1}}\n")
    assert len(problems) == 1 and problems[0].startswith(f"`paths.{spelled}`: unknown key")


@pytest.mark.parametrize("key", ["population.kinds", "claims.barrier_sets"])
def test_a_list_setting_of_a_section_of_exactly_max_list_items_is_not_refused_by_count(key):
    """MAX_LIST is the most a list may hold, not one too many: a list of exactly MAX_LIST items is read item by
    item (here refused for repeating one), never refused by its count."""
    section, name = key.split(".")
    items = ", ".join(["0"] * MAX_LIST)
    problems = problems_of(f"name: x\n{section}: {{{name}: [{items}]}}\n")
    assert problems and not any("at most" in p for p in problems), problems


@pytest.mark.parametrize("section, key", [("pretrain", "seed"), ("finetune", "cue_seed"), ("paths", "cue_proportion")])
def test_a_data_axis_name_outside_data_is_an_unknown_key_listing_what_the_section_allows(section, key):
    """Only under `data` is `seed`, `cue_seed` or `cue_proportion` "set per model" (by `seeds`,
    `cue_proportions` or a pair design); in another section it is an unknown key like any, and the message
    lists that section's keys rather than pointing at `seeds` or `cue_proportions`."""
    problems = problems_of(f"name: x\n{section}: {{{key}: 3}}\n")
    assert len(problems) == 1 and problems[0].startswith(f"`{section}.{key}`: unknown key; allowed: "), problems
    assert "set per model" not in problems[0]
    assert problems_of(f"name: x\ndata: {{{key}: 3}}\n")[0].startswith(f"`data.{key}`: is set per model by ")


def test_an_empty_mapping_is_a_spec_that_leaves_every_key_out_not_a_file_that_is_no_spec(tmp_path):
    """A spec file holding `{}` sets no key: every key defaults, its name too (the file's), as for a spec whose
    keys are all commented out but one; it is not "no sweep spec" (that is a mapping none of whose keys is a
    spec key, a file read by mistake). A base `{}` that a spec `extends` adds nothing."""
    from orchestrator.spec.sweep_spec import load_spec

    (tmp_path / "blank.yaml").write_text("{}\n")
    spec = load_spec(tmp_path / "blank.yaml")
    assert spec.name == "blank" and spec.resolved == parse_spec("name: blank\n").resolved
    (tmp_path / "child.yaml").write_text("name: child\nextends: blank.yaml\nseeds: [0]\n")
    assert load_spec(tmp_path / "child.yaml").seeds == (0,)
