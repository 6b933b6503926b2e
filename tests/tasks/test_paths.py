"""Paths: interpolation, Bezier curves, exact BN re-estimation, path evaluation, barriers,
midpoint training. Tiny models and synthetic data only."""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

from tasks.data import Split
from tasks.evaluate import evaluate, resolve_precision
from tasks.models import build_model
from tasks.paths import (
    BARRIER_DEFINITIONS,
    FoldedBN,
    MidpointSettings,
    PatchMoments,
    PathSettings,
    ResetPass,
    alpha_workers,
    barriers,
    bezier,
    draw_bn_sample,
    evaluate_path,
    fresh_state,
    interpolate,
    reset_bn,
    train_midpoint,
)


def tiny_model(seed: int) -> nn.Module:
    return build_model("small_cnn", num_classes=3, in_channels=1, width=4, seed=seed)


def blobs(n: int, seed: int) -> Split:
    """Three classes of 1x8x8 images: a class-specific mean pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1234))
    y = torch.arange(n) % 3
    x = means[y] + 0.8 * torch.randn(n, 1, 8, 8, generator=g)
    return Split(x=x, y=y)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def trained_state(seed: int, data: Split, steps: int = 30) -> dict[str, torch.Tensor]:
    model = tiny_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(data.x), data.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return state_of(model)


# --------------------------------------------------------------------------- interpolation

def test_interpolate_floats_and_takes_integer_buffers_from_a():
    a, b = state_of(tiny_model(0)), state_of(tiny_model(1))
    a["blocks.0.bn.num_batches_tracked"].fill_(7)
    b["blocks.0.bn.num_batches_tracked"].fill_(99)
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(interpolate(a, b, 0.0)[key], a[key])
            torch.testing.assert_close(interpolate(a, b, 1.0)[key], b[key])
            torch.testing.assert_close(interpolate(a, b, 0.25)[key], 0.75 * a[key] + 0.25 * b[key])
    half = interpolate(a, b, 0.5)
    assert half["blocks.0.bn.num_batches_tracked"].item() == 7
    assert half["blocks.0.bn.num_batches_tracked"].dtype == torch.int64
    # BN affine parameters are interpolated too.
    torch.testing.assert_close(half["blocks.1.bn.weight"], 0.5 * (a["blocks.1.bn.weight"] + b["blocks.1.bn.weight"]))


def test_interpolate_rejects_mismatched_keys():
    a = state_of(tiny_model(0))
    b = dict(a)
    b.pop("head.bias")
    with pytest.raises(KeyError, match="head.bias"):
        interpolate(a, b, 0.5)


def test_bezier_at_0_half_1_and_linear_midpoint_gives_the_line():
    a, m, b = (state_of(tiny_model(s)) for s in (0, 1, 2))
    key = "blocks.2.conv.weight"
    torch.testing.assert_close(bezier(a, m, b, 0.0)[key], a[key])
    torch.testing.assert_close(bezier(a, m, b, 1.0)[key], b[key])
    torch.testing.assert_close(bezier(a, m, b, 0.5)[key], 0.25 * a[key] + 0.5 * m[key] + 0.25 * b[key])
    line_mid = interpolate(a, b, 0.5)
    for alpha in (0.1, 0.3, 0.8):
        torch.testing.assert_close(bezier(a, line_mid, b, alpha)[key], interpolate(a, b, alpha)[key])


# --------------------------------------------------------------------------- BN re-estimation

def test_reset_bn_is_exact_over_n_samples_for_the_first_layer():
    model = tiny_model(0)
    model.blocks[0].bn.momentum = 0.3
    x = blobs(37, seed=5).x                       # 37 is not a multiple of the batch size
    reset_bn(model, x, batch_size=10, precision="fp32")
    bn = model.blocks[0].bn
    with torch.no_grad():
        h = model.blocks[0].conv(x).double()
    torch.testing.assert_close(bn.running_mean.double(), h.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var.double(), h.transpose(0, 1).reshape(h.shape[1], -1).var(dim=1),
                               rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.3 and not model.training
    # Independent of the batching for the first layer.
    other = tiny_model(0)
    reset_bn(other, x, batch_size=37, precision="fp32")
    torch.testing.assert_close(other.blocks[0].bn.running_mean, bn.running_mean)
    torch.testing.assert_close(other.blocks[0].bn.running_var, bn.running_var)


def test_reset_bn_replaces_old_statistics_and_skips_models_without_bn():
    model = tiny_model(0)
    x = blobs(20, seed=1).x
    reset_bn(model, x, batch_size=8)
    expected = model.blocks[3].bn.running_mean.clone()
    model.blocks[3].bn.running_mean.fill_(123.0)
    reset_bn(model, x, batch_size=8)
    torch.testing.assert_close(model.blocks[3].bn.running_mean, expected)

    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    before = state_of(plain)
    reset_bn(plain, x, batch_size=8)
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_reset_pass_runs_only_what_the_statistics_need_and_keeps_reset_bns_numbers():
    model = tiny_model(0).to(memory_format=torch.channels_last)
    own = copy.deepcopy(model)
    x = blobs(37, seed=5).x                       # 4 batches of at most 10
    reset_bn(own, x, batch_size=10, precision="fp32")
    calls = {"head": 0, "first conv": 0}
    model.head.register_forward_hook(lambda *_: calls.__setitem__("head", calls["head"] + 1))
    model.blocks[0].conv.register_forward_hook(lambda *_: calls.__setitem__("first conv", calls["first conv"] + 1))
    fast = ResetPass(model, PatchMoments())
    for run in range(2):
        reset_bn(model, x, batch_size=10, precision="fp32", traced=fast)
        for key, value in own.state_dict().items():
            torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
        assert not model.training and model.blocks[0].bn.momentum == 0.1
    # the head never runs; the first convolution never runs alone: its BN's statistics come from the image
    # patches and it runs once, with that BN folded in and its ReLU fused
    assert calls == {"head": 0, "first conv": 0}
    assert [block.normalise for block in fast.module.children() if hasattr(block, "normalise")] == [True] * 3 + [False]
    # elsewhere (bf16, another device) reset_bn runs its own pass
    assert not fast.applies("bf16", "cpu") and not fast.applies("fp32", "meta")
    assert fast.applies("auto", "cpu") == (resolve_precision("auto", "cpu") == "fp32")


def test_patch_moments_are_kept_for_the_very_images_only():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    images = torch.randn(12, 2, 5, 5)
    cache = PatchMoments()
    first = cache.of(images[:6], images[:6], conv)
    assert cache.of(images[:6], images[:6], conv) is first                # the same batch again: kept
    count, mean, cov = first
    patches = nn.functional.unfold(images[:6].double(), 3, padding=1).transpose(1, 2).reshape(-1, 18)
    assert count == 6 * 25
    torch.testing.assert_close(mean, patches.mean(0))
    torch.testing.assert_close(cov, torch.cov(patches.T, correction=0))
    assert cache.of(images[6:], images[6:], conv) is not first           # other images of the same tensor
    images[:6].mul_(2.0)                                                  # changed in place: computed again
    again = cache.of(images[:6], images[:6], conv)
    torch.testing.assert_close(again[2], 4.0 * cov)


# --------------------------------------------------------------------------- path evaluation

def test_path_endpoints_equal_endpoint_evaluation_after_the_same_bn_reset():
    train = blobs(60, seed=0)
    sets = {"nocue": blobs(30, seed=1), "other": blobs(20, seed=2)}
    a, b = trained_state(0, train, steps=5), trained_state(1, train, steps=5)
    settings = PathSettings(num_alphas=3, bn_reset_samples=25, eval_batch_size=16, precision="fp32")
    rows = evaluate_path(tiny_model(9), a, b, bn_data=train.x, sets=sets, settings=settings, device="cpu")
    assert sorted({r["alpha"] for r in rows}) == [0.0, 0.5, 1.0]
    assert len(rows) == 3 * len(sets)
    for alpha, state in ((0.0, a), (1.0, b)):
        endpoint = tiny_model(3)
        endpoint.load_state_dict(state)
        reset_bn(endpoint, train.x[:25], batch_size=16, precision="fp32")
        for name, split in sets.items():
            expected = evaluate(endpoint, split, batch_size=16, device="cpu", precision="fp32")
            (row,) = [r for r in rows if r["alpha"] == alpha and r["eval_set"] == name]
            assert row["n"] == expected["n"] == len(split)
            assert row["acc"] == pytest.approx(expected["acc"], abs=1e-9)
            assert row["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-6)


def _predictions(state, bn_x, split) -> torch.Tensor:
    """An endpoint's own predictions on `split` after re-estimating BN on `bn_x` (no path code involved)."""
    model = tiny_model(7)
    model.load_state_dict(state)
    reset_bn(model, bn_x, batch_size=16, precision="fp32")
    with torch.no_grad():
        return model.eval()(split.x).argmax(1)


def test_mechanism_along_the_path_agreement_with_each_endpoint_and_cue_reliance():
    train = blobs(60, seed=0)
    sets = {"nocue": blobs(40, seed=1), "cue": blobs(40, seed=4), "randcue": blobs(40, seed=2),
            "randimg": blobs(40, seed=3)}       # four sets of three classes: chance is 1/3, not 1/(number of sets)
    a, b = trained_state(0, train, steps=2), trained_state(1, train, steps=2)
    settings = PathSettings(num_alphas=4, bn_reset_samples=25, eval_batch_size=16, precision="fp32")
    rows = evaluate_path(tiny_model(9), a, b, bn_data=train.x, sets=sets, settings=settings, device="cpu")
    assert [r["alpha"] for r in rows] == [alpha for alpha in settings.alphas() for _ in sets]   # ascending
    at = {(r["alpha"], r["eval_set"]): r for r in rows}
    mutual_agreements = []
    for name, split in sets.items():
        assert at[(0.0, name)]["agree_a"] == 1.0 and at[(1.0, name)]["agree_b"] == 1.0
        mutual = (_predictions(a, train.x[:25], split) == _predictions(b, train.x[:25], split)).double().mean()
        assert at[(1.0, name)]["agree_a"] == pytest.approx(float(mutual), abs=1e-12)
        assert at[(0.0, name)]["agree_b"] == pytest.approx(float(mutual), abs=1e-12)
        mutual_agreements.append(float(mutual))
        for alpha in settings.alphas():
            assert 0.0 <= at[(alpha, name)]["agree_a"] <= 1.0 and 0.0 <= at[(alpha, name)]["agree_b"] <= 1.0
    assert 0.0 < min(mutual_agreements) and max(mutual_agreements) < 1.0     # the endpoints decide differently
    for alpha in settings.alphas():
        acc = {name: at[(alpha, name)]["acc"] for name in sets}
        for name in sets:
            row = at[(alpha, name)]
            assert row["reliance_randimg"] == pytest.approx(acc["randimg"] - 1 / 3)      # 3 classes
            assert row["reliance_randcue"] == pytest.approx(acc["nocue"] - acc["randcue"])
    partial = evaluate_path(tiny_model(9), a, b, bn_data=train.x, sets={"nocue": sets["nocue"]}, settings=settings,
                            device="cpu")
    assert all(r["reliance_randimg"] is None and r["reliance_randcue"] is None for r in partial)


def test_bn_sample_resample_draws_a_fresh_seeded_sample_per_alpha_and_fixed_does_not(monkeypatch):
    import tasks.paths as paths_module
    train = blobs(80, seed=0)
    sets = {"nocue": blobs(30, seed=1)}
    a = trained_state(0, train, steps=5)
    seen: list[torch.Tensor] = []
    original = paths_module.reset_bn

    def recording_reset_bn(model, x, *args, **kwargs):
        seen.append(x.clone())
        return original(model, x, *args, **kwargs)

    monkeypatch.setattr(paths_module, "reset_bn", recording_reset_bn)
    samples, barrier = {}, {}
    for mode, seed in (("fixed", 0), ("resample", 0), ("resample", 0), ("resample", 1)):
        settings = PathSettings(num_alphas=5, bn_reset_samples=20, eval_batch_size=32, precision="fp32",
                                bn_sample=mode)
        seen.clear()
        rows = evaluate_path(tiny_model(0), a, a, bn_data=train.x, sets=sets, settings=settings, device="cpu",
                             seed=seed)
        samples[(mode, seed)] = list(seen)
        barrier[(mode, seed)] = max(r["value"] for r in barriers(rows) if r["metric"] == "loss")
        assert len(seen) == 5 and all(len(x) == 20 for x in seen)
        drawn, pool = torch.stack(seen).flatten(2), train.x.flatten(1)           # [alphas, 20, D], [80, D]
        assert bool((drawn[:, :, None] == pool[None, None]).all(3).any(2).all())   # every image is a training image
    fixed = samples[("fixed", 0)]
    assert all(torch.equal(x, train.x[:20]) for x in fixed)
    fresh = samples[("resample", 0)]
    assert all(not torch.equal(fresh[i], fresh[j]) for i in range(5) for j in range(i + 1, 5))
    assert all(torch.equal(x, y) for x, y in zip(fresh, samples[("resample", 0)]))
    assert not any(torch.equal(x, y) for x, y in zip(fresh, samples[("resample", 1)]))
    # a model against itself: no barrier with one BN sample; the BN-sample noise floor with fresh ones
    assert abs(barrier[("fixed", 0)]) < 1e-5 and barrier[("resample", 0)] > 1e-4
    direct = draw_bn_sample(train.x, PathSettings(bn_reset_samples=20, bn_sample="resample"), seed=0, alpha_index=3)
    assert len(direct) == 20 and not torch.equal(direct, train.x[:20])


def test_barrier_of_a_model_with_itself_is_zero():
    train = blobs(40, seed=0)
    a = trained_state(0, train, steps=5)
    sets = {"nocue": blobs(20, seed=1), "cue": blobs(20, seed=2)}
    settings = PathSettings(num_alphas=4, bn_reset_samples=30, eval_batch_size=32, precision="fp32")
    rows = evaluate_path(tiny_model(0), a, a, bn_data=train.x, sets=sets, settings=settings, device="cpu")
    result = barriers(rows)
    assert {(r["eval_set"], r["metric"], r["definition"]) for r in result} == {
        (s, m, d) for s in sets for m in ("loss", "acc") for d in BARRIER_DEFINITIONS}
    for r in result:
        assert abs(r["value"]) < 1e-5, r


def test_barriers_match_hand_computed_values():
    loss = {0.0: 1.0, 0.25: 2.0, 0.5: 1.5, 1.0: 3.0}
    acc = {0.0: 0.9, 0.25: 0.5, 0.5: 0.6, 1.0: 0.7}
    rows = [{"alpha": a, "eval_set": "s", "loss": loss[a], "acc": acc[a], "n": 10}
            for a in (0.5, 1.0, 0.0, 0.25)]                     # order must not matter
    rows += [{"alpha": a, "eval_set": "flat", "loss": 2.0, "acc": 0.5, "n": 10} for a in (0.0, 1.0)]
    got = {(r["eval_set"], r["metric"], r["definition"]): r["value"] for r in barriers(rows)}
    # loss chord: at 0.25, 2.0 - (0.75*1 + 0.25*3) = 0.5; mean_endpoints: 3.0 - 2.0 = 1.0
    assert got[("s", "loss", "chord")] == pytest.approx(0.5)
    assert got[("s", "loss", "mean_endpoints")] == pytest.approx(1.0)
    # acc chord: at 0.25, (0.75*0.9 + 0.25*0.7) - 0.5 = 0.35; mean_endpoints: 0.8 - 0.5 = 0.3
    assert got[("s", "acc", "chord")] == pytest.approx(0.35)
    assert got[("s", "acc", "mean_endpoints")] == pytest.approx(0.3)
    # worse endpoint: loss peak 3.0 is the worse endpoint itself -> 0; acc: min(0.9, 0.7) - 0.5 = 0.2
    assert got[("s", "loss", "worse_endpoint")] == pytest.approx(0.0)
    assert got[("s", "acc", "worse_endpoint")] == pytest.approx(0.2)
    assert all(got[("flat", m, d)] == pytest.approx(0.0) for m in ("loss", "acc") for d in BARRIER_DEFINITIONS)


def test_a_non_finite_curve_gives_nan_barriers_never_a_finite_number():
    rows = [{"alpha": a, "eval_set": "s", "loss": v, "acc": 0.5} for a, v in ((0.0, 1.0), (0.5, float("nan")), (1.0, 1.0))]
    assert all(r["value"] != r["value"] for r in barriers(rows))


def test_a_non_finite_accuracy_or_an_infinite_loss_gives_nan_barriers_too():
    for loss, acc in ((1.0, float("nan")), (float("inf"), 0.5)):
        rows = [{"alpha": a, "eval_set": "s", "loss": 1.0 if a != 0.5 else loss, "acc": 0.5 if a != 0.5 else acc}
                for a in (0.0, 0.5, 1.0)]
        result = barriers(rows)
        assert len(result) == 6 and all(r["value"] != r["value"] for r in result), (loss, acc)


def _biased_cnn() -> nn.Module:
    """A model of your own whose convolutions have (large) biases before their BatchNorm."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(1.0, 3.0)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.3, 0.6)
    return model


def test_folded_bn_and_the_reset_pass_keep_a_convolutions_bias():
    """The folded bias is beta + (b - mean) g / sqrt(var + eps); the first BN's mean from the image patches
    includes the convolution's bias (its variance does not)."""
    x = blobs(40, seed=2).x
    own = _biased_cnn()
    reset_bn(own, x, batch_size=16, precision="fp32")
    conv, bn = own[0], own[1]
    with torch.no_grad():
        h = conv(x).double()
    torch.testing.assert_close(bn.running_mean.double(), h.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    fast = _biased_cnn()
    reset_bn(fast, x, batch_size=16, precision="fp32", traced=ResetPass(fast, PatchMoments()))
    for key, value in own.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=key)
    folded = FoldedBN(own)
    assert len(folded.pairs) == 2
    with torch.no_grad():
        torch.testing.assert_close(folded.module(x), own.eval()(x), rtol=1e-4, atol=1e-5)


def test_bn_data_takes_each_endpoints_share_of_distinct_images_along_the_path():
    """`clean`: the clean images; `endpoints`: the first round((1-a) N) drawn indices from A's training
    images, the rest from B's (the same images, each with its endpoint's cues); `mix`: half and half."""
    n, size = 40, 10
    clean = torch.arange(n, dtype=torch.float32)[:, None]
    a_imgs, b_imgs = clean + 1000, clean + 2000          # A's and B's versions of the same images
    for sample in ("fixed", "resample"):
        for choice, alpha, from_a in (("clean", 0.3, None), ("endpoints", 0.0, 10), ("endpoints", 0.3, 7),
                                      ("endpoints", 1.0, 0), ("mix", 0.0, 5), ("mix", 0.9, 5)):
            settings = PathSettings(bn_reset_samples=size, bn_sample=sample, bn_data=choice)
            base = clean if choice == "clean" else a_imgs
            got = draw_bn_sample(base, settings, seed=3, alpha_index=2, bn_data_b=None if choice == "clean" else b_imgs,
                                 alpha=alpha)
            index = draw_bn_sample(clean, PathSettings(bn_reset_samples=size, bn_sample=sample), seed=3,
                                   alpha_index=2)[:, 0].long()
            if from_a is None:
                assert torch.equal(got[:, 0].long(), index)
                continue
            expect = torch.cat([a_imgs[index[:from_a]], b_imgs[index[from_a:]]])
            assert torch.equal(got, expect), (sample, choice, alpha)
    with pytest.raises(ValueError, match="both endpoints"):
        draw_bn_sample(a_imgs, PathSettings(bn_reset_samples=size, bn_data="mix"), seed=0, alpha_index=0)


def test_bn_data_endpoint_shares_are_rounded_half_up():
    """round((1 - a) N) of the drawn indices come from A's images, a half rounded up: with N = 10, 2.5 -> 3 at
    alpha 0.75 and 7.5 -> 8 at alpha 0.25 (a truncation would give 2 and 7)."""
    n, size = 40, 10
    clean = torch.arange(n, dtype=torch.float32)[:, None]
    a_imgs, b_imgs = clean + 1000, clean + 2000
    for alpha, from_a in ((0.75, 3), (0.25, 8)):
        got = draw_bn_sample(a_imgs, PathSettings(bn_reset_samples=size, bn_data="endpoints"), seed=0, alpha_index=1,
                             bn_data_b=b_imgs, alpha=alpha)
        assert int((got < 2000).sum()) == from_a, alpha
        assert torch.equal(got[:from_a], a_imgs[:from_a]) and torch.equal(got[from_a:], b_imgs[from_a:size])


def test_bn_data_changes_the_endpoint_statistics_as_specified():
    """Re-estimated on A's own training images, the path's alpha-0 point reproduces the BN statistics of
    A's images; on clean images it does not: the endpoint statistics follow `paths.bn_data`."""
    data = blobs(64, 0)
    a, b = trained_state(0, data), trained_state(1, data)
    a_imgs = data.x + 3.0                                   # A's training distribution: shifted images
    model = tiny_model(9)
    stats = {}
    for choice in ("clean", "endpoints"):
        settings = PathSettings(num_alphas=2, bn_reset_samples=64, bn_data=choice)
        evaluate_path(model, a, b, bn_data=data.x if choice == "clean" else a_imgs,
                      bn_data_b=None if choice == "clean" else data.x, sets={"s": data}, settings=settings,
                      device="cpu")
        bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))     # holds alpha = 1 (B) now
        stats[choice] = bn.running_mean.clone()
    # alpha = 1 re-estimates on B's images in both cases (B's share is 1): the same statistics
    assert torch.allclose(stats["clean"], stats["endpoints"], atol=1e-5)
    reference = tiny_model(9)
    reference.load_state_dict(a)
    losses = {}
    for choice, images in (("clean", data.x), ("endpoints", a_imgs)):
        reset_bn(reference, images[:64])
        settings = PathSettings(num_alphas=2, bn_reset_samples=64, bn_data=choice)
        rows = evaluate_path(model, a, b, bn_data=data.x if choice == "clean" else a_imgs,
                             bn_data_b=None if choice == "clean" else data.x, sets={"s": data}, settings=settings,
                             device="cpu")
        expected = evaluate(reference, data, batch_size=64, device="cpu")
        losses[choice] = rows[0]["loss"]
        assert rows[0]["loss"] == pytest.approx(expected["loss"], rel=1e-2, abs=1e-5), choice
    assert abs(losses["clean"] - losses["endpoints"]) > 0.1     # A's own images move the endpoint


def test_barriers_reject_duplicate_alphas():
    rows = [{"alpha": 0.0, "eval_set": "s", "loss": 1.0, "acc": 0.5}] * 2
    with pytest.raises(ValueError, match="twice"):
        barriers(rows)


def test_barriers_need_at_least_two_alphas_per_eval_set():
    """A barrier compares the path with its two endpoints: one alpha is no path, and says so (not a division
    by zero while rescaling the alphas)."""
    rows = [{"alpha": 0.0, "eval_set": "s", "loss": 1.0, "acc": 0.5},
            {"alpha": 0.0, "eval_set": "t", "loss": 1.0, "acc": 0.5}, {"alpha": 1.0, "eval_set": "t", "loss": 2.0, "acc": 0.4}]
    with pytest.raises(ValueError, match="at least 2 alphas"):
        barriers(rows)


@pytest.mark.parametrize("sample", ["fixed", "resample"])
def test_a_bn_sample_larger_than_the_training_set_splits_all_of_it_between_the_endpoints(sample):
    """`bn_reset_samples` above the number of training images: the sample is every image once, and at
    alpha 0.5 `endpoints` takes round(0.5 * 10) = 5 of them from A's images and the other 5 from B's."""
    n = 10
    clean = torch.arange(n, dtype=torch.float32)[:, None]
    a_imgs, b_imgs = clean + 1000, clean + 2000
    settings = PathSettings(bn_reset_samples=25, bn_sample=sample, bn_data="endpoints")
    got = draw_bn_sample(a_imgs, settings, seed=0, alpha_index=2, bn_data_b=b_imgs, alpha=0.5)
    assert len(got) == n
    assert int((got < 2000).sum()) == 5 and int((got >= 2000).sum()) == 5
    assert sorted((got[:, 0] % 1000).long().tolist()) == list(range(n))     # every image once, from one endpoint


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_alpha_re_estimates_batchnorm_in_the_paths_precision(monkeypatch, precision):
    """BN statistics must match the activations they normalise: each alpha's re-estimation runs in
    `settings.precision`, with `eval_batch_size` batches, on the sample of that alpha."""
    import tasks.paths as paths_module
    train = blobs(40, seed=0)
    a, b = trained_state(0, train, steps=2), trained_state(1, train, steps=2)
    seen = []
    original = paths_module.reset_bn

    def recording_reset_bn(model, x, batch_size=1024, precision="auto", **kwargs):
        seen.append((len(x), batch_size, precision))
        return original(model, x, batch_size, precision, **kwargs)

    monkeypatch.setattr(paths_module, "reset_bn", recording_reset_bn)
    settings = PathSettings(num_alphas=3, bn_reset_samples=30, eval_batch_size=16, precision=precision)
    evaluate_path(tiny_model(0), a, b, bn_data=train.x, sets={"nocue": blobs(12, seed=1)}, settings=settings,
                  device="cpu")
    assert seen == [(30, 16, precision)] * 3


def test_no_more_alphas_run_side_by_side_than_the_path_has():
    """One alpha per intra-op thread, at most `num_alphas` of them (a copy of the model each)."""
    with intra_op_threads(2):
        assert alpha_workers("cpu", 1) == 1 and alpha_workers("cpu", 2) == 2 and alpha_workers("cpu", 5) == 2


def test_settings_validate():
    with pytest.raises(ValueError, match="num_alphas"):
        PathSettings(num_alphas=1)
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        PathSettings(precision="fp16")
    with pytest.raises(ValueError, match="fixed, resample"):
        PathSettings(bn_sample="fresh")
    with pytest.raises(ValueError, match="fresh"):
        MidpointSettings(init="middle")
    assert PathSettings(num_alphas=5).alphas() == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("name, channels, size", [("small_cnn", 1, 12), ("vgg13", 3, 16), ("resnet18", 3, 16)])
def test_folded_bn_computes_the_eval_mode_function_and_follows_the_model(name, channels, size):
    model = build_model(name, num_classes=5, in_channels=channels, width=4, seed=0)
    x = torch.randn(6, channels, size, size, generator=torch.Generator().manual_seed(0))
    reset_bn(model, torch.randn(40, channels, size, size), batch_size=16, precision="fp32")
    before = state_of(model)
    folded = FoldedBN(model)
    batchnorms = [m for m in folded.module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(folded.pairs) > 0 and batchnorms == []          # every conv -> BN pair is folded
    with torch.no_grad():
        torch.testing.assert_close(folded.module(x), model(x), rtol=1e-4, atol=1e-5)
    assert state_of(model).keys() == before.keys()               # the model itself is untouched
    for key, value in state_of(model).items():
        torch.testing.assert_close(value, before[key])
    # A new state in the model reaches the folded view after refresh().
    model.load_state_dict(state_of(build_model(name, num_classes=5, in_channels=channels, width=4, seed=1)))
    reset_bn(model, torch.randn(40, channels, size, size), batch_size=16, precision="fp32")
    with torch.no_grad():
        stale = folded.module(x)
        torch.testing.assert_close(folded.refresh()(x), model(x), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(stale, model(x))


def test_folded_bn_runs_the_relu_inside_the_convolution_and_keeps_the_function():
    """Every conv -> BN -> ReLU block becomes one fused convolution (no ReLU left in the graph); fused
    (no gradients, fp32 on the CPU) and unfused (gradients on) it computes the model's eval-mode function."""
    from tasks.paths import _ConvReLU
    model = build_model("vgg13", num_classes=5, in_channels=3, width=4, seed=0)
    reset_bn(model, torch.randn(40, 3, 16, 16), batch_size=16, precision="fp32")
    model.to(memory_format=torch.channels_last)
    folded = FoldedBN(model)
    fused = [m for m in folded.module.modules() if isinstance(m, _ConvReLU)]
    assert len(fused) == len(model.blocks) == 10
    assert not [n for n in folded.module.graph.nodes if "relu" in str(n.target)]
    x = torch.randn(6, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(folded.module(x), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(folded.module(x).detach(), expected, rtol=1e-4, atol=1e-5)
    layer = fused[0]
    with torch.no_grad():
        inside = layer(x)
    assert (inside >= 0).all() and (inside == 0).any()           # the ReLU did run
    torch.testing.assert_close(inside, torch.relu(nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)))


def test_bf16_path_curves_stay_close_to_fp32():
    train = blobs(80, seed=0)
    sets = {"nocue": blobs(60, seed=1), "other": blobs(60, seed=2)}
    a, b = trained_state(0, train, steps=10), trained_state(1, train, steps=10)
    rows = {}
    for precision in ("fp32", "bf16"):
        settings = PathSettings(num_alphas=3, bn_reset_samples=60, eval_batch_size=32, precision=precision)
        rows[precision] = evaluate_path(tiny_model(0), a, b, bn_data=train.x, sets=sets, settings=settings,
                                        device="cpu")
    for r32, r16 in zip(rows["fp32"], rows["bf16"]):
        assert (r32["alpha"], r32["eval_set"]) == (r16["alpha"], r16["eval_set"])
        assert r16["loss"] == pytest.approx(r32["loss"], rel=0.03, abs=0.01)
        assert abs(r16["acc"] - r32["acc"]) <= 3 / 60              # a few borderline samples may flip
    assert [r["loss"] for r in rows["fp32"]] != [r["loss"] for r in rows["bf16"]]   # bf16 did run


@contextlib.contextmanager
def intra_op_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_alphas_side_by_side_give_exactly_the_one_thread_numbers():
    # Large enough that BN statistics and convolutions split across two threads round differently
    # (checked below), so alphas run with two intra-op threads each would not match bit for bit.
    g = torch.Generator().manual_seed(0)
    make = lambda seed: build_model("small_cnn", num_classes=3, in_channels=1, width=8, seed=seed)
    a, b = state_of(make(1)), state_of(make(2))
    bn_x = torch.randn(600, 1, 16, 16, generator=g)
    sets = {"nocue": Split(torch.randn(300, 1, 16, 16, generator=g), torch.arange(300) % 3),
            "other": Split(torch.randn(200, 1, 16, 16, generator=g), torch.arange(200) % 3)}
    settings = PathSettings(num_alphas=5, bn_reset_samples=600, eval_batch_size=1024, precision="fp32")
    rows, models, stats = {}, {}, {}
    for threads in (1, 2):
        with intra_op_threads(threads):
            assert alpha_workers("cpu", settings.num_alphas) == threads
            models[threads] = make(0)
            rows[threads] = evaluate_path(models[threads], a, b, bn_data=bn_x, sets=sets, settings=settings,
                                          device="cpu")
            assert torch.get_num_threads() == threads                   # restored after the side-by-side run
            probe = make(0).to(memory_format=torch.channels_last)      # as evaluate_path runs it
            probe.load_state_dict(interpolate(a, b, 0.5))
            reset_bn(probe, bn_x, batch_size=1024, precision="fp32")
            stats[threads] = torch.cat([m.running_var for m in probe.modules() if isinstance(m, nn.BatchNorm2d)])
    assert not torch.equal(stats[1], stats[2])          # two threads would round differently: the test can fail
    assert rows[2] == rows[1]                           # every loss, accuracy and agreement, exactly
    for key, value in models[1].state_dict().items():   # the scratch model ends holding alpha = 1, re-estimated
        torch.testing.assert_close(models[2].state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert alpha_workers("cpu", 1) == 1 and alpha_workers("meta", 5) == 1


@pytest.mark.parametrize("bn_sample", ["fixed", "resample"])
def test_path_rows_with_the_reset_pass_equal_those_of_reset_bns_own_pass(monkeypatch, bn_sample):
    import tasks.paths as paths_module
    train = blobs(90, seed=0)
    a, b = trained_state(0, train, steps=20), trained_state(1, train, steps=20)
    sets = {"nocue": blobs(40, seed=1), "other": blobs(30, seed=2)}
    settings = PathSettings(num_alphas=5, bn_reset_samples=70, eval_batch_size=32, precision="fp32",
                            bn_sample=bn_sample)
    computed = []
    original = paths_module._patch_moments
    monkeypatch.setattr(paths_module, "_patch_moments", lambda *args: computed.append(1) or original(*args))
    rows = {}
    for traced in (True, False):
        with monkeypatch.context() as patch:
            if not traced:
                patch.setattr(paths_module.ResetPass, "applies", lambda *_: False)
            rows[traced] = evaluate_path(tiny_model(0), a, b, bn_data=train.x, sets=sets, settings=settings,
                                         device="cpu")
    # patch moments once per BN batch of the path when every alpha shares the sample, never otherwise
    assert len(computed) == (3 if bn_sample == "fixed" else 0)
    assert len(rows[True]) == len(rows[False]) == 10
    for fast, own in zip(rows[True], rows[False]):
        assert {k: v for k, v in fast.items() if k != "loss"} == {k: v for k, v in own.items() if k != "loss"}
        assert abs(fast["loss"] - own["loss"]) <= 1e-5, fast
    for fast, own in zip(barriers(rows[True]), barriers(rows[False])):
        assert fast["value"] == pytest.approx(own["value"], abs=1e-5) and fast["eval_set"] == own["eval_set"]


def test_an_error_in_an_alpha_run_side_by_side_reaches_the_caller(monkeypatch):
    import tasks.paths as paths_module
    train = blobs(60, seed=0)
    a, b = trained_state(0, train, steps=2), trained_state(1, train, steps=2)
    calls = []
    original = paths_module.reset_bn

    def failing_reset_bn(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("alpha failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(paths_module, "reset_bn", failing_reset_bn)
    with intra_op_threads(2):
        with pytest.raises(RuntimeError, match="alpha failed"):
            evaluate_path(tiny_model(0), a, b, bn_data=train.x, sets={"nocue": blobs(20, seed=1)},
                          settings=PathSettings(num_alphas=6, bn_reset_samples=20), device="cpu")
        assert torch.get_num_threads() == 2


# --------------------------------------------------------------------------- midpoint training

def mean_inner_path_loss(mid, a, b, train, sets) -> float:
    settings = PathSettings(num_alphas=5, bn_reset_samples=60, eval_batch_size=64)
    rows = evaluate_path(tiny_model(0), a, b, midpoint=mid, bn_data=train.x, sets=sets,
                         settings=settings, device="cpu")
    inner = [r["loss"] for r in rows if 0.0 < r["alpha"] < 1.0]
    return sum(inner) / len(inner)


def test_midpoint_training_lowers_the_quadratic_path_loss():
    train = blobs(96, seed=0)
    sets = {"nocue": blobs(48, seed=1)}
    a, b = trained_state(0, train), trained_state(1, train)
    model = tiny_model(5)
    untouched = state_of(model)
    settings = MidpointSettings(epochs=6, lr=0.05, batch_size=32, step_epochs=4)
    init = fresh_state(model, seed=3)
    before = mean_inner_path_loss(init, a, b, train, sets)
    mid, curve = train_midpoint(model, a, b, train, settings, seed=3, device="cpu")
    after = mean_inner_path_loss(mid, a, b, train, sets)
    assert len(curve) == settings.epochs
    assert after < before - 0.05, (before, after)
    for k, v in model.state_dict().items():          # the architecture template is left alone
        torch.testing.assert_close(v, untouched[k])


def test_fresh_state_is_seeded_and_leaves_global_rng_alone():
    model = tiny_model(0)
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    s1 = fresh_state(model, seed=4)
    assert torch.equal(torch.rand(3), expected_next)
    s2 = fresh_state(copy.deepcopy(model), seed=4)
    s3 = fresh_state(model, seed=5)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(s1["blocks.0.conv.weight"], s3["blocks.0.conv.weight"])


def test_midpoint_resume_after_an_epoch_finishes_exactly_like_an_uninterrupted_run():
    from tasks.checkpoint import checkpoint_files, read_checkpoint
    from tasks.train import train_state_from_tensors, train_state_tensors
    train = blobs(48, seed=0)
    a, b = trained_state(0, train, steps=3), trained_state(1, train, steps=3)
    settings = MidpointSettings(epochs=3, lr=0.05, batch_size=16, schedule="cosine")
    saved = {}

    def keep(report):
        tensors, meta = train_state_tensors(report.state())
        saved[report.epoch + 1] = train_state_from_tensors(*read_checkpoint(checkpoint_files(tensors, meta)))

    full, rows = train_midpoint(tiny_model(0), a, b, train, settings, seed=4, device="cpu", on_epoch=keep)
    resumed, resumed_rows = train_midpoint(tiny_model(0), a, b, train, settings, seed=4, device="cpu",
                                           resume=saved[2])
    assert resumed_rows == rows[2:]
    for name, value in full.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


# --------------------------------------------------------------------------- edge cases (hunt 4)

def test_combining_refuses_an_extra_key_in_any_state():
    """Endpoints (and the midpoint) must share one architecture: a key that only B or M has is refused, not
    silently dropped."""
    a, m, b = (state_of(tiny_model(s)) for s in (0, 1, 2))
    extra = {**b, "extra.weight": torch.ones(2)}
    with pytest.raises(KeyError, match="extra.weight"):
        interpolate(a, extra, 0.5)
    with pytest.raises(KeyError, match="extra.weight"):
        bezier(a, {**m, "extra.weight": torch.ones(2)}, b, 0.5)
    with pytest.raises(KeyError, match="extra.weight"):
        interpolate({**a, "extra.weight": torch.ones(2)}, b, 0.5)


def test_a_combined_state_shares_no_tensor_with_the_endpoints():
    """The path's state is a new state: changing it (loading, re-estimating in place) never changes A, B or M,
    integer buffers (taken from A) included."""
    a, m, b = (state_of(tiny_model(s)) for s in (0, 1, 2))
    before = {k: v.clone() for k, v in a.items()}
    for combined in (interpolate(a, b, 0.5), bezier(a, m, b, 0.5), interpolate(a, b, 0.0)):
        for value in combined.values():
            value.add_(1)
    for key, value in a.items():
        assert torch.equal(value, before[key]), key


def test_float64_and_half_tensors_are_combined_like_float32_ones():
    """Every floating tensor is combined, whatever its precision; only integer buffers come from A."""
    a = {"w64": torch.tensor([1.0, 2.0], dtype=torch.float64), "w16": torch.tensor([1.0, 2.0], dtype=torch.float16),
         "count": torch.tensor(3)}
    b = {"w64": torch.tensor([3.0, 6.0], dtype=torch.float64), "w16": torch.tensor([3.0, 6.0], dtype=torch.float16),
         "count": torch.tensor(9)}
    half = interpolate(a, b, 0.5)
    assert torch.equal(half["w64"], torch.tensor([2.0, 4.0], dtype=torch.float64))
    assert torch.equal(half["w16"].float(), torch.tensor([2.0, 4.0]))
    assert int(half["count"]) == 3
    curve = bezier(a, {k: 0 * v for k, v in a.items()}, b, 0.5)      # 0.25 A + 0.5 * 0 + 0.25 B
    assert torch.equal(curve["w64"], torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert torch.equal(curve["w16"].float(), torch.tensor([1.0, 2.0]))


def test_reset_bn_forgets_non_finite_old_statistics():
    """Re-estimation starts from reset buffers: NaN or inf statistics left in the model (a diverged
    endpoint, an interpolation of them) do not leak into the new ones (momentum 1.0 still multiplies the old
    buffer by 0, and 0 * NaN is NaN)."""
    x = blobs(20, seed=1).x
    clean = tiny_model(0)
    reset_bn(clean, x, batch_size=8, precision="fp32")
    for traced in (False, True):
        model = tiny_model(0)
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.fill_(float("nan"))
            bn.running_var.fill_(float("inf"))
        reset_bn(model, x, batch_size=8, precision="fp32", traced=ResetPass(model) if traced else None)
        for key, value in clean.state_dict().items():
            torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=(traced, key))


def test_reset_bn_needs_two_samples_with_either_pass_and_takes_exactly_two():
    """One sample has no variance (the docstring's guard); two are enough."""
    x = blobs(2, seed=1).x
    for traced in (False, True):
        model = tiny_model(0)
        fast = ResetPass(model) if traced else None
        with pytest.raises(ValueError, match="at least 2 samples"):
            reset_bn(model, x[:1], batch_size=8, precision="fp32", traced=fast)
        reset_bn(model, x, batch_size=8, precision="fp32", traced=fast)
        assert int(model.blocks[0].bn.num_batches_tracked) == 1


def test_reset_bn_skips_batchnorms_that_track_no_statistics():
    """A BN without running statistics (`track_running_stats=False`) has nothing to re-estimate; the others
    are re-estimated as usual."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = blobs(20, seed=1).x
    reset_bn(model, x, batch_size=20, precision="fp32")             # one batch: BN 1 normalises with its statistics
    with torch.no_grad():
        h = model[3](model[2](model[1](model[0](x)))).double()
    torch.testing.assert_close(model[4].running_mean.double(), h.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert model[1].running_mean is None and not model.training


def test_reset_bn_in_bf16_ignores_the_traced_pass_and_matches_its_own_bf16_pass():
    """The traced pass is float32-only (`ResetPass.applies`): handed one in bf16, `reset_bn` runs its own bf16
    pass, so the statistics match the bf16 activations evaluated afterwards."""
    x = blobs(30, seed=1).x
    stats = {}
    for name, precision, traced in (("own", "bf16", False), ("traced", "bf16", True), ("fp32", "fp32", False)):
        model = tiny_model(0)
        with pytest.warns(RuntimeWarning) if precision == "bf16" and resolve_precision("auto", "cpu") == "fp32" \
                else contextlib.nullcontext():
            reset_bn(model, x, batch_size=16, precision=precision, traced=ResetPass(model) if traced else None)
        stats[name] = torch.cat([m.running_var for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert torch.equal(stats["traced"], stats["own"])
    assert not torch.equal(stats["own"], stats["fp32"])                # bf16 did change the statistics


class _SharedBN(nn.Module):
    """One BatchNorm called after two convolutions: its statistics pool both inputs."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        h = torch.relu(self.bn(self.conv2(h)))
        return self.head(h.mean((2, 3)))


def test_a_batchnorm_called_twice_is_re_estimated_on_both_inputs_even_when_handed_a_traced_pass():
    torch.manual_seed(0)
    own = _SharedBN()
    fast = copy.deepcopy(own)
    x = blobs(30, seed=1).x
    reset_bn(own, x, batch_size=16, precision="fp32")
    with torch.no_grad():
        h1 = own.conv1(x)
    first = h1.double().mean(dim=(0, 2, 3))
    assert not torch.allclose(own.bn.running_mean.double(), first, atol=1e-3)     # the pool of both inputs
    reset_bn(fast, x, batch_size=16, precision="fp32", traced=ResetPass(fast, PatchMoments()))
    for key, value in own.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)


class _Quirky(nn.Module):
    """Every shape a conv -> BN pair may take in a model of one's own: a 5x5 first convolution (padding 2) and
    F.relu; a BN output read twice; BN followed by a method that is not relu, by a module that is not a ReLU;
    a convolution output read twice; reflect padding; a grouped convolution followed by `.relu()`; BatchNorm1d
    before the head."""

    def __init__(self):
        super().__init__()
        c = lambda *a, **k: nn.Conv2d(*a, **k)
        self.conv0, self.bn0 = c(1, 4, 5, padding=2), nn.BatchNorm2d(4)
        self.conv1, self.bn1 = c(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = c(4, 4, 3, padding=1), nn.BatchNorm2d(4, eps=0.5)
        self.conv3, self.bn3, self.act = c(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh()
        self.conv4, self.bn4 = c(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv5, self.bn5 = c(4, 4, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(4)
        self.conv6, self.bn6 = c(4, 4, 3, padding=1, groups=2), nn.BatchNorm2d(4)
        self.bn_head, self.head = nn.BatchNorm1d(4), nn.Linear(4, 3)
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                    m.weight.uniform_(0.5, 1.5, generator=gen)
                    m.bias.uniform_(-0.5, 0.5, generator=gen)

    def forward(self, x):
        h = nn.functional.relu(self.bn0(self.conv0(x)))
        y = self.bn1(self.conv1(h))
        h = y.relu() + 0.5 * y
        h = self.bn2(self.conv2(h)).sigmoid()
        h = self.act(self.bn3(self.conv3(h)))
        c4 = self.conv4(h)
        h = torch.relu(self.bn4(c4) + 0.1 * c4)
        h = torch.relu(self.bn5(self.conv5(h)))
        h = self.bn6(self.conv6(h)).relu()
        return self.head(self.bn_head(h.mean((2, 3))))


def test_folded_bn_and_the_reset_pass_keep_the_function_of_a_model_of_ones_own():
    """FoldedBN computes the eval-mode function and the reset pass `reset_bn`'s statistics, whatever follows a
    BN (a ReLU however written, another method or module, several readers) and whatever the convolution (5x5,
    reflect padding, groups); only plain ReLUs that alone read a folded BN run inside the convolution."""
    from tasks.paths import _ConvReLU
    torch.manual_seed(0)
    x = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    own = _Quirky()
    reset_bn(own, x, batch_size=10, precision="fp32")
    for patches in (None, PatchMoments()):
        fast = _Quirky()
        fast.load_state_dict({k: v.clone() for k, v in own.state_dict().items()})
        for bn in (m for m in fast.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))):
            bn.reset_running_stats()
        traced = ResetPass(fast, patches)
        for _ in range(2):
            reset_bn(fast, x, batch_size=10, precision="fp32", traced=traced)
            for key, value in own.state_dict().items():
                torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=(patches, key))
    folded = FoldedBN(own)
    assert len(folded.pairs) == 6                         # every conv -> BN but conv4 (its output is read twice)
    fused = [m for m in folded.module.modules() if isinstance(m, _ConvReLU)]
    assert [m.groups for m in fused] == [1, 2]            # conv0 (F.relu) and conv6 (.relu())
    probe = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    before = state_of(own)
    with torch.no_grad():
        torch.testing.assert_close(folded.module(probe), own.eval()(probe), rtol=1e-4, atol=1e-5)
    for key, value in state_of(own).items():             # evaluating the view leaves the model's BN alone
        assert torch.equal(value, before[key]), key
    expected = copy.deepcopy(own).eval()(probe).detach()
    view = FoldedBN(own.train())                          # built from a model in train mode: still the eval function
    with torch.no_grad():
        torch.testing.assert_close(view.module(probe), expected, rtol=1e-4, atol=1e-5)
    for key, value in state_of(own).items():
        assert torch.equal(value, before[key]), key


class _FirstBlock(nn.Module):
    """A model whose first BN follows a convolution of some kind (`kind`), then one conv block and a head."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        channels = 2 if kind == "grouped" else 1
        self.pre = nn.Conv2d(1, 3, 3, padding=1)                   # read only by `deep`
        conv = {"grouped": dict(padding=1, groups=2), "reflect": dict(padding=1, padding_mode="reflect"),
                "same": dict(padding="same"), "reused": dict(padding=1), "deep": dict(padding=1),
                "strided": dict(stride=2, padding=0)}[kind]
        self.conv = nn.Conv2d(3 if kind == "deep" else channels, 4, 3, **conv)
        self.bn = nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)
        self.channels = channels

    def forward(self, x):
        c = self.conv(self.pre(x) if self.kind == "deep" else x)
        h = torch.relu(self.bn(c))
        if self.kind == "reused":
            h = h + 0.1 * c
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.head(h.mean((2, 3)))


@pytest.mark.parametrize("kind", ["grouped", "reflect", "same", "reused", "deep", "strided"])
def test_the_reset_pass_gives_reset_bns_statistics_whatever_the_first_convolution(kind):
    """The first BN's statistics come from image patches only where the convolution reads the images
    themselves, alone, with zero padding and no groups; elsewhere (and always in number) they equal
    `reset_bn`'s own; FoldedBN keeps the eval-mode function."""
    torch.manual_seed(0)
    own = _FirstBlock(kind)
    fast = copy.deepcopy(own)
    x = torch.randn(30, own.channels, 8, 8, generator=torch.Generator().manual_seed(1))
    reset_bn(own, x, batch_size=8, precision="fp32")
    traced = ResetPass(fast, PatchMoments())
    assert (traced.input_block is not None) == (kind == "strided")
    for _ in range(2):
        reset_bn(fast, x, batch_size=8, precision="fp32", traced=traced)
        for key, value in own.state_dict().items():
            torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=key)
    probe = x[:5]
    with torch.no_grad():
        torch.testing.assert_close(FoldedBN(own).module(probe), own.eval()(probe), rtol=1e-4, atol=1e-5)


def test_patch_moments_are_kept_per_batch_shape_layout_and_convolution():
    """The cache returns a batch's own patch moments: not those of a longer batch starting at the same address,
    of the same memory read with other strides, or of the same images read by a convolution of another
    geometry."""
    def reference(batch, conv):
        p = nn.functional.unfold(batch.double(), conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                                 stride=conv.stride)
        p = p.transpose(1, 2).reshape(-1, p.shape[1])
        return len(p), p.mean(0), torch.cov(p.T, correction=0)

    images = torch.randn(10, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    conv = nn.Conv2d(1, 2, 3, padding=1)
    others = [nn.Conv2d(1, 2, 3, padding=0), nn.Conv2d(1, 2, 3, padding=1, stride=2),
              nn.Conv2d(1, 2, 3, padding=1, dilation=2)]                  # each differs from `conv` in one way
    cache = PatchMoments()
    for batch, c in [(images[:6], conv), (images[:4], conv), (images[:6].transpose(2, 3), conv)] + [
            (images[:6], other) for other in others]:
        count, mean, cov = cache.of(batch, batch, c)
        n, mu, sigma = reference(batch, c)
        assert count == n
        torch.testing.assert_close(mean, mu)
        torch.testing.assert_close(cov, sigma)
    wide = nn.Conv2d(1, 2, 5, padding=2)
    count, mean, cov = PatchMoments().of(images, images, wide)
    n, mu, sigma = reference(images, wide)
    assert count == n == 10 * 36
    torch.testing.assert_close(mean, mu)
    torch.testing.assert_close(cov, sigma)


def test_bn_data_refuses_endpoint_images_of_another_length():
    """A's and B's training images are the same images with each endpoint's cues: as many of each."""
    a_imgs = torch.zeros(12, 1, 2, 2)
    for b_imgs in (torch.ones(11, 1, 2, 2), torch.ones(13, 1, 2, 2)):
        with pytest.raises(ValueError, match="both endpoints"):
            draw_bn_sample(a_imgs, PathSettings(bn_reset_samples=6, bn_data="endpoints"), seed=0, alpha_index=0,
                           bn_data_b=b_imgs, alpha=0.5)


def test_agreement_is_the_exact_fraction_of_equal_decisions():
    """1 of 3 and 7 of 10 equal decisions: the float64 fractions 1/3 and 7/10 (a float32 mean rounds them)."""
    from tasks.paths import agreement
    assert agreement(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 1])) == 1 / 3
    assert agreement(torch.arange(10), torch.tensor([0, 1, 2, 3, 4, 5, 6, 0, 0, 0])) == 0.7


def test_settings_bounds_and_defaults():
    """BN re-estimation needs two samples and a batch of at least one; the documented defaults (docs/SCIENCE.md:
    fp32, a fixed clean sample; the paper's fresh midpoint, 15 epochs with lr x0.1 at 10); alphas are the
    correctly rounded i / (num_alphas - 1), exactly 0.0 and 1.0 at the ends, for every allowed count."""
    with pytest.raises(ValueError, match="bn_reset_samples"):
        PathSettings(bn_reset_samples=1)
    with pytest.raises(ValueError, match="eval_batch_size"):
        PathSettings(eval_batch_size=0)
    assert PathSettings(bn_reset_samples=2).bn_reset_samples == 2
    default = PathSettings()
    assert (default.precision, default.bn_sample, default.bn_data) == ("fp32", "fixed", "clean")
    mid = MidpointSettings()
    assert (mid.init, mid.epochs, mid.step_epochs, mid.lr, mid.gamma, mid.schedule) == ("fresh", 15, 10, 0.1, 0.1, "step")
    for n in range(2, 1002):
        alphas = PathSettings(num_alphas=n).alphas()
        assert len(alphas) == n and alphas[0] == 0.0 and alphas[-1] == 1.0
        assert all(a == i / (n - 1) for i, a in enumerate(alphas)), n


def test_the_fused_convolution_follows_cpu_autocast_like_any_convolution():
    """Under bf16 autocast (a bf16 path) the conv + ReLU of a folded block runs in bf16 as the model's own
    convolution does, not as the fp32 oneDNN primitive: the evaluation precision is the path's."""
    from tasks.paths import _ConvReLU
    torch.manual_seed(0)
    layer = _ConvReLU(2, 4, 3, padding=1)
    x = torch.randn(3, 2, 6, 6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
        expected = torch.relu(nn.functional.conv2d(x, layer.weight, layer.bias, padding=1))
    assert got.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(got, expected)
    with torch.no_grad():                                  # fp32, no autocast: the fused primitive, same function
        torch.testing.assert_close(layer(x), torch.relu(nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)))


def test_the_scratch_model_ends_holding_the_re_estimated_alpha_1_state():
    """`evaluate_path` leaves `model` with endpoint B's weights and BN statistics re-estimated on the path's
    sample (what alpha = 1 was evaluated with), not B's own stored statistics."""
    train = blobs(40, seed=0)
    a, b = trained_state(0, train, steps=3), trained_state(1, train, steps=3)
    settings = PathSettings(num_alphas=3, bn_reset_samples=24, eval_batch_size=10, precision="fp32")
    scratch = tiny_model(9)
    evaluate_path(scratch, a, b, bn_data=train.x, sets={"nocue": blobs(12, seed=1)}, settings=settings, device="cpu")
    reference = tiny_model(9)
    reference.load_state_dict(b)
    reset_bn(reference, train.x[:24], batch_size=10, precision="fp32")
    stored = b["blocks.0.bn.running_mean"]
    assert not torch.allclose(reference.blocks[0].bn.running_mean, stored, atol=1e-3)     # the test can fail
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(scratch.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=key)


# --------------------------------------------------------------------------- edge cases (hunt 6)

def test_reset_bn_leaves_a_model_without_batchnorm_in_eval_mode_with_either_pass():
    """"Afterwards the model is in eval mode" (`reset_bn`; `ResetPass.run`: "the model left in eval mode"): a model
    without BatchNorm has no statistics to re-estimate (its state is untouched) but ends in eval mode all the same,
    a dropout inside it included, whichever pass runs."""
    x = blobs(6, seed=1).x
    for traced in (False, True):
        plain = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 3)).train()
        before = state_of(plain)
        reset_bn(plain, x, batch_size=4, precision="fp32", traced=ResetPass(plain) if traced else None)
        assert not plain.training and not plain[1].training, traced
        for key, value in plain.state_dict().items():
            assert torch.equal(value, before[key]), (traced, key)


class _Dilated(nn.Module):
    """Dilated convolutions in every role: the first (its BN's statistics from the image patches), one whose BN
    and ReLU fold and fuse into it, one whose BN folds but is followed by no ReLU."""

    def __init__(self):
        super().__init__()
        self.conv0, self.bn0 = nn.Conv2d(1, 4, 3, padding=2, dilation=2), nn.BatchNorm2d(4)
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=3, dilation=3), nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.bn0(self.conv0(x)))
        h = torch.relu(self.bn1(self.conv1(h)))
        h = torch.tanh(self.bn2(self.conv2(h)))
        return self.head(h.mean((2, 3)))


def test_dilated_convolutions_keep_their_dilation_when_folded_fused_or_read_as_image_patches():
    """A dilated convolution reads pixels `dilation` apart: the reset pass (patch moments of the first convolution,
    its folded and fused copy) gives the BN statistics of the plain train-mode pass, and `FoldedBN` (fused or not)
    computes the model's eval-mode function; a copy that forgot the dilation would read adjacent pixels."""
    from tasks.paths import _ConvReLU
    torch.manual_seed(0)
    own = _Dilated()
    fast = copy.deepcopy(own)
    x = torch.randn(20, 1, 9, 9, generator=torch.Generator().manual_seed(1))
    reset_bn(own, x, batch_size=8, precision="fp32")
    traced = ResetPass(fast, PatchMoments())
    assert traced.input_block is not None                    # the first BN's statistics from the image patches
    for _ in range(2):
        reset_bn(fast, x, batch_size=8, precision="fp32", traced=traced)
        for key, value in own.state_dict().items():
            torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=key)
    folded = FoldedBN(own)
    assert len(folded.pairs) == 3 and len([m for m in folded.module.modules() if isinstance(m, _ConvReLU)]) == 2
    probe = x[:5]
    with torch.no_grad():
        torch.testing.assert_close(folded.module(probe), own.eval()(probe), rtol=1e-4, atol=1e-5)
    layer = _ConvReLU(1, 4, 3, padding=2, dilation=2)
    with torch.no_grad():                                     # fp32 on the CPU, no gradients: the fused primitive
        torch.testing.assert_close(layer(probe), torch.relu(nn.functional.conv2d(probe, layer.weight, layer.bias,
                                                                                 padding=2, dilation=2)))


def test_the_reset_pass_skips_batchnorms_that_track_no_statistics_like_reset_bn():
    """A BN without running statistics has nothing to re-estimate and always normalises with its batch: the traced
    pass leaves it as it is and sets the other BNs' statistics as `reset_bn`'s own pass does."""
    torch.manual_seed(0)
    own = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    fast = copy.deepcopy(own)
    x = blobs(20, seed=1).x
    reset_bn(own, x, batch_size=8, precision="fp32")
    traced = ResetPass(fast, PatchMoments())
    assert traced.layers == [fast[1], fast[7]]
    reset_bn(fast, x, batch_size=8, precision="fp32", traced=traced)
    assert fast[4].running_mean is None and not fast.training
    for key, value in own.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=key)


def test_the_reset_pass_runs_in_train_mode_like_reset_bn_so_a_dropout_before_a_batchnorm_drops():
    """`reset_bn` is "one forward pass in train mode", so a dropout before a BN is active while its statistics are
    pooled, and the traced pass gives "the same statistics". A dropout with p = 1 drops everything in train mode
    (deterministically): the next convolution then outputs its bias alone, so its BN sees mean = bias and variance 0;
    in eval mode the dropout would pass the activations on and the variance would be far from 0."""
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(1.0),
                             nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = blobs(20, seed=1).x
    for traced in (False, True):
        model = make()
        reset_bn(model, x, batch_size=8, precision="fp32", traced=ResetPass(model, PatchMoments()) if traced else None)
        torch.testing.assert_close(model[5].running_mean, model[4].bias.detach(), msg=traced)
        torch.testing.assert_close(model[5].running_var, torch.zeros(4), msg=traced)
        assert not model.training and float(model[1].running_var.min()) > 0.01, traced


def test_a_path_has_at_most_1001_alphas_so_each_gets_its_own_mlflow_step():
    """Path curves are logged at MLflow step round(1000·alpha) (README): 1001 evenly spaced alphas take every step
    0..1000 once; 1002 would put two alphas on one step, so `num_alphas` stops at 1001 (the spec's error: "must be
    >= 2 and <= 1001")."""
    steps = [round(1000 * a) for a in PathSettings(num_alphas=1001).alphas()]
    assert steps == list(range(1001))
    assert len({round(1000 * i / 1001) for i in range(1002)}) < 1002
    with pytest.raises(ValueError, match="num_alphas.*<= 1001"):
        PathSettings(num_alphas=1002)
    with pytest.raises(ValueError, match="eval_batch_size.*<= 1000000"):
        PathSettings(eval_batch_size=1_000_001)
    assert PathSettings(eval_batch_size=1_000_000).eval_batch_size == 1_000_000


class _NoAffine(nn.Module):
    """A first BN without affine parameters followed by tanh (no ReLU to fuse), then a BN without affine parameters
    whose ReLU fuses into its convolution, then an ordinary block."""

    def __init__(self):
        super().__init__()
        self.conv0, self.bn0 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False)
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.tanh(self.bn0(self.conv0(x)))
        h = torch.relu(self.bn1(self.conv1(h)))
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.head(h.mean((2, 3)))


def test_batchnorms_without_affine_parameters_or_a_following_relu_keep_their_function():
    """A BN with `affine=False` has no gamma or beta (W' = W / sqrt(var + eps), b' = (b - mean) / sqrt(var + eps)),
    and a first BN followed by tanh has no ReLU to run inside its convolution (tanh(x) and tanh(relu(x)) differ): the
    reset pass, with and without image patches, gives `reset_bn`'s statistics and `FoldedBN` the eval-mode function."""
    torch.manual_seed(0)
    own = _NoAffine()
    template = copy.deepcopy(own)
    x = blobs(24, seed=1).x
    reset_bn(own, x, batch_size=10, precision="fp32")
    for patches in (None, PatchMoments()):
        fast = copy.deepcopy(template)
        traced = ResetPass(fast, patches)
        assert traced.input_block is not None
        reset_bn(fast, x, batch_size=10, precision="fp32", traced=traced)
        for key, value in own.state_dict().items():
            torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-5, msg=(patches, key))
    folded = FoldedBN(own)
    assert len(folded.pairs) == 3
    with torch.no_grad():
        torch.testing.assert_close(folded.module(x[:6]), own.eval()(x[:6]), rtol=1e-4, atol=1e-5)


def test_the_fused_convolution_keeps_its_gradient_where_gradients_are_on():
    """`_ConvReLU` runs the fused oneDNN primitive only "without gradients"; with gradients on it is the two ops,
    so its output carries autograd and the weight's gradient is that of relu(conv(x))."""
    from tasks.paths import _ConvReLU
    torch.manual_seed(0)
    layer = _ConvReLU(2, 4, 3, padding=1)
    x = torch.randn(3, 2, 6, 6)
    out = layer(x)
    assert out.grad_fn is not None
    out.square().sum().backward()
    weight = layer.weight.detach().clone().requires_grad_(True)
    torch.relu(nn.functional.conv2d(x, weight, layer.bias.detach(), padding=1)).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, weight.grad)


def test_the_control_point_is_trained_under_its_own_seed(monkeypatch):
    """`fit(..., seed=)` seeds the global RNG of every epoch (a dropout in a model of one's own) and the objective's
    seed draws the batches and the curve points: both are the midpoint task's `seed`, so two midpoint seeds are two
    independent trainings (not one shared stream for the global RNG)."""
    import tasks.paths as paths_module
    seen = []

    def recording_fit(model, objective, params, settings, *, seed, device, on_epoch=None, resume=None):
        seen.append((seed, objective.seed, str(device)))
        return []

    monkeypatch.setattr(paths_module, "fit", recording_fit)
    train = blobs(12, seed=0)
    a, b = state_of(tiny_model(0)), state_of(tiny_model(1))
    for seed in (3, 8):
        train_midpoint(tiny_model(2), a, b, train, MidpointSettings(epochs=1, batch_size=6), seed=seed, device="cpu")
    assert seen == [(3, 3, "cpu"), (8, 8, "cpu")]


def test_a_bare_reset_bn_re_estimates_in_the_precision_a_bare_evaluate_runs_in():
    """`reset_bn` is to run in the precision the model is evaluated in, so the statistics match the
    activations seen there: called without one, both take the same default (fp32; `auto` would be bf16
    on a CPU with native bf16 while `evaluate` stays in fp32)."""
    import inspect

    default = inspect.signature(reset_bn).parameters["precision"].default
    assert default == inspect.signature(evaluate).parameters["precision"].default == "fp32"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    x = torch.randn(40, 1, 6, 6)
    bare, fp32 = copy.deepcopy(model), copy.deepcopy(model)
    reset_bn(bare, x, batch_size=8)
    reset_bn(fp32, x, batch_size=8, precision="fp32")
    for a, b in zip(bare[1].state_dict().values(), fp32[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_barriers_are_the_same_whichever_endpoint_is_a():
    """Every barrier definition is symmetric in the two endpoints: the path B -> A (alphas mirrored) gives the
    barriers of A -> B. Here A is the worse endpoint in loss and the better in accuracy, so a definition that
    reads one end twice (`max(L(1), L(1))` for the worse endpoint) shows."""
    from tasks.paths import barriers

    rows = [{"alpha": a, "eval_set": "nocue", "loss": loss, "acc": acc}
            for a, loss, acc in [(0.0, 1.0, 0.9), (0.5, 1.2, 0.5), (1.0, 0.4, 0.6)]]
    got = {(r["metric"], r["definition"]): r["value"] for r in barriers(rows)}
    assert got[("loss", "worse_endpoint")] == pytest.approx(1.2 - 1.0)
    assert got[("acc", "worse_endpoint")] == pytest.approx(0.6 - 0.5)
    assert got[("loss", "mean_endpoints")] == pytest.approx(1.2 - 0.7)
    assert got[("acc", "mean_endpoints")] == pytest.approx(0.75 - 0.5)
    assert got[("loss", "chord")] == pytest.approx(1.2 - 0.7) and got[("acc", "chord")] == pytest.approx(0.75 - 0.5)
    mirrored = {(r["metric"], r["definition"]): r["value"]
                for r in barriers([dict(r, alpha=1.0 - r["alpha"]) for r in rows])}
    assert mirrored == pytest.approx(got)


def test_reset_bn_leaves_no_hook_behind_however_often_it_runs():
    """The forward hooks that pool each BatchNorm's moments are removed when `reset_bn` returns: the model's
    later forwards do no hidden work, and re-estimating once per alpha does not pile hooks up."""
    model = tiny_model(0)
    x = blobs(20, seed=1).x
    hooks_before = {name: len(m._forward_hooks) for name, m in model.named_modules()}
    for _ in range(3):
        reset_bn(model, x, batch_size=8)
    assert {name: len(m._forward_hooks) for name, m in model.named_modules()} == hooks_before
