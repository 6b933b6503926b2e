"""tasks.evaluate: mean cross-entropy and accuracy over batches, eval mode, mode restored."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasks.data import Split
from tasks.evaluate import JoinedSets, evaluate, evaluate_joined, evaluate_sets, native_bf16, resolve_precision
from tasks.seeding import generator


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def make_split(n: int, seed: int) -> Split:
    gen = generator(seed)
    return Split(torch.randn(n, 1, 2, 2, generator=gen).half(), torch.randint(0, 3, (n,), generator=gen))


def trained_bn_model() -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet()
    model.train()
    with torch.no_grad():  # give BN running statistics that differ from any batch's statistics
        model(torch.randn(64, 1, 2, 2) * 3 + 1)
    return model


def test_evaluate_matches_whole_set_reference_and_restores_mode():
    model, split = trained_bn_model(), make_split(10, seed=1)
    model.train()
    result = evaluate(model, split, batch_size=3, device="cpu", precision="fp32")  # 4 batches, the last partial
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(split.x.float())
    assert result["n"] == 10
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, split.y).item(), rel=1e-6)
    assert result["acc"] == pytest.approx((logits.argmax(1) == split.y).float().mean().item())
    assert evaluate(model, split, batch_size=1024, precision="fp32") == pytest.approx(result)
    assert not model.training


def test_evaluate_returns_predictions_only_when_asked():
    model, split = trained_bn_model(), make_split(10, seed=1)
    plain = evaluate(model, split, batch_size=3, precision="fp32")
    with_pred = evaluate(model, split, batch_size=3, precision="fp32", predictions=True)
    assert "pred" not in plain and {k: with_pred[k] for k in plain} == plain
    model.eval()
    with torch.no_grad():
        expected = model(split.x.float()).argmax(1)
    assert with_pred["pred"].dtype == torch.int64 and torch.equal(with_pred["pred"], expected)
    assert with_pred["acc"] == pytest.approx((with_pred["pred"] == split.y).double().mean().item())


def test_evaluate_sets_rows_in_order():
    model = trained_bn_model()
    sets = {"nocue": make_split(7, seed=2), "cue": make_split(5, seed=3)}
    rows = evaluate_sets(model, sets, batch_size=4, device="cpu")
    assert [r["eval_set"] for r in rows] == ["nocue", "cue"]
    assert [r["n"] for r in rows] == [7, 5]
    assert rows[1]["loss"] == pytest.approx(evaluate(model, sets["cue"])["loss"])
    assert rows[0]["loss"] != rows[1]["loss"]


def test_precision_auto_resolves_by_hardware_and_unknown_names_are_refused():
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert resolve_precision("auto", "meta") == "fp32"
    with pytest.raises(ValueError, match="allowed: auto, fp32, bf16"):
        resolve_precision("half", "cpu")


def test_bf16_without_native_support_warns_that_it_is_slow(monkeypatch):
    import tasks.evaluate as evaluate_module
    monkeypatch.setattr(evaluate_module, "native_bf16", lambda device: False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == "fp32"


def test_bf16_evaluation_is_close_to_fp32():
    model, split = trained_bn_model(), make_split(200, seed=4)
    fp32 = evaluate(model, split, batch_size=64, precision="fp32")
    bf16 = evaluate(model, split, batch_size=64, precision="bf16")
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.02)
    assert abs(bf16["acc"] - fp32["acc"]) <= 0.02


def test_evaluate_refuses_empty_split():
    with pytest.raises(ValueError, match="empty split"):
        evaluate(trained_bn_model(), make_split(0, seed=0))


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_non_finite_model_gives_nan_loss_and_accuracy_never_a_finite_accuracy(poison):
    """argmax of NaN logits still names a class: without the guard, acc was a finite number beside a NaN loss."""
    model, split = trained_bn_model(), make_split(10, seed=1)
    with torch.no_grad():
        model.head.bias[1] = poison
    result = evaluate(model, split, batch_size=3, precision="fp32")
    assert result["n"] == 10 and result["loss"] != result["loss"] and result["acc"] != result["acc"], result
    finite = evaluate(trained_bn_model(), split, precision="fp32")   # a finite model is unaffected
    assert math.isfinite(finite["loss"]) and math.isfinite(finite["acc"])


def test_evaluate_joined_gives_each_set_what_evaluate_gives_it_alone():
    """One pass over the concatenated sets, in batches that straddle the sets' borders: every set's loss,
    accuracy, count and predictions are its own; a non-finite image makes only its own set NaN."""
    model = trained_bn_model()
    sets = {"a": make_split(7, seed=1), "b": make_split(5, seed=2), "c": make_split(9, seed=3)}
    joined = JoinedSets(sets, "cpu")
    assert all(part is split.x for part, split in zip(joined.parts, sets.values()))   # no copy of the images
    results = evaluate_joined(model, joined, batch_size=4, precision="fp32", predictions=True)   # 6 batches of 3-4
    assert list(results) == list(sets)
    for name, split in sets.items():
        alone = evaluate(model, split, batch_size=1024, precision="fp32", predictions=True)
        assert results[name]["n"] == alone["n"] == len(split)
        assert results[name]["loss"] == pytest.approx(alone["loss"], rel=1e-6)
        assert results[name]["acc"] == alone["acc"]
        assert torch.equal(results[name]["pred"], alone["pred"])
    poisoned = dict(sets, b=Split(sets["b"].x.clone(), sets["b"].y))
    poisoned["b"].x[2, 0, 0, 0] = float("nan")
    results = evaluate_joined(model, JoinedSets(poisoned, "cpu"), batch_size=4, precision="fp32")
    assert math.isnan(results["b"]["loss"]) and math.isnan(results["b"]["acc"])
    assert all(math.isfinite(results[n]["loss"]) and math.isfinite(results[n]["acc"]) for n in ("a", "c"))
    with warnings.catch_warnings():       # bf16 warns where it is emulated; float16 images cross a batch border
        warnings.simplefilter("ignore", RuntimeWarning)
        low = evaluate_joined(model, joined, batch_size=4, precision="bf16")
    for name in sets:
        assert low[name]["loss"] == pytest.approx(evaluate(model, sets[name], precision="fp32")["loss"], abs=0.05)
    with pytest.raises(ValueError, match="empty split"):
        JoinedSets({"a": sets["a"], "none": make_split(0, seed=0)}, "cpu")


def test_a_non_finite_image_in_any_batch_makes_the_whole_evaluation_nan():
    """Only the first of four batches holds a NaN image: the result is still NaN, never the later batches' numbers."""
    model, split = trained_bn_model(), make_split(10, seed=1)
    x = split.x.clone()
    x[1, 0, 0, 0] = float("nan")
    result = evaluate(model, Split(x, split.y), batch_size=3, precision="fp32")
    assert math.isnan(result["loss"]) and math.isnan(result["acc"]), result


def test_evaluate_joined_restores_the_models_mode_and_keeps_its_batchnorm_statistics():
    model, sets = trained_bn_model(), {"a": make_split(7, seed=1), "b": make_split(5, seed=2)}
    running = model.body[2].running_mean.clone()
    for mode in (True, False):
        model.train(mode)
        evaluate_joined(model, JoinedSets(sets, "cpu"), batch_size=4, precision="fp32")
        assert model.training == mode
    assert torch.equal(model.body[2].running_mean, running)


def test_joined_batches_are_near_equal_and_never_larger_than_the_batch_size():
    """21 images in batches of at most 4: ceil(21 / 4) = 6 batches of 4, 4, 4, 3, 3, 3, in order."""
    sets = {"a": make_split(7, seed=1), "b": make_split(5, seed=2), "c": make_split(9, seed=3)}
    batches = list(JoinedSets(sets, "cpu").batches(4))
    assert [len(x) for x in batches] == [4, 4, 4, 3, 3, 3]
    assert torch.equal(torch.cat(batches), torch.cat([s.x for s in sets.values()]).float())
    assert [len(x) for x in JoinedSets(sets, "cpu").batches(100)] == [21]


def test_a_non_finite_image_makes_only_its_own_set_nan_even_in_a_batch_it_shares():
    """The first image of `b` shares its batch with the last images of `a`: `a` stays finite and exact."""
    model = trained_bn_model()
    sets = {"a": make_split(7, seed=1), "b": make_split(5, seed=2)}
    poisoned = dict(sets, b=Split(sets["b"].x.clone(), sets["b"].y))
    poisoned["b"].x[0, 0, 0, 0] = float("nan")
    results = evaluate_joined(model, JoinedSets(poisoned, "cpu"), batch_size=4, precision="fp32")  # 4+4+4: a|b at 7
    assert math.isnan(results["b"]["loss"]) and math.isnan(results["b"]["acc"])
    alone = evaluate(model, sets["a"], precision="fp32")
    assert results["a"]["loss"] == pytest.approx(alone["loss"], rel=1e-6) and results["a"]["acc"] == alone["acc"]


@pytest.mark.parametrize("avx512_bf16, amx, native", [(True, False, True), (False, True, True), (False, False, False)])
def test_a_cpu_computes_bf16_natively_with_either_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx, native):
    """"CPUs with AVX512-BF16 or AMX" (module docstring): either feature alone is enough."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert native_bf16("cpu") is native
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")


def test_bf16_evaluation_runs_the_layers_in_bfloat16_and_fp32_in_float32():
    """"bf16" is autocast to bfloat16 (not float16): the head's matmul yields bfloat16 logits, in `evaluate` and in
    `evaluate_joined`; "fp32" leaves them float32."""
    model, split = trained_bn_model(), make_split(6, seed=1)
    seen = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        evaluate(model, split, batch_size=4, precision="bf16")
        evaluate_joined(model, JoinedSets({"a": split}, "cpu"), batch_size=4, precision="bf16")
    assert seen == [torch.bfloat16] * 4
    seen.clear()
    evaluate(model, split, batch_size=4, precision="fp32")
    evaluate_joined(model, JoinedSets({"a": split}, "cpu"), batch_size=4, precision="fp32")
    assert seen == [torch.float32] * 4


def test_a_batch_size_of_one_is_allowed_and_gives_the_whole_set_numbers():
    """Batches of one image (the smallest allowed, `batch_size >= 1`): eval-mode BN treats samples independently,
    so loss and accuracy equal the whole-set reference; 0 is refused."""
    model, split = trained_bn_model(), make_split(5, seed=1)
    model.eval()
    with torch.no_grad():
        logits = model(split.x.float())
    reference = {"loss": F.cross_entropy(logits, split.y).item(),
                 "acc": (logits.argmax(1) == split.y).double().mean().item(), "n": 5}
    assert evaluate(model, split, batch_size=1, precision="fp32") == pytest.approx(reference, rel=1e-6)
    joined = evaluate_joined(model, JoinedSets({"a": split, "b": split}, "cpu"), batch_size=1, precision="fp32")
    assert joined["a"] == pytest.approx(reference, rel=1e-6) and joined["b"] == pytest.approx(reference, rel=1e-6)
    with pytest.raises(ValueError, match="`batch_size` 0"):
        evaluate(model, split, batch_size=0)
    with pytest.raises(ValueError, match="`batch_size` 0"):
        evaluate_joined(model, JoinedSets({"a": split}, "cpu"), batch_size=0)


def test_evaluation_is_fp32_by_default_even_where_the_machine_computes_bf16_natively(monkeypatch):
    """A trained model's evaluation rows must not depend on the machine that ran the task (its id does
    not name the machine): `evaluate`, `evaluate_sets` and `evaluate_joined` default to fp32, and
    "auto" is only what a caller asks for."""
    import tasks.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "native_bf16", lambda device: True)
    model, split = trained_bn_model(), make_split(6, seed=1)
    seen = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    evaluate(model, split, batch_size=4)
    evaluate_sets(model, {"a": split}, batch_size=4)
    evaluate_joined(model, JoinedSets({"a": split}, "cpu"), batch_size=4)
    assert seen == [torch.float32] * 6
    seen.clear()
    evaluate(model, split, batch_size=6, precision="auto")
    assert seen == [torch.bfloat16]


def test_bf16_evaluation_takes_the_cross_entropy_of_the_bfloat16_logits_in_float32():
    """"bf16" (module docstring): matmuls in bfloat16, "accumulation and the loss in float32". The loss is the float32
    cross-entropy of the bfloat16 logits the model returned (seen by a hook), in `evaluate` and `evaluate_joined`
    alike; a cross-entropy computed in bfloat16 is off by its rounding (about 0.4%)."""
    model, split = trained_bn_model(), make_split(40, seed=5)
    outputs = []
    model.register_forward_hook(lambda module, args, out: outputs.append(out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        alone = evaluate(model, split, batch_size=16, precision="bf16")
        alone_logits = torch.cat(outputs)
        outputs.clear()
        joined = evaluate_joined(model, JoinedSets({"a": split}, "cpu"), batch_size=16, precision="bf16")["a"]
        joined_logits = torch.cat(outputs)
    for result, logits in ((alone, alone_logits), (joined, joined_logits)):
        assert logits.dtype == torch.bfloat16
        expected = F.cross_entropy(logits.float(), split.y, reduction="none").double().mean().item()
        assert result["loss"] == pytest.approx(expected, rel=1e-6)


def test_per_sample_losses_are_summed_in_float64_so_a_huge_loss_does_not_swallow_the_small_ones():
    """The images are the logits (a flatten "model"): one sample with logits (0, 2^24) and class 0 has loss 2^24,
    seven with logits (0, 0) have loss log 2 each; the mean is (2^24 + 7·log 2) / 8. A float32 running sum (spacing 2
    at 2^24) drops the small losses. `evaluate` in batches of one and `evaluate_joined` ("per-sample losses summed
    in float64") must both keep them."""
    x = torch.zeros(8, 2, 1, 1)
    x[0, 1, 0, 0] = 2.0 ** 24
    split = Split(x, torch.zeros(8, dtype=torch.int64))
    expected = (2.0 ** 24 + 7 * math.log(2.0)) / 8
    assert evaluate(nn.Flatten(), split, batch_size=1, precision="fp32")["loss"] == pytest.approx(expected, abs=1e-5)
    joined = evaluate_joined(nn.Flatten(), JoinedSets({"a": split, "b": split}, "cpu"), batch_size=16, precision="fp32")
    assert joined["a"]["loss"] == pytest.approx(expected, abs=1e-5)
    assert joined["b"]["loss"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("available, supported, native", [(True, True, True), (True, False, False), (False, True, False)])
def test_a_gpu_computes_bf16_natively_only_where_cuda_is_available_and_supports_it(monkeypatch, available, supported,
                                                                                   native):
    """"CUDA GPUs with bf16 support": both conditions, never either one alone."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    assert native_bf16("cuda") is native


def test_evaluate_sets_passes_its_options_to_every_evaluation():
    """`evaluate_sets(model, sets, **kw)` is `evaluate` on each split with the same options: asked for predictions
    and bf16, every row holds that split's predictions and its bf16 numbers."""
    model = trained_bn_model()
    sets = {"nocue": make_split(7, seed=2), "cue": make_split(5, seed=3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = evaluate_sets(model, sets, batch_size=4, precision="bf16", predictions=True)
        for row, (name, split) in zip(rows, sets.items(), strict=True):
            alone = evaluate(model, split, batch_size=4, precision="bf16", predictions=True)
            assert row["eval_set"] == name and torch.equal(row["pred"], alone["pred"])
            assert row["loss"] == alone["loss"] and row["loss"] != evaluate(model, split, precision="fp32")["loss"]


def test_joined_sets_refuse_no_sets_at_all():
    """Nothing to evaluate is the same error as an empty split, not a failure deep inside torch."""
    with pytest.raises(ValueError, match="empty split"):
        JoinedSets({}, "cpu")


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_one_non_finite_logit_per_sample_makes_every_set_of_a_joined_evaluation_nan(poison):
    """A model whose logit for class 1 is non-finite for every image (its head bias poisoned), the other logits
    finite: each sample has *a* non-finite logit, so, as `evaluate` gives it alone, every set's loss and accuracy
    are NaN (argmax still names a class: a finite accuracy would come from non-finite work)."""
    model = trained_bn_model()
    with torch.no_grad():
        model.head.bias[1] = poison
    sets = {"a": make_split(7, seed=1), "b": make_split(5, seed=2)}
    results = evaluate_joined(model, JoinedSets(sets, "cpu"), batch_size=4, precision="fp32")
    for name, split in sets.items():
        alone = evaluate(model, split, batch_size=4, precision="fp32")
        assert math.isnan(alone["loss"]) and math.isnan(alone["acc"])
        assert math.isnan(results[name]["loss"]) and math.isnan(results[name]["acc"]), (name, results[name])
        assert results[name]["n"] == len(split)


def test_bf16_on_a_device_that_computes_it_natively_is_resolved_without_a_warning(monkeypatch):
    """The slowness warning is for bf16 *emulated* ("on a device with no native bfloat16"): where the device computes
    bf16 natively, asking for it is the fast choice and resolves silently (warnings as errors here)."""
    import tasks.evaluate as evaluate_module
    monkeypatch.setattr(evaluate_module, "native_bf16", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu") == "bf16"
        assert resolve_precision("auto", "cpu") == "bf16"
        model, split = trained_bn_model(), make_split(6, seed=1)
        assert evaluate(model, split, batch_size=4, precision="bf16")["n"] == 6


def test_finite_logits_whose_loss_overflows_make_the_evaluation_nan_as_non_finite_logits_do():
    """Logits of ±3e38 are finite, but their cross-entropy overflows float32 to inf: a blown-up model. Its loss and
    accuracy are NaN, one pass or joined, never an inf loss beside a finite accuracy."""
    class Blown(nn.Module):
        def forward(self, x):
            return torch.tensor([[3e38, -3e38, 0.0]]).expand(len(x), 3).clone()

    split = Split(torch.zeros(4, 1, 2, 2), torch.tensor([1, 1, 1, 1]))
    result = evaluate(Blown(), split)
    assert math.isnan(result["loss"]) and math.isnan(result["acc"])
    joined = evaluate_joined(Blown(), JoinedSets({"a": split}, torch.device("cpu")), batch_size=2)
    assert math.isnan(joined["a"]["loss"]) and math.isnan(joined["a"]["acc"])


class _LogitsAreTheInput(nn.Module):
    """A 'model' whose logits are its input rows: any logits a test wants, finite or not."""

    def forward(self, x):
        return x.flatten(1)


@pytest.mark.parametrize("batch_size", [2, 1024])
def test_a_minus_infinite_logit_of_a_class_that_is_not_the_label_makes_the_evaluation_nan(batch_size):
    """A logit of -inf for a class that is not the sample's label leaves its cross-entropy finite (the term drops
    out of the log-sum-exp), so only the logit check sees the non-finite work: one such logit, in one sample of
    one batch, makes the set's loss and accuracy NaN ("NaN when any logit is NaN or inf"), in `evaluate` and in a
    joined pass, for that set only."""
    inf = float("inf")
    x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -inf], [1.0, 0.0, 0.5], [0.0, 3.0, 1.0]])
    bad, good = Split(x, torch.tensor([0, 1, 0, 1])), Split(x[[0, 2, 3]].clone(), torch.tensor([0, 0, 1]))
    model = _LogitsAreTheInput()
    result = evaluate(model, bad, batch_size=batch_size, precision="fp32")
    assert math.isnan(result["loss"]) and math.isnan(result["acc"]), result
    joined = evaluate_joined(model, JoinedSets({"bad": bad, "good": good}, "cpu"), batch_size=batch_size, precision="fp32")
    assert math.isnan(joined["bad"]["loss"]) and math.isnan(joined["bad"]["acc"]), joined["bad"]
    assert joined["good"]["acc"] == 1.0 and math.isfinite(joined["good"]["loss"])
