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
    ({"n": True}, "`n`: true is not allowed; must be a whole number"),
    ({"n": 2.0}, "must be a whole number"),
    ({"n": 2 ** 64}, "`n`: 18446744073709551616 is not allowed; must be >= 1 and <= 10"),   # its bounds, not "64 bits"
    ({"cap": 2 ** 64}, "must be >= 1"),
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
    with pytest.raises(S.SettingsError, match="null is not allowed"):
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
        if kind in (int, float):   # a value past what any task runs is refused, not failed in every task
            assert rule.le is not None or rule.lt is not None, f"{cls.__name__}.{f.name}: numbers need an upper bound"
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


# ----- bounds are inclusive where declared so; identities read back -----

def test_the_bounds_ge_and_le_allow_the_bound_itself_and_gt_lt_do_not():
    assert Toy(n=1).n == 1 and Toy(n=10).n == 10          # ge=1, le=10: both ends allowed
    assert Toy(cap=1).cap == 1
    for x in (0, 0.0, 1, 1.0):                             # gt=0, lt=1: neither end
        with pytest.raises(S.SettingsError, match="must be > 0 and < 1"):
            Toy(x=x)


@pytest.mark.parametrize("cls", ALL)
def test_every_shipped_numeric_setting_accepts_its_declared_bounds(cls):
    for f, tp, rule in S.declared_fields(cls):
        kind, _ = S.base_type(tp)
        for bound in (rule.ge, rule.le):
            if kind in (int, float) and bound is not None:
                value = kind(bound)
                assert S.value_problem(value, tp, rule) is None, f"{cls.__name__}.{f.name}={value}"


def test_whole_numbers_span_the_signed_64_bit_range():
    assert S.value_problem(-2 ** 63, int, S.Rule()) is None and S.value_problem(2 ** 63 - 1, int, S.Rule()) is None
    assert "64 bits" in S.value_problem(-2 ** 63 - 1, int, S.Rule())
    assert "64 bits" in S.value_problem(2 ** 63, int, S.Rule())


def test_from_identity_fills_a_left_out_field_with_its_id_default_not_its_current_default():
    """An id written before `renamed_default` changed its default (4 -> 5) left 4 out: reading it back
    gives 4, the value that task ran with."""
    assert S.from_identity(Toy, {}).renamed_default == 4
    assert S.from_identity(Toy, S.identity_dict(Toy())) == Toy()
    assert S.from_identity(Toy, S.identity_dict(Toy(n=9, renamed_default=4))) == Toy(n=9, renamed_default=4)


def test_an_overridden_default_is_what_the_subclass_identities_leave_out():
    """`override` gives a subclass its own default with the same bounds; its ids leave out that default
    (normally a setting's id default is its default), not the parent's renamed id default."""
    @dataclasses.dataclass(frozen=True)
    class Sub(Toy):
        renamed_default: int = S.override(Toy, "renamed_default", 6)

    assert S.identity_dict(Sub()) == {}
    assert S.identity_dict(Sub(renamed_default=4)) == {"renamed_default": 4}
    assert S.from_identity(Sub, {}) == Sub()
    with pytest.raises(S.SettingsError):
        Sub(n=0)


def test_data_identity_is_the_settings_without_root_and_the_data_version():
    from tasks.settings.data import DATA_VERSION, data_identity

    here = DataSettings(cue_proportion=0.8, seed=3, root="/data/here")
    assert data_identity(here) == {"cue_proportion": 0.8, "seed": 3, "version": DATA_VERSION}
    assert data_identity(here) == data_identity(dataclasses.replace(here, root="/elsewhere"))
    assert data_identity(DataSettings()) == {"version": DATA_VERSION}


def test_model_identity_always_names_the_model_and_its_width_when_set():
    from tasks.settings.models import model_identity

    assert model_identity(ModelSettings()) == {"name": "small_cnn"}
    assert model_identity(ModelSettings("vgg13", width=32)) == {"name": "vgg13", "width": 32}
    assert ModelSettings("vgg13", width=32).label == "vgg13-w32" and ModelSettings("vgg13").label == "vgg13"


@dataclasses.dataclass(frozen=True)
class Fractions(S.Settings):
    shares: tuple[float, ...] = S.setting((), ge=0.0, le=1.0)
    maybe: tuple[int, ...] | None = S.setting(None, ge=1)


def test_a_typed_tuple_checks_each_item_and_reads_whole_numbers_as_the_floats_they_stand_for():
    """`tuple[float, ...]`: items are floats under the field's bounds; [1] and [1.0] are one value, so
    one identity; a refused list is shown as written, with the item that is wrong."""
    assert Fractions(shares=(1, 0.5)).shares == (1.0, 0.5) and isinstance(Fractions(shares=(1,)).shares[0], float)
    assert Fractions(shares=(1,)) == Fractions(shares=(1.0,))
    assert Fractions(maybe=(2, 3)).maybe == (2, 3) and Fractions().maybe is None
    for value, needle in [((0.5, 2), "`shares`: [0.5, 2] is not allowed: item 1 must be >= 0 and <= 1"),
                          (("half",), "['half'] is not allowed: item 0 must be a number (got str)"),
                          ((True,), "[True] is not allowed: item 0 must be a number (got bool)"),
                          ((math.nan,), "item 0 must be a finite number"),
                          ([0.5], "[0.5] is not allowed; must be a list (got list)")]:
        with pytest.raises(S.SettingsError) as info:
            Fractions(shares=value)
        assert needle in str(info.value), str(info.value)
    with pytest.raises(S.SettingsError, match="item 0 must be >= 1"):
        Fractions(maybe=(0,))
    with pytest.raises(S.SettingsError, match="item 0 must be a whole number"):
        Fractions(maybe=(1.5,))
    assert S.base_type(tuple[float, ...]) == (tuple, False) and S.base_type(tuple[int, ...] | None) == (tuple, True)
    assert S.item_type(tuple[float, ...]) is float and S.item_type(tuple) is None and S.item_type(float) is None


@dataclasses.dataclass(frozen=True)
class MaybeFractions(S.Settings):
    shares: tuple[float, ...] | None = S.setting(None, ge=0.0, le=1.0)


def test_a_typed_tuple_that_may_be_none_is_none_or_floats():
    assert MaybeFractions().shares is None and MaybeFractions(shares=(1, 0.5)).shares == (1.0, 0.5)


# ----- fine-tuning settings: values that mean nothing are refused where they are declared -----

@pytest.mark.parametrize("field, refused, allowed", [
    ("lr", 0.0, 1e-6),                  # a step of size 0 trains nothing
    ("llrt_lr", 0.0, 1e-6),
    ("momentum", 1.0, 0.0),             # SGD momentum in [0, 1): at 1 the buffer never forgets
    ("weight_decay", -1e-4, 0.0),       # a negative L2 penalty rewards growing weights
    ("margin", -0.5, 0.0),              # |m - CE| with m < 0 is CE - m: plain CE, no barrier target
    ("lam", -1.0, 0.0),                 # a negative weight rewards the very variance the term penalises
    ("epochs", 0, 1),
    ("llrt_epochs", 0, 1),
    ("batch_size", 0, 1),
    ("cue_batch_size", 0, 1),
    ("warmup_epochs", -1, 0),           # no warm-up at all is allowed
])
def test_finetune_settings_refuse_values_that_mean_nothing_and_accept_the_least_that_does(field, refused, allowed):
    with pytest.raises(S.SettingsError, match=f"`{field}`: "):
        FinetuneSettings(**{field: refused})
    assert getattr(FinetuneSettings(**{field: allowed}), field) == allowed


def test_finetune_settings_accept_a_full_batch_over_the_largest_built_in_training_set():
    """docs/SCIENCE.md: FashionMNIST keeps 55,000 training images; a clean subset may be all of them and one
    batch may hold them all (full-batch fine-tuning), for a thousand epochs."""
    full = FinetuneSettings(clean_subset=55_000, batch_size=55_000, cue_batch_size=55_000, epochs=1000, llrt_epochs=1000)
    assert (full.clean_subset, full.batch_size, full.epochs) == (55_000, 55_000, 1000)


def test_a_float_setting_holds_negative_zero_as_zero_and_whole_numbers_as_floats():
    """-0.0 and 0.0 are one value and one identity (a task id hashes the JSON, which would write "-0.0")."""
    import json
    import math

    from tasks.settings.train import OptimSettings

    obj = Fractions(shares=(-0.0, 1))
    assert obj.shares == (0.0, 1.0) and math.copysign(1, obj.shares[0]) == 1
    assert json.dumps(S.identity_dict(OptimSettings(weight_decay=-0.0))) == json.dumps(S.identity_dict(OptimSettings(weight_decay=0)))
    assert type(OptimSettings(weight_decay=0).weight_decay) is float
    maybe = MaybeScale(scale=-0.0)                   # a float that may be None (plugins declare such settings)
    assert math.copysign(1, maybe.scale) == 1 and type(MaybeScale(scale=2).scale) is float
    assert MaybeScale().scale is None


@dataclasses.dataclass(frozen=True)
class MaybeScale(S.Settings):
    scale: float | None = S.setting(None, ge=-1.0)


def test_an_identity_is_plain_json_and_reads_back_to_the_same_settings():
    """A task id is the hash of its identity written as JSON, and the stored config is read back from JSON: a
    typed tuple appears as a list, so the identity equals its JSON round trip, and `from_identity` of the
    round trip (lists again) is the object itself."""
    import json

    obj = Fractions(shares=(0.25, 1), maybe=(2, 3))
    identity = S.identity_dict(obj)
    assert identity == {"shares": [0.25, 1.0], "maybe": [2, 3]}
    assert json.loads(json.dumps(identity)) == identity
    assert S.from_identity(Fractions, json.loads(json.dumps(identity))) == obj


def test_from_identity_refuses_a_key_that_is_no_setting_of_the_kind():
    """A stored id naming a field the class no longer has (renamed, removed) must not be read as the defaults:
    that would run, or reuse, another task than the one the id names."""
    with pytest.raises(S.SettingsError, match="`typo`: is not a setting of this kind"):
        S.from_identity(Toy, {"n": 4, "typo": 1})


def test_choices_given_as_a_callable_are_looked_up_when_a_value_is_checked():
    """`choices` may be a callable for registries defined later (`Rule`): it is called, and its result is the
    list of allowed values, named in the refusal."""
    @dataclasses.dataclass(frozen=True)
    class Registered(S.Settings):
        kind: str = S.setting("a", choices=lambda: ("a", "b"))

    assert Registered(kind="b").kind == "b"
    with pytest.raises(S.SettingsError, match="`kind`: 'c' is not allowed; allowed: a, b"):
        Registered(kind="c")


def test_a_clean_subset_below_one_batch_is_reported_under_clean_subset_with_the_fix():
    """The cross-field rule names the field a sweep file sets wrong (`finetune.clean_subset` in a spec error) and
    says what to change."""
    with pytest.raises(S.SettingsError) as info:
        FinetuneSettings(clean_subset=10, batch_size=64)
    [(name, text)] = info.value.problems
    assert name == "clean_subset"
    assert "10 is smaller than `batch_size` 64" in text and "lower `batch_size` or raise `clean_subset`" in text
    assert FinetuneSettings(clean_subset=64, batch_size=64).clean_subset == 64       # one full batch is enough


# ----- mutation hunt 6 (settings): item bounds, repeats, empty views, tuple choices -----

@dataclasses.dataclass(frozen=True)
class OpenShares(S.Settings):
    shares: tuple[float, ...] = S.setting((0.5,), gt=0.0, lt=1.0)
    modes: tuple[str, ...] = S.setting(("a",), choices=("a", "b"))


def test_each_item_of_a_typed_tuple_is_held_to_strict_bounds_too():
    """`gt` / `lt` are the field's bounds for each item as much as `ge` / `le`: 0 and 1 are refused under gt=0, lt=1."""
    assert OpenShares(shares=(0.25, 0.75)).shares == (0.25, 0.75)
    for value, index in (((0.5, 0.0), 1), ((1.0,), 0)):
        with pytest.raises(S.SettingsError, match=f"item {index} must be > 0 and < 1"):
            OpenShares(shares=value)


def test_a_tuple_lists_each_value_once():
    """A repeat would double a comparison or a model (`_repeated`): one repeat is refused, 1 and 1.0 are one value, and
    `repeated` names each repeated value once, as first written."""
    with pytest.raises(S.SettingsError, match=r"\[0.5, 0.5\] repeats 0.5; list each once"):
        Fractions(shares=(0.5, 0.5))
    assert S.repeated([1, 2, 1.0, 3, 2, 1]) == [1, 2]
    assert S.repeated([1, 2, 3]) == []


def test_a_view_restricted_to_no_field_refuses_every_read():
    """Code that declares it reads nothing (`restrict(obj, [], owner)`) may read nothing: an empty declaration is not
    "no restriction"."""
    view = S.restrict(Toy(), [], "a method that reads nothing")
    with pytest.raises(S.UndeclaredSettingRead, match="a method that reads nothing read `n`"):
        _ = view.n


def test_the_items_of_a_tuple_with_choices_must_each_be_a_choice():
    """The choices of a tuple setting are those of its items: an unknown item is named, with the allowed ones."""
    assert OpenShares(modes=("b", "a")).modes == ("b", "a")
    with pytest.raises(S.SettingsError, match=r"\['a', 'c'\] is not allowed: 'c'; allowed items: a, b"):
        OpenShares(modes=("a", "c"))


@dataclasses.dataclass(frozen=True)
class Switch(S.Settings):
    on: bool = S.setting(True)


def test_a_bool_setting_takes_true_or_false_and_no_number():
    """1 and 0 stand for true and false in YAML's eyes only: a bool setting refuses them (an id holding 1 for True would
    name another task), and says what it takes."""
    assert Switch(on=False).on is False
    for value in (1, 0):
        with pytest.raises(S.SettingsError, match=f"`on`: {value} is not allowed; must be true or false \\(got int\\)"):
            Switch(on=value)


def _advised(problem: str, word: str) -> float:
    return float(problem.split(f"use {word} ", 1)[1].split()[0])


@pytest.mark.parametrize("n", [1, 2, 3, 7, 116, 124, 500, 4513, 5000, 6000])
def test_a_cue_proportion_problem_is_named_exactly_where_the_largest_class_makes_the_model_another(n):
    """No sample of the largest class cued (so none at all), or for a resubset partner all of it (so all of
    every class): the problem is named exactly there, and the proportion it advises is the nearest that
    is not one (to four decimals)."""
    from tasks.settings.data import cue_count, cue_proportion_problem as problem

    least = _advised(problem(0.4 / n, n, "d", resubset=False), "at least")
    assert cue_count(n, least) >= 1 and problem(least, n, "d", resubset=False) is None
    assert least <= 1e-4 or cue_count(n, least - 1e-4) == 0
    assert problem(0.0, n, "d", resubset=False) is None and problem(0.0, n, "d", resubset=True) is None
    if n > 1:   # a class of one is all cued or not at all
        most = _advised(problem(1.0, n, "d", resubset=True), "at most")
        assert cue_count(n, most) < n and problem(most, n, "d", resubset=True) is None
        assert cue_count(n, most + 1e-4) == n
    assert problem(1.0, n, "d", resubset=False) is None     # the model itself may be fully cued


def test_a_cue_proportion_problem_says_whether_the_class_size_is_a_bound():
    from tasks.settings.data import cue_proportion_problem as problem

    assert "its largest class has at most 500 training" in problem(1e-4, 500, "cifar100", resubset=False, at_most=True)
    assert "its largest class has 124 training" in problem(1e-3, 124, "digits", resubset=False)
    assert "'digits'" in problem(1.0, 124, "digits", resubset=True)


def test_a_message_names_up_to_max_named_items_not_allowed_and_counts_only_those_beyond():
    """A tuple with items that are no choice names the first MAX_NAMED of them; "and N more" only when there are
    more than MAX_NAMED (never "and 0 more")."""
    letters = "cdefghijk"
    with pytest.raises(S.SettingsError) as exactly:
        OpenShares(modes=tuple(letters[:S.MAX_NAMED]))
    assert "more" not in str(exactly.value)
    assert ", ".join(map(repr, letters[:S.MAX_NAMED])) + "; allowed items: a, b" in str(exactly.value)
    with pytest.raises(S.SettingsError, match=" and 1 more; allowed items"):
        OpenShares(modes=tuple(letters[:S.MAX_NAMED + 1]))


def test_only_a_method_whose_clean_step_adds_the_invariance_term_records_a_loss_that_is_not_the_cross_entropy():
    """`loss_is_cross_entropy`: pretraining (None) and every fine-tuning method record plain cross-entropy, but
    cbft and cbft_invariance (lam x invariance added); a barrier or cue step alone does not make it so."""
    from tasks.settings.finetune import FINETUNE_METHOD_NAMES, loss_is_cross_entropy

    assert loss_is_cross_entropy(None)
    assert {m for m in FINETUNE_METHOD_NAMES if not loss_is_cross_entropy(m)} == {"cbft", "cbft_invariance"}


def test_a_finetune_id_leaves_out_twins_the_invariance_every_id_ran_with_before_unpaired_became_the_default():
    """`cbft_invariance` was `twins` before the paper's `unpaired` became its default: ids leave out twins (old ids
    stay valid and read back as twins) and name unpaired, so an unpaired task never reuses a twins result."""
    assert S.identity_dict(FinetuneSettings())["cbft_invariance"] == "unpaired"
    assert "cbft_invariance" not in S.identity_dict(FinetuneSettings(cbft_invariance="twins"))
    assert S.from_identity(FinetuneSettings, {}).cbft_invariance == "twins"
    assert S.identity_dict(FinetuneSettings()) != S.identity_dict(FinetuneSettings(cbft_invariance="twins"))


def test_a_built_in_model_without_a_width_is_built_with_its_own_base_width():
    """`built` is what is built: a built-in without `width` has its own base width (small_cnn is small_cnn-w16),
    so a spec listing both names one model twice; a model of your own without width keeps None."""
    assert ModelSettings().built == ("small_cnn", 16) == ModelSettings(width=16).built
    assert ModelSettings("vgg13").built == ModelSettings("vgg13", width=64).built == ("vgg13", 64)
    assert ModelSettings("resnet18").built == ("resnet18", 64)
    assert ModelSettings("vgg13", width=32).built == ("vgg13", 32)
