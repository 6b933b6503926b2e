"""Models and datasets of your own (tasks/plugins.py): resolved by import path, checked, versioned."""
import hashlib
import importlib
import importlib.metadata
import inspect
import sys
import textwrap

import pytest
import torch

from tasks import plugins
from tasks.data import DataError, DataSettings, data_identity, dataset_info, load_cue_data
from tasks.models import ModelSettings, build_model, model_identity
from tasks.settings import SettingsError


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes `name.py` into a directory on sys.path; returns a function (name, source) -> import path prefix."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        plugins.resolve.cache_clear()
        plugins.version.cache_clear()
        return name
    yield write
    plugins.resolve.cache_clear()
    plugins.version.cache_clear()


def test_the_example_model_builds_a_classifier_with_features_and_head():
    model = build_model("examples.custom_model:build", 10, 1, 4, seed=0)
    x = torch.randn(2, 1, 20, 20)
    assert model(x).shape == (2, 10)
    assert torch.equal(model(x), model.head(model.features(x)))


def test_model_identity_carries_the_source_hash_and_changes_with_the_source(user_module):
    source = """
        from torch import nn
        from tasks.models import Classifier
        class M(Classifier):
            def __init__(self, k, c, w):
                super().__init__(); self.body = nn.Conv2d(c, w or 4, 3); self.head = nn.Linear(w or 4, k)
            def trunk(self, x): return self.body(x)
        def build(k, c, w=None): return M(k, c, w)
    """
    user_module("usermod_a", source)
    first = model_identity(ModelSettings(name="usermod_a:build"))
    assert first["name"] == "usermod_a:build" and first["version"].startswith("src:")
    user_module("usermod_a", source + "    # an edit\n")
    assert model_identity(ModelSettings(name="usermod_a:build"))["version"] != first["version"]
    assert "version" not in model_identity(ModelSettings(name="small_cnn"))


def test_a_model_without_features_and_head_is_refused(user_module):
    user_module("usermod_b", """
        from torch import nn
        def build(k, c, w=None): return nn.Linear(4, k)
    """)
    with pytest.raises(TypeError, match="`features"):
        build_model("usermod_b:build", 10, 1)


@pytest.mark.parametrize("name, needle", [
    ("nosuchpkg.x:build", "cannot import 'nosuchpkg.x'"),
    ("examples.custom_model:nothing", "has no attribute 'nothing'"),
    ("plainword", "is not a model; allowed: small_cnn"),
])
def test_bad_model_names_are_refused_naming_the_fix(name, needle):
    with pytest.raises(SettingsError, match=needle):
        ModelSettings(name=name)


def test_the_example_dataset_loads_with_a_validation_carve_out_and_box_cues():
    name = "examples.custom_dataset:load"
    info = dataset_info(name)
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, (16, 16))
    assert info.train_size + info.val_size == 1500 and info.val_size == 150
    data = load_cue_data(DataSettings(dataset=name, cue_proportion=0.5, seed=1))
    assert len(data.train) == info.train_size and set(data.eval_sets) == {"nocue", "cue", "randcue", "randimg"}
    assert 0.45 < data.cued.float().mean() < 0.55
    assert not torch.equal(data.eval_sets["cue"].x, data.eval_sets["nocue"].x)
    assert data_identity(DataSettings(dataset=name))["version"].startswith("src:")


def test_a_dataset_returning_the_wrong_thing_is_refused(user_module):
    user_module("userdata_bad", """
        import numpy as np
        from tasks.data import ImageArrays
        def load(root):
            x = np.zeros((10, 1, 8, 8), dtype=np.float32)   # not uint8
            return ImageArrays(x, np.zeros(10, dtype=np.int64), x, np.zeros(10, dtype=np.int64), 2)
    """)
    with pytest.raises(ValueError, match="must be a uint8 array"):
        dataset_info("userdata_bad:load")


def test_image_arrays_round_trip_through_a_user_loader(user_module):
    user_module("userdata_ok", """
        import numpy as np
        from tasks.data import ImageArrays
        def load(root):
            rng = np.random.default_rng(0)
            x = rng.integers(0, 256, (200, 3, 12, 12), dtype=np.uint8)
            y = np.arange(200) % 4
            return ImageArrays(x, y, x[:40], y[:40], 4)
    """)
    info = dataset_info("userdata_ok:load")
    assert (info.num_classes, info.in_channels, info.train_size, info.val_size) == (4, 3, 180, 20)
    data = load_cue_data(DataSettings(dataset="userdata_ok:load", cue_proportion=1.0))
    assert data.cued.all() and data.train.x.shape == (180, 3, 12, 12)


@pytest.mark.parametrize("name, is_path", [
    ("pkg.mod:build", True), ("_m:_b2", True), ("examples.custom_model:build", True),
    ("pkg.mod:build extra", False), ("pkg.mod:build-2", False), ("pkg.mod:2build", False), ("pkg.mod", False),
    (":build", False), ("2pkg:build", False), ("pkg:a:b", False), ("small_cnn", False),
])
def test_an_import_path_is_a_dotted_module_a_colon_and_one_identifier(name, is_path):
    """`package.module:function`: the whole name must match; the attribute is a Python identifier."""
    assert plugins.is_import_path(name) is is_path


def test_an_installed_plugin_is_versioned_by_its_distribution():
    """Code from an installed distribution (numpy's `numpy.random` module, top-level package `numpy`) is
    versioned `<distribution>==<version>`, read from the installed metadata."""
    plugins.version.cache_clear()
    assert plugins.version("numpy.random:default_rng", plugins.MODEL_GROUP) == \
        f"numpy=={importlib.metadata.version('numpy')}"


def test_a_local_plugin_is_versioned_by_the_sha256_of_its_module_source(user_module, tmp_path):
    """"else `src:<sha256[:12]>` of its module's source": the hash of the file's text, 12 hex digits."""
    user_module("usermod_hash", """
        def build(k, c, w=None):
            return None
    """)
    text = (tmp_path / "usermod_hash.py").read_text()
    expected = "src:" + hashlib.sha256(text.encode()).hexdigest()[:12]
    assert plugins.version("usermod_hash:build", plugins.MODEL_GROUP) == expected


def test_the_entry_point_names_of_a_group_are_that_groups_sorted(monkeypatch):
    """`plugin_names(group)` lists the entry points installed for that group only, sorted."""
    class Point:
        def __init__(self, name):
            self.name = name

    installed = {plugins.DATASET_GROUP: [Point("zeta"), Point("alpha")], plugins.MODEL_GROUP: [Point("net")]}
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: installed.get(group, []))
    assert plugins.plugin_names(plugins.DATASET_GROUP) == ("alpha", "zeta")
    assert plugins.plugin_names(plugins.MODEL_GROUP) == ("net",)


class _EntryPoint:
    def __init__(self, name, target):
        self.name, self.target = name, target

    def load(self):
        return self.target


@pytest.fixture
def installed_entry_points(monkeypatch):
    """A user's package declaring the model `mininet` (the example model's builder) in the model group and the
    dataset `minidata` (the example loader) in the dataset group, and nothing else."""
    import examples.custom_dataset
    import examples.custom_model

    installed = {plugins.MODEL_GROUP: [_EntryPoint("mininet", examples.custom_model.build)],
                 plugins.DATASET_GROUP: [_EntryPoint("minidata", examples.custom_dataset.load)]}
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: installed.get(group, []))
    plugins.resolve.cache_clear()
    plugins.version.cache_clear()
    yield examples.custom_model, examples.custom_dataset
    plugins.resolve.cache_clear()
    plugins.version.cache_clear()


def test_an_entry_point_is_resolved_loaded_and_versioned_from_its_own_group(installed_entry_points):
    """An entry point names its object only within its group: `mininet` is the model group's builder (loaded, not
    the entry point itself), `minidata` the dataset group's loader, and neither is found in the other group. A
    model entry point builds, passes the model settings and is versioned by its module's source."""
    model_module, dataset_module = installed_entry_points
    assert plugins.resolve("mininet", plugins.MODEL_GROUP) is model_module.build
    assert plugins.resolve("minidata", plugins.DATASET_GROUP) is dataset_module.load
    with pytest.raises(plugins.PluginError):
        plugins.resolve("mininet", plugins.DATASET_GROUP)
    model = build_model("mininet", 10, 1, 4, seed=0)
    assert model(torch.randn(2, 1, 20, 20)).shape == (2, 10)
    settings = ModelSettings(name="mininet")
    source = inspect.getsource(model_module)
    assert model_identity(settings) == {"name": "mininet",
                                        "version": "src:" + hashlib.sha256(source.encode()).hexdigest()[:12]}
    with pytest.raises(SettingsError, match="'minidata' is not a model"):
        ModelSettings(name="minidata")


def test_a_dataset_entry_point_is_versioned_from_the_dataset_group(installed_entry_points):
    """A dataset of one's own named by its entry point enters the task id with the version of the loader that
    entry point names in the dataset group (its module's source), as a model's does in the model group."""
    _, dataset_module = installed_entry_points
    identity = data_identity(DataSettings(dataset="minidata"))
    source = inspect.getsource(dataset_module)
    assert identity["dataset"] == "minidata"
    assert identity["version"] == "src:" + hashlib.sha256(source.encode()).hexdigest()[:12]


def test_only_a_string_can_be_an_import_path():
    """`is_import_path` answers False for anything that is not a string (a YAML number, None), never raises."""
    assert plugins.is_import_path(None) is False and plugins.is_import_path(3) is False


def test_a_plugin_whose_own_imports_fail_is_refused_naming_the_module(user_module):
    """An ImportError raised inside the user's module (not only a missing module) is reported as a plugin
    problem naming the module, through the settings' usual error."""
    user_module("usermod_broken", """
        from os import no_such_name_anywhere
        def build(k, c, w=None):
            return None
    """)
    with pytest.raises(SettingsError, match="cannot import 'usermod_broken'"):
        ModelSettings(name="usermod_broken:build")


def test_a_plugin_is_versioned_by_the_first_installed_distribution_of_its_top_package(monkeypatch):
    """A top-level package may map to several distributions, some of them not installed (metadata left behind):
    the version is that of the first one installed, `<distribution>==<version>`, not a source hash."""
    monkeypatch.setattr(plugins.importlib.metadata, "packages_distributions",
                        lambda: {"numpy": ["no-such-distribution-here", "numpy"]})
    plugins.version.cache_clear()
    try:
        assert plugins.version("numpy.random:default_rng", plugins.MODEL_GROUP) == \
            f"numpy=={importlib.metadata.version('numpy')}"
    finally:
        plugins.version.cache_clear()


@pytest.mark.parametrize("name", ["a" * 20_000, "a" * 20_000 + ":build", "json:" + "b" * 20_000])
def test_a_long_name_is_shortened_in_every_message(name):
    """A spec's name of a model or dataset is quoted at most SHOWN characters long, whichever check
    refuses it (no such name, no such module, no such attribute): a message stays one readable line."""
    problem = plugins.name_problem(name, ("small_cnn",), plugins.MODEL_GROUP, "model", "package.module:build")
    assert problem is not None and len(problem) < 600 and "..." in problem


@pytest.mark.parametrize("body", ["raise FileNotFoundError(root)", "import sys; sys.exit(0)", "return len(root)"])
def test_a_dataset_loader_that_fails_is_a_data_error_naming_it(user_module, body):
    """Planning reads a dataset of your own's sizes: a loader that raises (a missing file, a function that
    is no loader, such as `os:system` called with the root None) or even exits is a DataError naming the
    dataset and what it raised, which the spec's check reports as its one problem; never a traceback, never
    a silent exit 0."""
    user_module("userdata_fails", f"""
        def load(root):
            {body}
    """)
    with pytest.raises(DataError) as info:
        dataset_info("userdata_fails:load")
    assert "'userdata_fails:load' could not be loaded" in str(info.value) and "raised" in str(info.value)


@pytest.mark.parametrize("source, needle", [
    ("raise RuntimeError('needs a licence server')\n", "failed: RuntimeError: needs a licence server"),
    ("def build(:\n", "failed: SyntaxError: invalid syntax"),
    ("import sys\nsys.exit(0)\n", "failed: SystemExit: 0"),
])
def test_a_module_that_fails_on_import_is_refused_naming_its_error(user_module, source, needle):
    """A model or dataset module whose own code raises (or exits) on import: one SettingsError naming the module
    and its error (the command line's exit 2), not a traceback, and not a silent exit of the whole process."""
    user_module("usermod_broken_import", source)
    with pytest.raises(SettingsError, match=f"importing 'usermod_broken_import' .*{needle}"):
        ModelSettings(name="usermod_broken_import:build")
    with pytest.raises(SettingsError, match=needle):
        DataSettings(dataset="usermod_broken_import:load")


def test_a_builder_that_fails_otherwise_is_left_to_the_run_by_the_alignment_check_too(user_module):
    """A builder that raises RuntimeError (it needs a GPU the planning machine lacks): the spec's build and
    alignment checks leave it to the tasks that build it (no problem named, no traceback), as they do for
    a model they cannot build here."""
    from tasks.models import alignment_problem, build_problem
    user_module("usermod_needs_gpu", """
        def build(k, c, w=None): raise RuntimeError("needs a GPU")
    """)
    assert build_problem("usermod_needs_gpu:build") is None
    assert alignment_problem("usermod_needs_gpu:build") is None


def test_cut_keeps_a_text_of_at_most_the_limit_and_shortens_a_longer_one_to_exactly_the_limit():
    """`cut(text, limit)`: a text of `limit` characters is shown whole; a longer one becomes its first `limit` - 3
    characters and "...", `limit` characters in all (a message's quoted name is never longer than SHOWN)."""
    assert plugins.cut("x" * 80, 80) == "x" * 80
    assert plugins.cut("abcdefghij", 8) == "abcde..."
    long_name = "n" * 500
    assert len(plugins.shown(long_name)) == plugins.SHOWN and plugins.shown(long_name).endswith("...")
    assert plugins.shown("n" * (plugins.SHOWN - 2)) == repr("n" * (plugins.SHOWN - 2))
