"""The spec a command line asks for (`orchestrator.spec.command_line`): the SPEC argument, its overrides
and the flags that replace keys."""
from __future__ import annotations

import pytest

from orchestrator.errors import UsageError
from orchestrator.spec.command_line import load


@pytest.mark.parametrize("spec", ["", "  "])
def test_an_empty_spec_argument_is_refused_as_such(spec):
    """`run ""` (a shell variable that is unset) names no file: refused saying so, not read as the working
    directory ("'.' is a directory")."""
    with pytest.raises(UsageError) as info:
        load([spec, "seeds=[0]"])
    assert str(info.value) == (f"{spec!r} is no spec file; give a spec file's path, or no SPEC for the built-in "
                               "default sweep")


def test_a_spec_file_whose_name_holds_an_equals_sign_is_the_spec_not_an_override(tmp_path):
    """`mmc-sweep plan runs/a=b.yaml`: an existing YAML file is the spec; `extends=base.yaml` (no such file)
    is an override."""
    from orchestrator.spec import command_line

    spec = tmp_path / "a=b.yaml"
    spec.write_text("name: x\n")
    assert command_line._split_spec_and_overrides([str(spec), "seeds=[0]"]) == (str(spec), ["seeds=[0]"])
    assert command_line._split_spec_and_overrides(["extends=base.yaml"]) == (None, ["extends=base.yaml"])
    assert command_line.load([str(spec)]).name == "x"


@pytest.mark.parametrize("override", ["storage=s3://***@bucket/runs", "storage=s3://bucket/runs?secret_key=***",
                                      "mlflow.tracking_uri=http://***@host:5000"])
def test_a_uri_whose_credentials_were_redacted_is_refused_as_such(override):
    """A resolved spec given back holds `***` where its credentials were: refused by the command line and the
    API alike (both load specs with `load_spec`), saying so, not sent to the store as a user name; a real
    secret beside the `***` is not printed either."""
    from orchestrator import api
    from orchestrator.spec.schema import SpecError

    rest = ["storage=s3://bucket/runs" if override.startswith("mlflow") else "mlflow.enabled=false"]
    for load_it in (lambda: load(["name=x", override, *rest]), lambda: api.load(None, "name=x", override, *rest)):
        with pytest.raises(SpecError, match=r"holds credentials that were redacted \(`\*\*\*`\)"):
            load_it()
    with pytest.raises(SpecError) as info:
        load(["name=x", "storage=s3://KEY:realsecret@bucket/runs?token=***", "mlflow.enabled=false"])
    assert "realsecret" not in str(info.value) and "realsecret" not in " ".join(info.value.problems)
    load(["name=x", "storage=s3://bucket/runs", "mlflow.enabled=false"])     # without `***`: accepted


def test_num_cpus_from_one_to_the_most_a_local_ray_takes_is_allowed_and_no_further():
    import argparse

    from orchestrator.spec.command_line import MAX_NUM_CPUS, check_num_cpus

    for good in (None, 1, MAX_NUM_CPUS):
        check_num_cpus(argparse.Namespace(num_cpus=good))
    for bad in (0, MAX_NUM_CPUS + 1):
        with pytest.raises(UsageError, match=f"--num-cpus {bad} is not allowed"):
            check_num_cpus(argparse.Namespace(num_cpus=bad))


def _parser(*flags: str):
    import argparse

    parser = argparse.ArgumentParser()
    for flag in flags:
        parser.add_argument(flag)
    return parser


def test_the_flags_an_abbreviation_may_mean_are_named_in_order():
    """Each run names them the same way, whatever order Python's sets hold them in."""
    from orchestrator.spec.command_line import unknown_flags

    names = ["--opt-f", "--opt-c", "--opt-a", "--opt-e", "--opt-b", "--opt-d"]
    text = unknown_flags(_parser(*names), None, ["--opt"])
    assert "--opt: did you mean " + " or ".join(sorted(names)) + "?" in text, text


def test_mixed_hints_still_say_that_flags_are_written_out_in_full():
    from orchestrator.spec.command_line import unknown_flags

    text = unknown_flags(_parser("--storage"), None, ["--stor", "--seeds"])
    assert "--stor: did you mean --storage?" in text and "--seeds: a spec key is given as `seeds=VALUE`" in text
    assert text.endswith(" Flags are written out in full)"), text


def test_a_yml_spec_file_whose_name_holds_an_equals_sign_is_the_spec(tmp_path):
    from orchestrator.spec import command_line

    spec = tmp_path / "a=b.yml"
    spec.write_text("name: x\n")
    assert command_line._split_spec_and_overrides([str(spec), "seeds=[0]"]) == (str(spec), ["seeds=[0]"])


def test_keys_given_twice_are_named_once_each_in_order():
    with pytest.raises(UsageError) as info:
        load(["seeds=[0]", "name=a", "seeds=[1]", "name=b", "seeds=[2]"])
    assert str(info.value) == "`name`, `seeds` given more than once as key=value; give each once"


def test_a_key_given_twice_is_refused_however_it_is_spaced():
    """`seeds =[1]` sets `seeds` too: the second value would silently win."""
    with pytest.raises(UsageError, match="`seeds` given more than once"):
        load(["seeds=[0]", "seeds =[1]"])


def test_flags_left_unset_override_nothing(tmp_path):
    """The CLI passes every flag, None where it was not given: only those given replace keys."""
    unset = {"storage": None, "max_concurrent": None, "mlflow.tracking_uri": None}
    spec = load(["name=x", f"storage={tmp_path}", "max_concurrent=3"], unset)
    assert spec.top.storage == load(["name=x", f"storage={tmp_path}"]).top.storage and spec.top.max_concurrent == 3


def test_a_refusal_names_the_flag_only_of_a_key_the_flag_gave():
    from orchestrator.spec.schema import SpecError

    with pytest.raises(SpecError) as by_key:
        load(["name=x", "storage=ftp://host/x"], {"storage": None})
    assert any(p.startswith("`storage`: 'ftp://host/x' has an unknown URI scheme") for p in by_key.value.problems)
    with pytest.raises(SpecError) as by_flag:
        load(["name=x"], {"storage": "ftp://host/x"})
    assert any(p.startswith("`storage` (--storage): 'ftp://host/x'") for p in by_flag.value.problems)


def test_the_working_directory_is_searched_for_plugins_last(monkeypatch):
    """So nothing in the working directory takes the place of an installed package."""
    import os
    import sys

    from orchestrator.spec.command_line import find_plugins_here

    monkeypatch.setattr(sys, "path", ["/nonexistent/a", "/nonexistent/b"])
    find_plugins_here()
    assert sys.path == ["/nonexistent/a", "/nonexistent/b", os.getcwd()]
