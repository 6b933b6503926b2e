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
