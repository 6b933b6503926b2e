import copy

import numpy as np
import pytest
import torch

import tasks.align as align_module
from tasks.align import (ALIGNMENTS, _capture, _CorrelationStats, align, align_by_activations, align_by_weights,
                         permutation_spec, permute_state)
from tasks.models import build_model

# small widths keep these fast; vgg13 on 16x16 ends at 1x1, which is fine. The last is a model of your
# own (examples/custom_model.py): its spec is traced like the built-ins' (tests/tasks/test_permutation_trace.py)
MODELS = [("small_cnn", None, (1, 16, 16)), ("vgg13", 8, (3, 16, 16)), ("resnet18", 8, (3, 16, 16)),
          ("examples.custom_model:build", 8, (1, 12, 12))]


def _data(shape, n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen)


def _model(name, width, shape, seed):
    """A model whose BN affine parameters and running statistics are far from their defaults."""
    model = build_model(name, 10, in_channels=shape[0], width=width, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.normal_(0.0, 0.3, generator=gen)
            bn.momentum = None  # exact running statistics: channels dead on the data would tie
            bn.reset_running_stats()
        model.train()
        for i in range(3):
            model(_data(shape, n=64, seed=seed + i))
    return model.eval()


def _randomly_permuted(model, seed):
    spec = permutation_spec(model)
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    perms = {g: torch.randperm(state[n].shape[ax], generator=gen) for g, ((n, ax), *_) in spec.groups.items()}
    return permute_state(state, spec, perms), perms


def _with_state(model, state):
    other = copy.deepcopy(model)
    other.load_state_dict(state)
    return other.eval()


def _distance(state_a, state_b, spec):
    """L2 distance over the permutable weights and BN affine parameters."""
    names = [n for n in spec.axes if not n.endswith(("running_mean", "running_var"))]
    return sum(((state_a[n] - state_b[n]) ** 2).sum() for n in names).sqrt().item()


def _logits(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name,width,shape", MODELS)
def test_spec_covers_every_state_entry_with_matching_sizes(name, width, shape):
    model = build_model(name, 10, in_channels=shape[0], width=width)
    spec, state = permutation_spec(model), model.state_dict()
    assert set(spec.axes) == {k for k in state if not k.endswith("num_batches_tracked")}
    for group, entries in spec.groups.items():
        sizes = {state[n].shape[ax] for n, ax in entries}
        assert len(sizes) == 1, (group, sizes)
        modules = dict(model.named_modules())
        assert all(m in modules for m in spec.points[group])
    assert set(spec.points) == set(spec.groups)


@pytest.mark.parametrize("name,width,shape", MODELS)
def test_permute_state_keeps_the_function(name, width, shape):
    model, x = _model(name, width, shape, seed=0), _data(shape)
    state, perms = _randomly_permuted(model, seed=1)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms.values())
    assert any(not torch.equal(state[k], v) for k, v in model.state_dict().items())
    torch.testing.assert_close(_logits(_with_state(model, state), x), _logits(model, x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", sorted(ALIGNMENTS))
@pytest.mark.parametrize("name,width,shape", MODELS)
def test_alignment_undoes_a_random_permutation(name, width, shape, method):
    model_a, x = _model(name, width, shape, seed=0), _data(shape)
    state_b, _ = _randomly_permuted(model_a, seed=2)
    aligned = align(model_a, _with_state(model_a, state_b), method, x, seed=0)
    spec = permutation_spec(model_a)
    assert _distance(state_b, model_a.state_dict(), spec) > 1.0
    for key, value in model_a.state_dict().items():
        torch.testing.assert_close(aligned[key], value, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("method", sorted(ALIGNMENTS))
@pytest.mark.parametrize("name,width,shape", MODELS)
def test_alignment_brings_independent_models_closer_without_changing_b(name, width, shape, method):
    model_a, model_b, x = _model(name, width, shape, seed=0), _model(name, width, shape, seed=7), _data(shape)
    spec = permutation_spec(model_a)
    aligned = align(model_a, model_b, method, x, seed=0)
    before = _distance(model_a.state_dict(), model_b.state_dict(), spec)
    after = _distance(model_a.state_dict(), aligned, spec)
    # random-init features correlate weakly past the first layers, so the decrease can be small
    assert after < before, (before, after)
    aligned_b = _with_state(model_b, aligned)
    torch.testing.assert_close(_logits(aligned_b, x), _logits(model_b, x), atol=1e-4, rtol=0)
    if method == "activation":  # matched channels correlate at least as well as before, group by group
        before_corr, after_corr = _matched_correlation(model_a, model_b, x), _matched_correlation(model_a, aligned_b, x)
        assert all(after_corr[g] >= before_corr[g] - 1e-9 for g in before_corr), (before_corr, after_corr)
        assert sum(after_corr.values()) > sum(before_corr.values()) + 0.1


def _matched_correlation(model_a, model_b, x):
    """Per group: the summed correlation of channel i of A with channel i of B (over its points)."""
    spec = permutation_spec(model_a)
    names = sorted({m for mods in spec.points.values() for m in mods})
    out_a, out_b = _capture(model_a, names, x), _capture(model_b, names, x)
    result = {}
    for group, mods in spec.points.items():
        total = 0.0
        for m in mods:
            stats = _CorrelationStats()
            stats.update(out_a[m].movedim(1, -1).flatten(0, -2), out_b[m].movedim(1, -1).flatten(0, -2))
            total += stats.correlation().diagonal().sum().item()
        result[group] = total
    return result


def test_weight_matching_is_seeded_and_reaches_a_fixed_point():
    model_a, model_b = _model("small_cnn", 8, (1, 16, 16), 0), _model("small_cnn", 8, (1, 16, 16), 5)
    spec = permutation_spec(model_a)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    perms = align_by_weights(sa, sb, spec, seed=3)
    again = align_by_weights(sa, sb, spec, seed=3)
    assert all(torch.equal(perms[g], again[g]) for g in perms)
    # aligning the aligned model again finds nothing better than the identity
    refined = align_by_weights(sa, permute_state(sb, spec, perms), spec, seed=4)
    assert all(torch.equal(p, torch.arange(len(p))) for p in refined.values())


def test_weight_matching_follows_the_seed_given_to_align():
    """The seed orders the groups of each sweep; on these two ResNets two seeds reach different local optima, and
    `align` returns B permuted by the very permutations `align_by_weights` finds for its seed."""
    shape = (3, 16, 16)
    model_a, model_b = _model("resnet18", 4, shape, 0), _model("resnet18", 4, shape, 5)
    spec = permutation_spec(model_a)
    direct = {s: align_by_weights(model_a.state_dict(), model_b.state_dict(), spec, seed=s) for s in (0, 1)}
    assert any(not torch.equal(direct[0][g], direct[1][g]) for g in direct[0])
    for s in (0, 1):
        aligned = align(model_a, model_b, "weight", None, seed=s)
        expected = permute_state(model_b.state_dict(), spec, direct[s])
        for key, value in expected.items():
            assert torch.equal(aligned[key], value), (s, key)


def test_activation_matching_restores_training_mode_and_returns_permutations():
    model_a, model_b = _model("small_cnn", 8, (1, 16, 16), 0), _model("small_cnn", 8, (1, 16, 16), 5)
    model_a.train()
    perms = align_by_activations(model_a, model_b, _data((1, 16, 16), n=100), batch_size=32)
    assert model_a.training and not model_b.training
    for group, perm in perms.items():
        assert torch.equal(perm.sort().values, torch.arange(len(perm))), group


@pytest.mark.parametrize("name, width, shape", MODELS)
def test_align_of_models_in_train_mode_matches_eval_mode_and_keeps_their_bn_statistics(name, width, shape):
    x = _data(shape, n=64, seed=3)
    model_a, model_b = _model(name, width, shape, 0), _model(name, width, shape, 5)
    for bn in (m for model in (model_a, model_b) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = 0.1          # so a forward pass in train mode would move the running statistics
    in_eval = align(model_a, model_b, "activation", x)
    before = [copy.deepcopy(model.state_dict()) for model in (model_a, model_b)]
    model_a.train(), model_b.train()
    in_train = align(model_a, model_b, "activation", x)
    assert model_a.training and model_b.training
    for model, state in zip((model_a, model_b), before):
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key
    for key, value in in_eval.items():
        assert torch.equal(in_train[key], value), key


def test_correlation_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 4, generator=gen), torch.randn(500, 3, generator=gen)
    b[:, 0] += 2 * a[:, 1]
    stats = _CorrelationStats()
    for i in range(0, 500, 128):
        stats.update(a[i:i + 128], b[i:i + 128])
    expected = np.corrcoef(a.numpy().T, b.numpy().T)[:4, 4:]
    np.testing.assert_allclose(stats.correlation().numpy(), expected, atol=1e-6)


def test_permute_state_leaves_unlisted_groups_alone():
    model = build_model("small_cnn", 10, in_channels=1, width=4, seed=0)
    spec, state = permutation_spec(model), model.state_dict()
    perm = torch.tensor([3, 2, 1, 0])
    out = permute_state(state, spec, {"blocks.0": perm})
    assert torch.equal(out["blocks.0.conv.weight"], state["blocks.0.conv.weight"][perm])
    assert torch.equal(out["blocks.0.bn.running_var"], state["blocks.0.bn.running_var"][perm])
    assert torch.equal(out["blocks.1.conv.weight"], state["blocks.1.conv.weight"][:, perm])
    assert torch.equal(out["blocks.2.conv.weight"], state["blocks.2.conv.weight"])


def test_unknown_method_lists_the_allowed_ones():
    model = build_model("small_cnn", 10, in_channels=1, width=4)
    with pytest.raises(ValueError, match="'hungarian'.*activation, weight"):
        align(model, model, "hungarian", None)
    with pytest.raises(ValueError, match="needs data"):
        align(model, model, "activation", None)


def test_weight_matching_takes_a_small_improvement_not_only_large_ones():
    """Two channels of one group nearly equal (everything they touch ε apart) and swapped in B: the swap
    improves the matching by only ~ε² of the largest score, and weight matching still finds it."""
    model = _model("small_cnn", 8, (1, 16, 16), 0)
    spec = permutation_spec(model)
    group = next(iter(spec.groups))
    gen = torch.Generator().manual_seed(3)
    state_a = {k: v.clone() for k, v in model.state_dict().items()}
    for name, axis in spec.groups[group]:
        t = state_a[name].movedim(axis, 0)
        t[1] = t[0] + 1e-3 * torch.randn(t[0].shape, generator=gen)   # a view: writes into state_a[name]
    swap = {g: torch.arange(len(p)) for g, p in align_by_weights(state_a, state_a, spec).items()}
    swap[group] = swap[group].clone()
    swap[group][:2] = torch.tensor([1, 0])
    state_b = permute_state(state_a, spec, swap)
    found = align_by_weights(state_a, state_b, spec)
    assert all(torch.equal(found[g], swap[g]) for g in spec.groups), {g: found[g][:4] for g in found}


def test_weight_matching_stops_after_the_first_sweep_that_improves_nothing(monkeypatch):
    """Coordinate descent runs until a sweep brings no improvement. Matching a model with itself, the identity is
    already optimal, so the very first sweep improves nothing: one assignment per group, the identity returned. With
    a planted permutation the descent needs at least one improving sweep and then one that changes nothing."""
    solved = []
    solve = align_module._solve
    monkeypatch.setattr(align_module, "_solve", lambda score: solved.append(1) or solve(score))
    model = _model("small_cnn", 8, (1, 16, 16), 0)
    spec, state = permutation_spec(model), model.state_dict()
    perms = align_by_weights(state, state, spec, seed=0)
    assert all(torch.equal(p, torch.arange(len(p))) for p in perms.values())
    assert len(solved) == len(spec.groups)
    solved.clear()
    state_b, planted = _randomly_permuted(model, seed=2)
    found = align_by_weights(state, state_b, spec, seed=0)
    assert all(torch.equal(found[g], torch.argsort(planted[g])) for g in planted)
    assert len(solved) % len(spec.groups) == 0 and 2 <= len(solved) // len(spec.groups) <= 5, len(solved)


def test_a_constant_channel_correlates_zero_with_every_channel_not_nan():
    """A channel with one value at every position (a unit whose bias alone survives the ReLU) has no variance,
    so no correlation: 0 (as in the reference of test_science_align.py), never NaN, which would leave the
    assignment undefined. Its variance, E[a^2] - E[a]^2 over 500 positions, rounds a little below 0 for these
    values; the other channels still match numpy."""
    gen = torch.Generator().manual_seed(0)
    values = torch.tensor([0.6340786814689636, 0.6323062777519226, 0.5529070496559143, 0.6984410881996155])
    a = torch.cat([values.expand(500, 4), torch.randn(500, 2, generator=gen)], dim=1)
    b = torch.randn(500, 3, generator=gen)
    stats = _CorrelationStats()
    for i in range(0, 500, 128):
        stats.update(a[i:i + 128], b[i:i + 128])
    corr = stats.correlation()
    assert torch.isfinite(corr).all(), corr
    np.testing.assert_allclose(corr[:4].numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(corr[4:].numpy(), np.corrcoef(a[:, 4:].numpy().T, b.numpy().T)[:2, 2:], atol=1e-6)


def test_a_constant_channel_of_model_b_correlates_zero_with_every_channel_not_nan():
    """The same as for A, on B's side: a B channel with one value everywhere has no variance, so no correlation
    (0, never NaN); E[b^2] - E[b]^2 rounds a little below 0 for these values. The other channels match numpy."""
    gen = torch.Generator().manual_seed(0)
    values = torch.tensor([0.6340786814689636, 0.6323062777519226, 0.5529070496559143, 0.6984410881996155])
    a = torch.randn(500, 3, generator=gen)
    b = torch.cat([values.expand(500, 4), torch.randn(500, 2, generator=gen)], dim=1)
    stats = _CorrelationStats()
    for i in range(0, 500, 128):
        stats.update(a[i:i + 128], b[i:i + 128])
    corr = stats.correlation()
    assert torch.isfinite(corr).all(), corr
    np.testing.assert_allclose(corr[:, :4].numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(corr[:, 4:].numpy(), np.corrcoef(a.numpy().T, b[:, 4:].numpy().T)[:3, 3:], atol=1e-6)


def test_activation_matching_leaves_no_hook_on_either_model():
    """The activations are captured by forward hooks for the matching only: afterwards no module of either model
    carries one (a hook left behind would apply a ReLU and keep every later batch's outputs in memory)."""
    model_a, model_b = _model("small_cnn", 4, (1, 8, 8), 0), _model("small_cnn", 4, (1, 8, 8), 5)
    align_by_activations(model_a, model_b, _data((1, 8, 8), n=20), batch_size=8)
    align(model_a, model_b, "activation", _data((1, 8, 8), n=20))
    for model in (model_a, model_b):
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_activation_matching_reads_half_precision_images_as_float32():
    """Training images may be stored in half precision (tasks/data.py normalises into any dtype) while the models
    compute in float32: matching on the half images equals matching on the same values as float32."""
    model_a, model_b = _model("small_cnn", 4, (1, 8, 8), 0), _model("small_cnn", 4, (1, 8, 8), 5)
    x = _data((1, 8, 8), n=40).half()
    got = align_by_activations(model_a, model_b, x, batch_size=16)
    expected = align_by_activations(model_a, model_b, x.float(), batch_size=16)
    assert all(torch.equal(got[g], expected[g]) for g in expected)


@pytest.mark.parametrize("method", sorted(ALIGNMENTS))
def test_alignments_return_int64_permutations_of_every_group(method):
    """One permutation per group of the spec, each a permutation of its channels as torch's index dtype (int64,
    what `torch.argsort` and `torch.randperm` give), so it can be composed and compared with other index tensors."""
    model_a, model_b = _model("small_cnn", 4, (1, 8, 8), 0), _model("small_cnn", 4, (1, 8, 8), 5)
    spec = permutation_spec(model_a)
    if method == "activation":
        perms = align_by_activations(model_a, model_b, _data((1, 8, 8), n=20))
    else:
        perms = align_by_weights(model_a.state_dict(), model_b.state_dict(), spec)
    assert set(perms) == set(spec.groups)
    for group, perm in perms.items():
        assert perm.dtype == torch.int64, (group, perm.dtype)
        assert torch.equal(perm.sort().values, torch.arange(model_a.state_dict()[spec.groups[group][0][0]].shape[0]))


def test_weight_matching_without_a_seed_uses_seed_0():
    """`seed=0` is the default of both `align_by_weights` and `align` (the signatures); on these two ResNets seeds 0
    and 1 reach different local optima (test_weight_matching_follows_the_seed_given_to_align), so the default
    is told from seed 1."""
    shape = (3, 16, 16)
    model_a, model_b = _model("resnet18", 4, shape, 0), _model("resnet18", 4, shape, 5)
    spec = permutation_spec(model_a)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    seeded = {s: align_by_weights(sa, sb, spec, seed=s) for s in (0, 1)}
    assert any(not torch.equal(seeded[0][g], seeded[1][g]) for g in spec.groups)
    default = align_by_weights(sa, sb, spec)
    assert all(torch.equal(default[g], seeded[0][g]) for g in spec.groups)
    aligned = align(model_a, model_b, "weight", None)
    for key, value in permute_state(sb, spec, seeded[0]).items():
        assert torch.equal(aligned[key], value), key


def test_activation_matching_scores_every_image_even_a_last_batch_of_one(monkeypatch):
    """The correlations are sums over all images of `x` ("over all samples and positions"): splitting 9 images into
    batches of 4 (the last batch a single image) hands the assignment the same score matrices as one batch of 9
    (up to float32 rounding of the forward passes), and leaving out that one image would move them by far more."""
    scores = []
    solve = align_module._solve
    monkeypatch.setattr(align_module, "_solve", lambda score: scores.append(score.copy()) or solve(score))
    model_a, model_b = _model("small_cnn", 4, (1, 8, 8), 0), _model("small_cnn", 4, (1, 8, 8), 5)
    x = _data((1, 8, 8), n=9)
    align_by_activations(model_a, model_b, x, batch_size=9)
    whole, scores[:] = list(scores), []
    align_by_activations(model_a, model_b, x, batch_size=4)
    assert len(scores) == len(whole) == len(permutation_spec(model_a).groups)
    for got, expected in zip(scores, whole, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)   # float32 forwards of other batch sizes
    align_by_activations(model_a, model_b, x[:8], batch_size=8)     # the last image alone moves the scores
    assert any(np.abs(s - w).max() > 1e-3 for s, w in zip(scores[len(whole):], whole, strict=True))


def test_weight_matching_resolves_a_gain_below_float32_precision():
    """`align_by_weights` computes in float64: two channels of one group 1e-5 apart in everything they touch,
    swapped in B, improve the matching by ~1e-10 of the scores, far above the 1e-12 relative threshold but below
    float32's resolution (~6e-8); the exact arithmetic finds the swap, float32 scores could not tell it."""
    model = _model("small_cnn", 8, (1, 16, 16), 0)
    spec = permutation_spec(model)
    gen = torch.Generator().manual_seed(3)
    for group in list(spec.groups)[:2]:
        state_a = {k: v.clone() for k, v in model.state_dict().items()}
        for name, axis in spec.groups[group]:
            t = state_a[name].movedim(axis, 0)
            t[1] = t[0] + 1e-5 * torch.randn(t[0].shape, generator=gen)   # a view: writes into state_a[name]
        swap = {g: torch.arange(state_a[entries[0][0]].shape[entries[0][1]]) for g, entries in spec.groups.items()}
        swap[group][:2] = torch.tensor([1, 0])
        found = align_by_weights(state_a, permute_state(state_a, spec, swap), spec)
        assert all(torch.equal(found[g], swap[g]) for g in spec.groups), (group, {g: found[g][:4] for g in found})
