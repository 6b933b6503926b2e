"""The built-in default sweep runs the same science as `python -m tasks.claims` (no silent drift)."""
from dataclasses import fields

from orchestrator.spec import load_spec
from tasks import claims


def _same(section, settings, skip=()):
    for f in fields(settings):
        if f.name in skip:
            continue
        assert getattr(section, f.name) == getattr(settings, f.name), f.name


def test_default_sweep_uses_the_claims_settings():
    spec = load_spec(None)
    _same(spec.pretrain, claims.PRETRAIN)
    _same(spec.finetune, claims.FINETUNE)
    _same(spec.midpoint, claims.MIDPOINT)
    _same(spec.paths, claims.PATH)
    assert spec.data.dataset == "digits" and [m.name for m in spec.models] == ["small_cnn"]
    assert sorted(spec.cue_proportions) == [0.0, 0.8] and len(spec.seeds) >= 3


def test_default_sweep_covers_every_method_pair_and_path():
    spec = load_spec(None)
    assert set(spec.finetune.methods) == {"naive", "llrt", "lpft", "cbft"}
    assert set(spec.paths.pairs) == {"cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft"}
    assert set(spec.paths.kinds) == {"linear", "quadratic", "aligned"}
    assert "activation" in spec.paths.alignments   # weight matching is covered by sweeps/smoke.yaml
