"""`tasks.settings`: a field's declaration is its whole schema (type, bounds, choices, identity)."""
import dataclasses
import math

import pytest

from tasks import settings as S
from tasks.align import AlignSettings
from tasks.data import DataSettings
from tasks.finetune import FinetuneSettings
from tasks.models import ModelSettings
from tasks.paths import MidpointSettings, PathSettings
from tasks.train import OptimSettings

ALL = (DataSettings, OptimSettings, FinetuneSettings, MidpointSettings, PathSettings, AlignSettings, ModelSettings)


@dataclasses.dataclass(frozen=True)
class Toy(S.Settings):
    n: int = S.setting(3, ge=1, le=10)
    x: float = S.setting(0.5, gt=0, lt=1)
    mode: str = S.setting("a", choices=("a", "b"))
    cap: int | None = S.setting(None, ge=1)
    added_later: int = S.setting(7)
    renamed_default: int = S.setting(5, id_default=4)


@pytest.mark.parametrize("kwargs, needle", [
    ({"n": 0}, "`n`: 0 is not allowed; must be >= 1 and <= 10"),
    ({"n": 11}, "must be >= 1 and <= 10"),
    ({"n": True}, "`n`: True is not allowed; must be a whole number"),
    ({"n": 2.0}, "must be a whole number"),
    ({"n": 2 ** 64}, "must fit in 64 bits"),
    ({"x": math.inf}, "`x`: inf is not allowed; must be a finite number"),
    ({"x": math.nan}, "must be a finite number"),
    ({"x": 1}, "must be > 0 and < 1"),
    ({"x": "0.5"}, "must be a number"),
    ({"mode": "c"}, "`mode`: 'c' is not allowed; allowed: a, b"),
    ({"cap": 0}, "`cap`: 0 is not allowed"),
])
def test_each_rule_is_enforced_with_a_message_naming_the_field(kwargs, needle):
    with pytest.raises(S.SettingsError) as info:
        Toy(**kwargs)
    assert needle in str(info.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(S.SettingsError) as info:
        Toy(n=0, x=2.0, mode="z")
    assert [name for name, _ in info.value.problems] == ["n", "x", "mode"]


def test_ints_pass_for_floats_and_none_only_where_declared():
    assert Toy(x=0.5, cap=None).cap is None
    with pytest.raises(S.SettingsError, match="None is not allowed"):
        Toy(n=None)


def test_identity_leaves_out_values_equal_to_the_id_default():
    assert S.identity_dict(Toy()) == {"renamed_default": 5}   # default 5 differs from the id default 4
    assert S.identity_dict(Toy(n=4, renamed_default=4)) == {"n": 4}
    assert S.identity_dict(Toy(x=0.5)) == {"renamed_default": 5}


@pytest.mark.parametrize("cls", ALL)
def test_every_shipped_setting_is_declared_with_a_doc_and_finite_default(cls):
    for f, tp, rule in S.declared_fields(cls):
        assert f.metadata.get(S.RULE_KEY) is not None, f"{cls.__name__}.{f.name} is not declared with setting()"
        assert rule.doc, f"{cls.__name__}.{f.name} has no doc"
        kind, _ = S.base_type(tp)
        assert kind in (int, float, str, bool), f"{cls.__name__}.{f.name}: unsupported type {tp}"
        if kind is int:
            assert rule.le is not None, f"{cls.__name__}.{f.name}: ints need an upper bound"
    cls()   # the defaults themselves are valid


def test_subclass_override_keeps_the_rule_and_changes_the_default():
    assert MidpointSettings().epochs == 15 and OptimSettings().epochs == 100
    with pytest.raises(S.SettingsError, match="`epochs`: 0 is not allowed; must be >= 1"):
        MidpointSettings(epochs=0)


def test_settings_errors_survive_pickling():
    import pickle

    with pytest.raises(S.SettingsError) as info:
        Toy(n=0)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.problems == info.value.problems


# ----- what code reads (task identity: tests/orchestrator/graph/test_identity.py runs every task kind) -----

def test_a_restricted_view_refuses_reads_of_fields_it_does_not_hold():
    import pickle

    view = S.restrict(Toy(n=4, mode="b"), ["n", "x"], "toy method `a`")
    assert isinstance(view, Toy) and (view.n, view.x) == (4, 0.5)
    with pytest.raises(S.UndeclaredSettingRead, match=r"toy method `a` read `mode` of Toy, a setting its task id "
                                                       r"does not hold .* \(n, x\)"):
        view.mode
    assert repr(view) == repr(Toy(n=4, mode="b"))          # showing a view is not computing with it
    again = pickle.loads(pickle.dumps(view))
    assert again.n == 4
    with pytest.raises(S.UndeclaredSettingRead):
        again.mode
    with pytest.raises(ValueError, match="no field nope"):
        S.restrict(Toy(), ["nope"], "x")


def test_objects_rebuilt_from_an_identity_record_the_fields_read():
    with S.recording_reads() as reads:
        rebuilt = S.from_identity(Toy, {"n": 4})
        assert rebuilt.x == 0.5
        view = S.restrict(rebuilt, ["n", "cap"], "toy")    # a view keeps recording into the same set
        assert view.cap is None
        assert Toy(n=2).mode == "a"                          # not rebuilt from an id: not recorded
    assert reads == {Toy: {"x", "cap"}}                      # validation while building is not a read
    assert type(S.from_identity(Toy, {"n": 4})) is Toy     # outside the block: the plain class
