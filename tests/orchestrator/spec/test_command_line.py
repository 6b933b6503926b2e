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
