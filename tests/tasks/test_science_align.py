"""Activation matching against a reference written here: for every group of every built-in
architecture, the correlation of the two models' post-ReLU channels (cosine of centred activations
over all images and positions), summed over every point that shows the group's channels (every point
of a ResNet stage's residual stream), solved with a linear assignment. The points are listed here by
hand from the architectures, not read from `permutation_spec`. Planted permutations are undone by both
methods, also under noise (tasks/align.py)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from tasks.align import align, align_by_activations, align_by_weights, permutation_spec, permute_state
from tasks.models import build_model

ARCHS = [("small_cnn", 4, (1, 8, 8)), ("vgg13", 4, (3, 16, 16)), ("resnet18", 8, (3, 8, 8))]


def hand_points(name: str) -> dict[str, list[tuple[str, str]]]:
    """group -> [(module, "out" | "in")]: the post-ReLU output of a module, or the input of one
    (a BasicBlock's conv2 reads its block's ReLU'd inner channels)."""
    if name == "small_cnn":
        return {f"blocks.{i}": [(f"blocks.{i}", "out")] for i in range(4)}
    if name == "vgg13":
        return {f"blocks.{i}": [(f"blocks.{i}", "out")] for i in range(10)}
    assert name == "resnet18"                      # stages of 2 blocks; a projection opens stages 1-3
    # group names as the permutation tracer gives them (after a group's first point): the stem's stage
    # is "stem", stage k's residual stream "blocks.2k", block k's inner channels "blocks.k.bn1"
    points = {"stem": [("stem", "out"), ("blocks.0", "out"), ("blocks.1", "out")]}
    for stage in (1, 2, 3):
        points[f"blocks.{2 * stage}"] = [(f"blocks.{2 * stage}", "out"), (f"blocks.{2 * stage + 1}", "out")]
    points.update({f"blocks.{k}.bn1": [(f"blocks.{k}.conv2", "in")] for k in range(8)})
    return points


def model(name: str, width: int, shape, seed: int) -> nn.Module:
    """Random BN affine parameters, and running statistics of the data's distribution: every channel is
    active on part of the data (no dead channels, whose correlations would tie)."""
    m = build_model(name, 10, in_channels=shape[0], width=width, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.normal_(0.0, 0.3, generator=gen)
            bn.momentum = None
            bn.reset_running_stats()
        m.train()(data(shape, 256, seed=seed + 10))
    return m.eval()


def data(shape, n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def activations(m: nn.Module, points: dict, x: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
    """Each point's ReLU'd channels over all images and positions: [elements, C] in float64."""
    modules = dict(m.named_modules())
    seen = {}

    def keep(key, t):
        seen[key] = torch.relu(t.detach()).double().transpose(0, 1).reshape(t.shape[1], -1).T

    hooks = []
    for module, where in {p for group in points.values() for p in group}:
        if where == "out":
            hooks.append(modules[module].register_forward_hook(lambda _m, _i, out, k=(module, where): keep(k, out)))
        else:
            hooks.append(modules[module].register_forward_pre_hook(lambda _m, inp, k=(module, where): keep(k, inp[0])))
    with torch.no_grad():
        m.eval()(x)
    for hook in hooks:
        hook.remove()
    return seen


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[C_a, C_b] cosine of the centred columns (0 where a channel is constant)."""
    a, b = a - a.mean(0), b - b.mean(0)
    cos = (a.T @ b) / (a.norm(dim=0)[:, None] * b.norm(dim=0)[None, :])
    return torch.nan_to_num(cos, nan=0.0)


def hand_scores(name, model_a, model_b, x) -> dict[str, torch.Tensor]:
    points = hand_points(name)
    act_a, act_b = activations(model_a, points, x), activations(model_b, points, x)
    return {g: sum(correlation(act_a[p], act_b[p]) for p in ps) for g, ps in points.items()}


@pytest.mark.parametrize("name,width,shape", ARCHS)
def test_activation_matching_solves_the_assignment_of_the_summed_correlations_of_every_point(name, width, shape):
    model_a, model_b = model(name, width, shape, 0), model(name, width, shape, 1)
    x = data(shape, 45, seed=2)
    scores = hand_scores(name, model_a, model_b, x)
    perms = align_by_activations(model_a, model_b, x, batch_size=8)     # 6 batches, the last smaller
    assert set(perms) == set(scores) == set(permutation_spec(model_a).groups)
    for group, score in scores.items():
        s = score.numpy()
        rows, best = linear_sum_assignment(s, maximize=True)
        perm = perms[group].numpy()
        assert s[rows, perm].sum() == pytest.approx(s[rows, best].sum(), abs=1e-9), group
        assert np.array_equal(perm, best), group


def test_each_point_of_a_resnet_stage_alone_gives_another_matching():
    """The test above tells a stage matched on all its points from one matched on any single point."""
    name, width, shape = ARCHS[2]
    model_a, model_b = model(name, width, shape, 0), model(name, width, shape, 1)
    x = data(shape, 45, seed=2)
    points = hand_points(name)
    act_a, act_b = activations(model_a, points, x), activations(model_b, points, x)
    for stage in ("stem", "blocks.2", "blocks.4", "blocks.6"):
        full = linear_sum_assignment(sum(correlation(act_a[p], act_b[p]) for p in points[stage]).numpy(), maximize=True)[1]
        for p in points[stage]:
            alone = linear_sum_assignment(correlation(act_a[p], act_b[p]).numpy(), maximize=True)[1]
            assert not np.array_equal(full, alone), (stage, p)


def test_activation_statistics_cover_every_image_given():
    """Matching on x equals matching on x in any batching, and differs from matching on part of x."""
    name, width, shape = ARCHS[0]
    model_a, model_b = model(name, width, shape, 0), model(name, width, shape, 1)
    x = data(shape, 520, seed=3)
    whole = align_by_activations(model_a, model_b, x, batch_size=520)
    for batch_size in (7, 512):
        again = align_by_activations(model_a, model_b, x, batch_size=batch_size)
        assert all(torch.equal(again[g], whole[g]) for g in whole), batch_size
    part = align_by_activations(model_a, model_b, x[:7], batch_size=7)
    assert any(not torch.equal(part[g], whole[g]) for g in whole)
    assert all(torch.equal(align(model_a, model_b, "activation", x)[k], v)
               for k, v in permute_state(model_b.state_dict(), permutation_spec(model_a), whole).items())


def planted(m: nn.Module, seed: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """`m` with every group's channels permuted at random (the same function)."""
    spec = permutation_spec(m)
    state = m.state_dict()
    gen = torch.Generator().manual_seed(seed)
    perms = {g: torch.randperm(state[n].shape[ax], generator=gen) for g, ((n, ax), *_) in spec.groups.items()}
    other = copy.deepcopy(m)
    other.load_state_dict(permute_state(state, spec, perms))
    return other.eval(), perms


@pytest.mark.parametrize("method", ["activation", "weight"])
@pytest.mark.parametrize("name,width,shape", ARCHS)
def test_a_planted_permutation_under_noise_is_undone_and_the_function_kept(name, width, shape, method):
    model_a = model(name, width, shape, 0)
    model_b, perms = planted(model_a, seed=4)
    with torch.no_grad():                                   # B: A permuted, plus a little noise
        gen = torch.Generator().manual_seed(5)
        for p in model_b.parameters():
            p.add_(0.02 * p.abs().mean() * torch.randn(p.shape, generator=gen))
    x = data(shape, 64, seed=6)
    aligned = align(model_a, model_b, method, x, seed=0)
    spec = permutation_spec(model_a)
    undo = {g: torch.argsort(p) for g, p in perms.items()}           # the inverse of each planted permutation
    expected = permute_state(model_b.state_dict(), spec, undo)
    for key, value in expected.items():
        assert torch.equal(aligned[key], value), key
    moved = copy.deepcopy(model_b)
    moved.load_state_dict(aligned)
    with torch.no_grad():
        torch.testing.assert_close(moved.eval()(x), model_b(x), atol=1e-4, rtol=0)
    # the inverse is not the planted permutation itself: the direction is checked
    assert any(not torch.equal(undo[g], perms[g]) for g in perms)


@pytest.mark.parametrize("name,width,shape", ARCHS)
def test_weight_matching_reads_weights_and_bn_affine_parameters_but_not_running_statistics(name, width, shape):
    model_a = model(name, width, shape, 0)
    model_b, _ = planted(model(name, width, shape, 1), seed=2)
    spec = permutation_spec(model_a)
    state_b = model_b.state_dict()
    gen = torch.Generator().manual_seed(3)
    odd = {k: (100 * torch.rand(v.shape, generator=gen) if k.endswith(("running_mean", "running_var")) else v)
           for k, v in state_b.items()}                      # statistics that would dominate any score
    perms = align_by_weights(model_a.state_dict(), state_b, spec, seed=0)
    assert all(torch.equal(align_by_weights(model_a.state_dict(), odd, spec, seed=0)[g], p) for g, p in perms.items())
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms.values())


def reference_weight_matching(state_a, state_b, spec, seed: int, max_iter: int = 100) -> dict[str, torch.Tensor]:
    """Git Re-Basin's weight matching written out: perms start at the identity; each sweep visits the spec's groups
    (in the spec's order) in the order of `torch.randperm` drawn from one generator seeded with `seed` for the whole
    run; for a group, B is permuted on every other group's axes by their current perms, the scores are
    sum <A_i, B_j> (float64) over the weights and BN affine parameters of the group (running statistics left out), the
    linear assignment is taken when it beats the current perm by more than 1e-12 of the largest score (at least 1);
    a sweep that changes nothing ends the descent."""
    groups = list(spec.groups)
    size = {g: state_a[n].shape[ax] for g, ((n, ax), *_) in spec.groups.items()}
    perms = {g: torch.arange(size[g]) for g in groups}
    gen = torch.Generator().manual_seed(seed)
    for _ in range(max_iter):
        improved = False
        for i in torch.randperm(len(groups), generator=gen).tolist():
            g = groups[i]
            b = permute_state(state_b, spec, {h: p for h, p in perms.items() if h != g})
            score = np.zeros((size[g], size[g]))
            for name, axis in spec.groups[g]:
                if name.endswith(("running_mean", "running_var")):
                    continue
                wa = state_a[name].double().movedim(axis, 0).reshape(size[g], -1).numpy()
                wb = b[name].double().movedim(axis, 0).reshape(size[g], -1).numpy()
                score += wa @ wb.T
            rows, best = linear_sum_assignment(score, maximize=True)
            if score[rows, best].sum() - score[rows, perms[g].numpy()].sum() > 1e-12 * max(1.0, np.abs(score).max()):
                perms[g], improved = torch.as_tensor(best), True
        if not improved:
            break
    return perms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_matching_equals_the_coordinate_descent_written_out(seed):
    """On two independent ResNets (where the visiting order decides which local optimum is reached, so the seed
    matters) `align_by_weights` returns the reference's permutations for every seed."""
    name, shape = "resnet18", (3, 8, 8)
    model_a, model_b = model(name, 4, shape, 0), model(name, 4, shape, 5)
    spec = permutation_spec(model_a)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    expected = reference_weight_matching(sa, sb, spec, seed)
    got = align_by_weights(sa, sb, spec, seed=seed)
    assert set(got) == set(expected)
    assert all(torch.equal(got[g], expected[g]) for g in expected), seed
