"""Paths against references written here in plain PyTorch / numpy: the Bezier formula, the control
point's initialisation and its training step, exact BatchNorm re-estimation of every layer, path
evaluation at every alpha, and the barrier definitions (tasks/paths.py)."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasks.data import Split
from tasks.models import build_model
from tasks.paths import (MIDPOINT_INITS, MidpointSettings, PathSettings, PatchMoments, ResetPass, barriers, bezier,
                         draw_alpha, evaluate_path, fresh_state, interpolate, reset_bn, train_midpoint)

K = 3


def model(seed: int, name: str = "small_cnn", width: int = 4) -> nn.Module:
    """A tiny model with BN affine parameters and running statistics away from their defaults."""
    m = build_model(name, num_classes=K, in_channels=1, width=width, seed=seed)
    gen = torch.Generator().manual_seed(seed + 500)
    with torch.no_grad():
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.weight.uniform_(0.6, 1.4, generator=gen)
            bn.bias.normal_(0.0, 0.2, generator=gen)
            bn.running_mean.normal_(0.0, 0.3, generator=gen)
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
            bn.num_batches_tracked.fill_(seed + 3)
        m.head.weight.mul_(4.0)
    return m


def state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def images(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(K, 1, 8, 8, generator=torch.Generator().manual_seed(77))
    y = torch.arange(n) % K
    return Split(means[y] + 0.8 * torch.randn(n, 1, 8, 8, generator=g), y)


# ----------------------------------------------------------------------------------- the formulas

@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 0.7, 1.0])
def test_bezier_and_interpolate_are_the_formulas_on_every_entry(alpha):
    a, m, b = state(model(0)), state(model(1)), state(model(2))
    curve, line = bezier(a, m, b, alpha), interpolate(a, b, alpha)
    assert curve.keys() == a.keys() == line.keys()
    for key, value in a.items():
        if value.is_floating_point():
            expected = (1 - alpha) ** 2 * a[key] + 2 * alpha * (1 - alpha) * m[key] + alpha ** 2 * b[key]
            torch.testing.assert_close(curve[key], expected, rtol=1e-6, atol=1e-7, msg=key)
            torch.testing.assert_close(line[key], (1 - alpha) * a[key] + alpha * b[key], rtol=1e-6, atol=1e-7)
        else:                                         # num_batches_tracked: endpoint A's
            assert torch.equal(curve[key], value) and torch.equal(line[key], value), key


# ----------------------------------------------------------------------------------- the midpoint

def test_fresh_state_is_the_architectures_own_initialisation_whatever_the_templates_weights():
    template, other = model(0, width=8), model(1, width=8)
    fresh = fresh_state(template, seed=4)
    same = fresh_state(other, seed=4)                 # another template: the same draw
    assert all(torch.equal(fresh[k], same[k]) for k in fresh)
    for key, value in fresh.items():
        if key.endswith("bn.weight") or key.endswith("running_var"):
            assert torch.equal(value, torch.ones_like(value)), key
        elif key.endswith("bn.bias") or key.endswith("running_mean") or key.endswith("num_batches_tracked"):
            assert torch.equal(value, torch.zeros_like(value)), key
        else:                  # conv and linear weights, linear bias: kaiming_uniform(a=sqrt(5)): 1/sqrt(fan_in)
            fan_in = value[0].numel() if key != "head.bias" else fresh["head.weight"].shape[1]
            bound = 1 / math.sqrt(fan_in)
            assert float(value.abs().max()) <= bound and float(value.abs().max()) > 0.6 * bound, key
            assert not torch.equal(value, template.state_dict()[key]), key          # not the template's
            if value.numel() >= 500:
                assert float(value.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1), key
    assert not torch.equal(fresh_state(template, seed=5)["blocks.1.conv.weight"], fresh["blocks.1.conv.weight"])


def test_a_fresh_midpoint_is_not_the_initialisation_of_a_model_built_from_the_same_seed():
    """The fresh control point is drawn from its own stream of `seed` ("midpoint-init"): a midpoint task whose
    seed equals its endpoints' initialisation seed must not start at their initialisation (the same draw as
    `build_model(..., seed=seed)`), which would put M on A's or B's starting point."""
    for seed in (0, 4):
        built = build_model("small_cnn", num_classes=K, in_channels=1, width=4, seed=seed).state_dict()
        fresh = fresh_state(model(9), seed=seed)
        for key, value in built.items():
            if key.endswith("conv.weight") or key == "head.weight":
                assert not torch.equal(fresh[key], value), (seed, key)


def test_draw_alpha_is_uniform_on_0_1():
    a = torch.tensor([draw_alpha(2, epoch, step) for epoch in range(40) for step in range(50)], dtype=torch.float64)
    assert 0.0 <= float(a.min()) and float(a.max()) < 1.0
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert float((a < q).double().mean()) == pytest.approx(q, abs=0.03)


MIDPOINT_SEED = 6
MIDPOINT = dict(epochs=2, lr=0.1, momentum=0.9, weight_decay=1e-2, batch_size=30, schedule="step",
                step_epochs=1, gamma=0.3)


def hand_midpoint(template: nn.Module, a: dict, b: dict, train: Split, settings: MidpointSettings) -> dict:
    """The paper's control-point training, one full batch per epoch: alpha ~ U(0, 1) per batch; CE at
    theta(alpha) = (1-alpha)^2 A + 2 alpha (1-alpha) M + alpha^2 B in train mode (BN statistics are M's
    own); the gradient reaching M is 2 alpha (1-alpha) times the one at theta(alpha); SGD on M."""
    mid = copy.deepcopy(template)
    if settings.init == "fresh":
        mid.load_state_dict(fresh_state(template, MIDPOINT_SEED))      # checked by the test above
    else:
        mid.load_state_dict({k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else a[k] for k in a})
    params = dict(mid.named_parameters())
    buf: dict[str, torch.Tensor] = {}
    for epoch in range(settings.epochs):
        alpha = draw_alpha(MIDPOINT_SEED, epoch, 0)
        w_a, w_m, w_b = (1 - alpha) ** 2, 2 * alpha * (1 - alpha), alpha ** 2
        at = copy.deepcopy(mid).train()               # M's BN buffers, updated by the pass below
        with torch.no_grad():
            for k, p in at.named_parameters():
                p.copy_(w_a * a[k] + w_m * params[k] + w_b * b[k])
        loss = F.cross_entropy(at(train.x), train.y)
        grads = torch.autograd.grad(loss, list(at.parameters()))
        lr = settings.lr * settings.gamma ** (epoch // settings.step_epochs)
        with torch.no_grad():
            for (k, p), g in zip(params.items(), grads):
                d = w_m * g + settings.weight_decay * p
                buf[k] = d if k not in buf else settings.momentum * buf[k] + d
                p -= lr * buf[k]
            for (k, v), (_, new) in zip(mid.named_buffers(), at.named_buffers()):
                v.copy_(new)
    return state(mid)


def test_the_reference_draws_alphas_that_tell_a_from_b():
    assert all(abs(draw_alpha(MIDPOINT_SEED, epoch, 0) - 0.5) > 0.1 for epoch in range(MIDPOINT["epochs"]))


@pytest.mark.parametrize("init", MIDPOINT_INITS)
def test_train_midpoint_matches_the_papers_control_point_training(init):
    assert set(MIDPOINT_INITS) == {"fresh", "linear"}
    a, b = state(model(1)), state(model(2))
    a_before, b_before = copy.deepcopy(a), copy.deepcopy(b)
    train = images(30, seed=3)
    settings = MidpointSettings(**MIDPOINT, init=init)
    template = model(0)
    expected = hand_midpoint(template, a, b, train, settings)
    got, rows = train_midpoint(template, a, b, train, settings, seed=MIDPOINT_SEED, device="cpu")
    assert len(rows) == settings.epochs
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=2e-4, atol=2e-6, msg=key)
    for key in a:                                     # the endpoints are never trained
        assert torch.equal(a[key], a_before[key]) and torch.equal(b[key], b_before[key]), key


def test_the_control_points_objective_draws_a_fresh_alpha_at_every_step_of_an_epoch():
    """Several batches per epoch: the loss of step s of epoch e is the CE at the curve point
    alpha = draw_alpha(seed, e, s), not one alpha per epoch."""
    from tasks.paths import BezierObjective
    a, b = state(model(1)), state(model(2))
    mid = model(0).train()
    objective = BezierObjective(a, b, images(30, seed=3), batch_size=10, seed=MIDPOINT_SEED, device="cpu")
    alphas = {(epoch, step): draw_alpha(MIDPOINT_SEED, epoch, step) for epoch in (0, 1) for step in range(3)}
    assert all(max(abs(alphas[(epoch, step)] - alphas[(epoch, 0)]) for step in (1, 2)) > 0.1 for epoch in (0, 1))
    for epoch in (0, 1):
        batches = list(objective.batches(epoch))
        assert [step for step, _, _ in batches] == [0, 1, 2]
        for step, x, y in batches:
            alpha = alphas[(epoch, step)]
            at = copy.deepcopy(mid)
            params = dict(mid.named_parameters())
            with torch.no_grad():
                for k, p in at.named_parameters():
                    p.copy_((1 - alpha) ** 2 * a[k] + 2 * alpha * (1 - alpha) * params[k] + alpha ** 2 * b[k])
            expected = F.cross_entropy(at(x), y)
            (loss, correct, n), = list(objective.steps(mid, (step, x, y), epoch))
            assert n == len(y)
            torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ BN re-estimation

def bn_inputs_by_batch(m: nn.Module, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every BN layer's input over all `batches`, each run through `m` in train mode: [C, elements]."""
    m = copy.deepcopy(m).train()
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [layer.register_forward_pre_hook(
        lambda _mod, inputs, name=name: seen.setdefault(name, []).append(inputs[0].detach().double()))
        for name, layer in m.named_modules() if isinstance(layer, nn.BatchNorm2d)]
    with torch.no_grad():
        for x in batches:
            m(x)
    for hook in hooks:
        hook.remove()
    return {name: torch.cat([t.transpose(0, 1).reshape(t.shape[1], -1) for t in ts], 1) for name, ts in seen.items()}


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_reset_bn_sets_every_layers_statistics_to_the_moments_of_its_input_over_the_sample(name):
    m = model(0, name)
    x = images(40, seed=1).x
    expected = bn_inputs_by_batch(m, list(x.split(10)))            # 4 batches of 10, BN in train mode
    reset_bn(m, x, batch_size=10, precision="fp32")
    assert_moments_of_inputs(m, expected)


@pytest.mark.parametrize("patches", [False, True], ids=["batch-statistics", "patch-moments"])
@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "vgg13"])
def test_the_reset_pass_sets_every_layers_statistics_to_the_moments_of_its_input_over_the_sample(name, patches):
    # the traced pass evaluate_path runs on the CPU in fp32; with `PatchMoments` the first BN's statistics come
    # from the moments of the image patches (the second run reads them back from the cache)
    m = model(0, name)
    x = images(40, seed=1).x
    expected = bn_inputs_by_batch(m, list(x.split(10)))
    fast = ResetPass(m, PatchMoments() if patches else None)
    for _ in range(2):
        reset_bn(m, x, batch_size=10, precision="fp32", traced=fast)
        assert_moments_of_inputs(m, expected)


def assert_moments_of_inputs(m: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    layers = {n: layer for n, layer in m.named_modules() if isinstance(layer, nn.BatchNorm2d)}
    assert set(layers) == set(expected) and len(layers) >= 4
    for n, layer in layers.items():
        h = expected[n]
        torch.testing.assert_close(layer.running_mean.double(), h.mean(1), rtol=1e-5, atol=1e-6, msg=n)
        torch.testing.assert_close(layer.running_var.double(), h.var(1, unbiased=True), rtol=1e-5, atol=1e-6, msg=n)
        assert int(layer.num_batches_tracked) == 4 and layer.momentum == 0.1, n
    assert not m.training


# ------------------------------------------------------------------------------- path evaluation

def hand_point(template: nn.Module, point: dict, bn_x: torch.Tensor, batch: int, sets: dict[str, Split]) -> dict:
    """Load `point`; set every BN layer's statistics to the mean and unbiased variance of its input over
    `bn_x` (run in train mode in batches of `batch`); then mean CE and accuracy of each whole set in
    eval mode."""
    m = copy.deepcopy(template)
    m.load_state_dict(point)
    inputs = bn_inputs_by_batch(m, list(bn_x.split(batch)))
    with torch.no_grad():
        for name, layer in m.named_modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.copy_(inputs[name].mean(1))
                layer.running_var.copy_(inputs[name].var(1, unbiased=True))
        m.eval()
        out = {}
        for name, split in sets.items():
            logits = m(split.x)
            out[name] = (float(F.cross_entropy(logits, split.y)), float((logits.argmax(1) == split.y).double().mean()))
    return out


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
def test_every_row_of_a_path_is_the_hand_evaluated_point_at_its_alpha(quadratic):
    a, mid, b = state(model(1)), state(model(2)), state(model(3))
    bn_data = images(50, seed=4).x
    sets = {"first": images(24, seed=5), "second": images(18, seed=6)}
    settings = PathSettings(num_alphas=5, bn_reset_samples=30, eval_batch_size=10, precision="fp32")  # sets: 3 batches
    rows = evaluate_path(model(0), a, b, midpoint=mid if quadratic else None, bn_data=bn_data, sets=sets,
                         settings=settings, device="cpu")
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [(r["alpha"], r["eval_set"]) for r in rows] == [(al, s) for al in alphas for s in sets]
    for alpha in alphas:
        if quadratic:
            point = {k: (1 - alpha) ** 2 * a[k] + 2 * alpha * (1 - alpha) * mid[k] + alpha ** 2 * b[k]
                     if a[k].is_floating_point() else a[k] for k in a}
        else:
            point = {k: (1 - alpha) * a[k] + alpha * b[k] if a[k].is_floating_point() else a[k] for k in a}
        expected = hand_point(model(0), point, bn_data[:30], 10, sets)
        for r in (r for r in rows if r["alpha"] == alpha):
            loss, acc = expected[r["eval_set"]]
            assert r["n"] == len(sets[r["eval_set"]])
            assert r["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5), (alpha, r["eval_set"])
            assert abs(r["acc"] - acc) <= 1.01 / r["n"], (alpha, r["eval_set"])
    losses = {r["alpha"]: r["loss"] for r in rows if r["eval_set"] == "first"}
    assert len(set(round(v, 4) for v in losses.values())) == 5         # the points do differ


# ------------------------------------------------------------------------------------- barriers

def numpy_barriers(alphas, loss, acc) -> dict[tuple[str, str], float]:
    order = np.argsort(alphas)
    al, lo, ac = np.asarray(alphas)[order], np.asarray(loss)[order], np.asarray(acc)[order]
    t = (al - al[0]) / (al[-1] - al[0])
    return {("loss", "chord"): float(np.max(lo - ((1 - t) * lo[0] + t * lo[-1]))),
            ("loss", "mean_endpoints"): float(lo.max() - (lo[0] + lo[-1]) / 2),
            ("acc", "chord"): float(np.max(((1 - t) * ac[0] + t * ac[-1]) - ac)),
            ("loss", "worse_endpoint"): float(lo.max() - max(lo[0], lo[-1])),
            ("acc", "mean_endpoints"): float((ac[0] + ac[-1]) / 2 - ac.min()),
            ("acc", "worse_endpoint"): float(min(ac[0], ac[-1]) - ac.min())}


def test_barriers_equal_the_definitions_on_random_curves():
    rng = np.random.default_rng(0)
    rows, expected = [], {}
    grids = {"unit": np.linspace(0, 1, 11), "uneven": np.array([0.0, 0.1, 0.15, 0.6, 1.0]),
             "shifted": np.array([0.2, 0.35, 0.5, 0.8]), "two": np.array([0.0, 1.0])}
    for name, grid in grids.items():
        for shape in ("bump", "valley", "tilted"):
            set_name = f"{name}-{shape}"
            loss = rng.uniform(0.1, 3.0, len(grid))
            acc = rng.uniform(0.0, 1.0, len(grid))
            if shape == "valley":                     # below the chord everywhere inside: barrier 0 at the ends
                loss = 2.0 + 1.5 * (grid - grid.mean()) ** 2 + (grid - grid[0])
                acc = 0.9 - 0.5 * (grid - grid.mean()) ** 2
            if shape == "tilted":                     # endpoints far apart: the chord is not the mean
                loss[0], loss[-1], acc[0], acc[-1] = 0.2, 2.9, 0.95, 0.3
            expected[set_name] = numpy_barriers(grid, loss, acc)
            rows += [{"alpha": float(al), "eval_set": set_name, "loss": float(lo), "acc": float(ac), "n": 7}
                     for al, lo, ac in zip(grid, loss, acc)]
    random.Random(1).shuffle(rows)
    got = {(r["eval_set"], r["metric"], r["definition"]): r["value"] for r in barriers(rows)}
    assert len(got) == 6 * len(expected)
    for set_name, values in expected.items():
        for (metric, definition), value in values.items():
            assert got[(set_name, metric, definition)] == pytest.approx(value, abs=1e-12), (set_name, metric, definition)
    assert got[("unit-valley", "loss", "chord")] == pytest.approx(0.0, abs=1e-12)
    assert got[("unit-valley", "acc", "chord")] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------- edge cases (hunt 4)

def test_a_resampled_bn_sample_is_a_draw_from_its_documented_stream():
    """docs/SCIENCE.md: `resample` draws N of the training images without replacement from the stream
    (seed, "bn-sample", alpha index): the first N of that stream's permutation of the training set (and
    `fixed` the first N images), never another use of the seed (e.g. the midpoint's alphas)."""
    from tasks.paths import draw_bn_sample
    from tasks.seeding import generator
    pool = torch.arange(50, dtype=torch.float32)[:, None]
    settings = PathSettings(bn_reset_samples=12, bn_sample="resample")
    for seed, alpha_index in ((0, 0), (3, 4)):
        got = draw_bn_sample(pool, settings, seed=seed, alpha_index=alpha_index)[:, 0].long()
        expected = torch.randperm(50, generator=generator(seed, "bn-sample", alpha_index))[:12]
        assert torch.equal(got, expected), (seed, alpha_index)
        assert len(set(got.tolist())) == 12                          # without replacement
    fixed = draw_bn_sample(pool, PathSettings(bn_reset_samples=12), seed=3, alpha_index=4)
    assert torch.equal(fixed[:, 0].long(), torch.arange(12))


def test_the_control_points_objective_counts_the_correct_predictions_at_the_curve_point():
    """The (correct, n) an objective step reports (the curve rows' accuracy) are the samples whose argmax at
    theta(alpha) equals their label, and the batch size."""
    from tasks.paths import BezierObjective
    a, b = state(model(1)), state(model(2))
    mid = model(0).train()
    train = images(30, seed=3)
    objective = BezierObjective(a, b, train, batch_size=10, seed=MIDPOINT_SEED, device="cpu")
    counts = []
    for step, x, y in objective.batches(0):
        alpha = draw_alpha(MIDPOINT_SEED, 0, step)
        at = copy.deepcopy(mid)
        params = dict(mid.named_parameters())
        with torch.no_grad():
            for k, p in at.named_parameters():
                p.copy_((1 - alpha) ** 2 * a[k] + 2 * alpha * (1 - alpha) * params[k] + alpha ** 2 * b[k])
            expected = int((at(x).argmax(1) == y).sum())
        (_, correct, n), = list(objective.steps(mid, (step, x, y), 0))
        assert (correct, n) == (expected, len(y)), step
        counts.append(expected)
    assert any(2 * c != 10 for c in counts)                          # right and wrong counts differ somewhere


def test_the_control_points_batches_cover_the_data_each_epoch_in_their_own_order():
    """Each epoch is one pass over the training set in batches of `batch_size`, reshuffled every epoch, in an
    order of its own stream: not the one `cross_entropy_objective` gives a model trained with the same seed on
    the same data (a midpoint seed equal to an endpoint's must not replay the endpoint's batches)."""
    from tasks.paths import BezierObjective
    from tasks.train import cross_entropy_objective
    a, b = state(model(1)), state(model(2))
    train = Split(torch.arange(40, dtype=torch.float32)[:, None, None, None].expand(40, 1, 2, 2).clone(),
                  torch.arange(40) % K)
    objective = BezierObjective(a, b, train, batch_size=8, seed=5, device="cpu")
    plain = cross_entropy_objective(train, 8, 5)
    orders = []
    for epoch in range(3):
        batches = list(objective.batches(epoch))
        assert [step for step, _, _ in batches] == list(range(5)) and all(len(x) == 8 for _, x, _ in batches)
        order = torch.cat([x[:, 0, 0, 0] for _, x, _ in batches]).long()
        assert sorted(order.tolist()) == list(range(40)), epoch
        other = torch.cat([x[:, 0, 0, 0] for x, _ in plain.batches(epoch)]).long()
        assert not torch.equal(order, other), epoch
        orders.append(order)
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


def test_fresh_state_resets_the_statistics_of_a_batchnorm_without_affine_parameters():
    """Every module's `reset_parameters` runs, a BN without parameters included: its running statistics come
    back to mean 0, variance 1, no batches."""
    template = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, affine=False), nn.Flatten(), nn.Linear(2, K))
    with torch.no_grad():
        template[1].running_mean.fill_(3.0)
        template[1].running_var.fill_(7.0)
        template[1].num_batches_tracked.fill_(5)
    fresh = fresh_state(template, seed=1)
    assert torch.equal(fresh["1.running_mean"], torch.zeros(2)) and torch.equal(fresh["1.running_var"], torch.ones(2))
    assert int(fresh["1.num_batches_tracked"]) == 0


# ------------------------------------------------------------------------- edge cases (hunt 6)

def test_under_two_ranks_the_control_points_batches_are_each_ranks_half_of_the_one_process_batches(monkeypatch):
    """Under data parallelism each rank takes its share of every global batch ("w workers together see exactly the
    batches one process sees", `tasks.data.iterate_batches`): rank 0's and rank 1's rows of step s are the two
    halves of the one-process batch s, never the whole batch on both ranks (which would train on each sample twice)."""
    import tasks.paths as paths_module
    from tasks.paths import BezierObjective
    a, b = state(model(1)), state(model(2))
    train = Split(torch.arange(40, dtype=torch.float32)[:, None, None, None].expand(40, 1, 2, 2).clone(),
                  torch.arange(40) % K)
    objective = BezierObjective(a, b, train, batch_size=8, seed=5, device="cpu")
    whole = [x[:, 0, 0, 0].long() for _, x, _ in objective.batches(1)]
    shares = {}
    for rank in (0, 1):
        monkeypatch.setattr(paths_module, "distributed_rank", lambda rank=rank: (rank, 2))
        shares[rank] = [(step, x[:, 0, 0, 0].long()) for step, x, _ in objective.batches(1)]
    assert [step for step, _ in shares[0]] == [step for step, _ in shares[1]] == list(range(5))
    for step, batch in enumerate(whole):
        assert torch.equal(torch.cat([shares[0][step][1], shares[1][step][1]]), batch), step
        assert len(shares[0][step][1]) == len(shares[1][step][1]) == 4
