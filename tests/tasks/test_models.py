import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasks.models import MODELS, Classifier, build_model

# (name, width, input shape): small widths keep the tests fast
CASES = [("small_cnn", None, (1, 16, 16)), ("small_cnn", 8, (3, 32, 32)),
         ("vgg13", 8, (3, 32, 32)), ("vgg13", 4, (1, 16, 16)), ("resnet18", 8, (3, 32, 32))]


@pytest.mark.parametrize("name,width,shape", CASES)
def test_models_give_logits_and_features(name, width, shape):
    model = build_model(name, num_classes=7, in_channels=shape[0], width=width, seed=0)
    x = torch.randn(3, *shape)
    assert isinstance(model, Classifier) and isinstance(model.head, nn.Linear)
    features = model.features(x)
    assert features.shape == (3, model.head.in_features)
    assert model(x).shape == (3, 7)
    torch.testing.assert_close(model(x), model.head(features))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_convs_are_bias_free_and_followed_by_batchnorm(name):
    model = build_model(name, 10, width=4)
    modules = list(model.named_modules())
    convs = [(n, m) for n, m in modules if isinstance(m, nn.Conv2d)]
    bns = {n: m for n, m in modules if isinstance(m, nn.BatchNorm2d)}
    assert convs
    for conv_name, conv in convs:
        assert conv.bias is None, conv_name
        bn_name = conv_name.replace("conv", "bn")  # blocks.0.conv -> blocks.0.bn, conv1 -> bn1
        assert bn_name in bns and bns[bn_name].num_features == conv.out_channels, conv_name


def test_width_scales_the_base_width():
    assert build_model("vgg13", 10).head.in_features == 512
    assert build_model("vgg13", 10, width=16).head.in_features == 128
    assert build_model("resnet18", 10).head.in_features == 512
    assert build_model("resnet18", 10, width=8).head.in_features == 64
    assert build_model("small_cnn", 10).head.in_features == 64
    assert build_model("small_cnn", 10, width=32).head.in_features == 128


def test_paper_sized_models_have_the_expected_parameter_counts():
    counts = {name: sum(p.numel() for p in build_model(name, 10).parameters()) for name in ("vgg13", "resnet18")}
    assert 9.3e6 < counts["vgg13"] < 9.5e6
    assert 11.1e6 < counts["resnet18"] < 11.25e6
    assert sum(p.numel() for p in build_model("small_cnn", 10, in_channels=1).parameters()) < 50_000


def test_vgg13_uses_strides_not_pooling():
    model = build_model("vgg13", 10, width=4)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    strides = [m.stride[0] for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 2, 1, 1]


def test_seed_fixes_the_initialisation_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_model("small_cnn", 10, seed=3), build_model("small_cnn", 10, seed=3)
    c = build_model("small_cnn", 10, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.blocks[0].conv.weight, c.blocks[0].conv.weight)


def test_unknown_model_lists_the_allowed_names():
    with pytest.raises(ValueError, match="'vgg16'.*resnet18, small_cnn, vgg13"):
        build_model("vgg16", 10)


def test_small_cnn_learns_digits_in_a_few_epochs():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    x = F.interpolate(x, size=16, mode="bilinear") * 2 - 1
    gen = torch.Generator().manual_seed(0)
    x = x + 0.3 * torch.randn(x.shape, generator=gen)
    y = torch.tensor(digits.target)
    model = build_model("small_cnn", 10, in_channels=1, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared: one thread is as fast and degrades gracefully
    try:
        _train(model, opt, x[:1400], y[:1400], gen, epochs=6)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        acc = (model(x[1400:]).argmax(1) == y[1400:]).float().mean().item()
    assert acc > 0.85, acc


def _train(model, opt, x, y, gen, epochs):
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def _randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Eval-mode BN with running statistics and affine parameters away from identity (mild enough that the
    signal survives every ReLU)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            c = bn.num_features
            bn.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
            bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.bias.copy_(0.2 * torch.randn(c, generator=gen))
    model.eval()


def _conv_bn(x, conv: nn.Conv2d, bn: nn.BatchNorm2d, stride: int, relu: bool):
    """conv (padding kernel // 2, no bias) -> eval-mode BatchNorm -> optional ReLU, written out."""
    y = F.conv2d(x, conv.weight, stride=stride, padding=conv.weight.shape[-1] // 2)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return torch.relu(y) if relu else y


def test_small_cnn_is_four_convbn_relu_blocks_of_widths_w_2w_2w_4w_strides_1_2_1_2_then_average_pool():
    model = build_model("small_cnn", 5, in_channels=2, width=3, seed=0)
    _randomise_batchnorm(model, seed=1)
    assert [b.conv.out_channels for b in model.blocks] == [3, 6, 6, 12]
    x = torch.randn(4, 2, 9, 9, generator=torch.Generator().manual_seed(2))
    h = x
    for block, stride in zip(model.blocks, (1, 2, 1, 2)):
        h = _conv_bn(h, block.conv, block.bn, stride, relu=True)
        assert float((h > 0).double().mean()) > 0.2          # the signal reaches every block
    assert h.shape[-2:] == (3, 3)
    features = h.mean(dim=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(model.trunk(x), h)
        torch.testing.assert_close(model.features(x), features)
        torch.testing.assert_close(model(x), features @ model.head.weight.T + model.head.bias)


def test_resnet18_matches_the_cifar_basic_block_recipe_written_out():
    """stem conv-BN-ReLU (stride 1); per block relu(bn1(conv1 x)) -> bn2(conv2 .) + shortcut(x) -> ReLU, the
    shortcut a 1x1 conv-BN without ReLU where the shape changes; stride 2 in the first block of stages 2-4
    only; widths w, 2w, 4w, 8w; average pool; linear head."""
    model = build_model("resnet18", 5, in_channels=3, width=4, seed=0)
    _randomise_batchnorm(model, seed=1)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    h = _conv_bn(x, model.stem.conv, model.stem.bn, 1, relu=True)
    strides = [1, 1, 2, 1, 2, 1, 2, 1]
    widths = [4, 4, 8, 8, 16, 16, 32, 32]
    assert len(model.blocks) == 8
    for block, stride, width in zip(model.blocks, strides, widths):
        assert block.conv2.out_channels == width
        out = torch.relu(F.batch_norm(F.conv2d(h, block.conv1.weight, stride=stride, padding=1),
                                      block.bn1.running_mean, block.bn1.running_var, block.bn1.weight,
                                      block.bn1.bias, False, 0.0, block.bn1.eps))
        out = F.batch_norm(F.conv2d(out, block.conv2.weight, stride=1, padding=1), block.bn2.running_mean,
                           block.bn2.running_var, block.bn2.weight, block.bn2.bias, False, 0.0, block.bn2.eps)
        if stride != 1 or h.shape[1] != width:
            shortcut = _conv_bn(h, block.shortcut.conv, block.shortcut.bn, stride, relu=False)
        else:
            assert isinstance(block.shortcut, nn.Identity)
            shortcut = h
        h = torch.relu(out + shortcut)
        assert float((h > 0).double().mean()) > 0.2          # the signal reaches every block
    assert h.shape[-2:] == (2, 2)
    with torch.no_grad():
        torch.testing.assert_close(model.trunk(x), h)
        torch.testing.assert_close(model(x), h.mean(dim=(2, 3)) @ model.head.weight.T + model.head.bias)


def test_a_basic_block_that_changes_width_at_stride_1_projects_its_shortcut():
    """"shortcut (identity or 1x1 ConvBN)": a block that keeps its width and stride adds its input as it is; one
    that widens (even at stride 1) needs a 1x1 conv-BN without ReLU to add its input to a wider output."""
    from tasks.models import BasicBlock, ConvBN

    assert isinstance(BasicBlock(4, 4, 1).shortcut, nn.Identity)
    widening = BasicBlock(2, 4, 1)
    assert isinstance(widening.shortcut, ConvBN) and widening.shortcut.conv.kernel_size == (1, 1)
    assert widening.shortcut.conv.stride == (1, 1) and not widening.shortcut.relu
    assert widening(torch.randn(2, 2, 5, 5)).shape == (2, 4, 5, 5)


@pytest.mark.parametrize("width", [0, -3])
def test_a_width_below_one_is_refused_not_replaced_by_the_default(width):
    """`width` is "a positive integer or None": 0 must not silently build the default width (`width or 64`)."""
    with pytest.raises(ValueError, match="`width` must be a positive integer"):
        build_model("small_cnn", 10, width=width)


class _NoFeatures(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.head = nn.Linear(4, k)

    def forward(self, x):
        return self.head(x.flatten(1))


class _SequentialHead(Classifier):
    def __init__(self, k):
        super().__init__()
        self.body = nn.Conv2d(1, 4, 3)
        self.head = nn.Sequential(nn.Linear(4, k))

    def trunk(self, x):
        return self.body(x)


@pytest.mark.parametrize("builder", [_NoFeatures, _SequentialHead])
def test_a_model_without_a_features_method_or_a_linear_head_is_refused(monkeypatch, builder):
    """Last-layer retraining and CBFT read `features(x)` and retrain an nn.Linear `head`: a model lacking either
    is refused when it is built."""
    from tasks import models

    monkeypatch.setitem(models.MODELS, "mine", lambda num_classes, in_channels, width: builder(num_classes))
    with pytest.raises(TypeError, match="features"):
        build_model("mine", 3, 1)


def test_without_a_seed_the_initialisation_is_drawn_from_the_global_rng():
    """"without it, from the global RNG": the same global seed builds the same weights, another global seed other
    weights, and the draws advance the global RNG."""
    torch.manual_seed(5)
    a = build_model("small_cnn", 10, width=4)
    drawn = torch.random.get_rng_state()
    torch.manual_seed(5)
    b = build_model("small_cnn", 10, width=4)
    torch.manual_seed(6)
    c = build_model("small_cnn", 10, width=4)
    assert torch.equal(a.blocks[0].conv.weight, b.blocks[0].conv.weight)
    assert not torch.equal(a.blocks[0].conv.weight, c.blocks[0].conv.weight)
    torch.manual_seed(5)
    assert not torch.equal(torch.random.get_rng_state(), drawn)


@pytest.mark.parametrize("width", [0, -1])
def test_model_settings_refuse_a_width_below_one_before_anything_is_built(width):
    """A width below one builds no model (`build_model` refuses it): the settings refuse it up front, naming the
    field, so a sweep never plans a task that can only fail."""
    from tasks.models import ModelSettings

    with pytest.raises(ValueError, match=f"`width`: {width} is not allowed"):
        ModelSettings(width=width)
    assert ModelSettings(width=1).width == 1


def test_alignment_problem_names_a_builder_that_returns_no_classifier(monkeypatch):
    """`alignment_problem` says *why* a model cannot be permuted, "or None": a builder that returns no classifier
    (no `features`) is such a reason, returned as text, not raised."""
    from tasks import models

    monkeypatch.setitem(models.MODELS, "mine", lambda num_classes, in_channels, width: _NoFeatures(num_classes))
    problem = models.alignment_problem("mine")
    assert isinstance(problem, str) and "features" in problem
    assert models.supports_alignment("mine") is False and models.alignment_problem("small_cnn") is None


def test_vgg13_is_ten_convbn_relu_blocks_of_the_vgg13_widths():
    """VGG-13 (Simonyan & Zisserman, configuration B) has the conv widths 64, 64, 128, 128, 256, 256, 512, 512, 512,
    512: in units of the base width w, w w 2w 2w 4w 4w 8w 8w 8w 8w, each block fed by the one before."""
    model = build_model("vgg13", 10, in_channels=2, width=3)
    widths = [3, 3, 6, 6, 12, 12, 24, 24, 24, 24]
    assert [b.conv.out_channels for b in model.blocks] == widths
    assert [b.conv.in_channels for b in model.blocks] == [2] + widths[:-1]
    assert all(b.relu and b.conv.kernel_size == (3, 3) for b in model.blocks)
    assert model.head.in_features == 24


def test_supports_alignment_judges_the_model_built_at_the_width_asked(monkeypatch):
    """`supports_alignment(name, width)` builds the model at `width`: a builder whose model cannot be permuted at
    one width only (here no `features` at width 7) is refused there and accepted at another width."""
    from tasks import models

    def builder(num_classes, in_channels, width):
        return _NoFeatures(num_classes) if width == 7 else models.small_cnn(num_classes, in_channels, width)

    monkeypatch.setitem(models.MODELS, "mine", builder)
    assert models.supports_alignment("mine", 7) is False
    assert models.supports_alignment("mine", 8) is True


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_batchnorm_of_a_built_in_model_is_torchs_default_batchnorm(name):
    """The recipes (VGG-13, CIFAR ResNet-18, small CNN) use BatchNorm2d as torch builds it: eps 1e-5, momentum
    0.1, affine, tracking running statistics. The recipe tests read `bn.eps` from the model itself, so a layer
    built with another eps trains another model unnoticed."""
    bns = [m for m in build_model(name, 10, width=4, seed=0).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns
    for bn in bns:
        assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-5, 0.1, True, True)


def test_build_problem_names_a_builder_that_refuses_the_data_with_a_value_error(monkeypatch):
    """"Only a builder that is none (... TypeError, ValueError) is refused here": a builder of one's own that
    raises ValueError for this data's channels is a problem named at plan time, as is a name that is no model."""
    from tasks import models

    def rgb_only(num_classes, in_channels, width):
        if in_channels != 3:
            raise ValueError(f"rgb_only takes 3 channels, not {in_channels}")
        return models.small_cnn(num_classes, in_channels, width)

    monkeypatch.setitem(models.MODELS, "rgb_only", rgb_only)
    assert models.build_problem("rgb_only", in_channels=3) is None
    assert models.build_problem("rgb_only", in_channels=1) == "rgb_only takes 3 channels, not 1"
    assert "unknown model" in models.build_problem("no_such_model")


def test_checking_a_builder_that_needs_real_tensors_leaves_the_global_rng_alone(monkeypatch):
    """A builder that cannot run on the meta device is built on the CPU to be checked, from a seed of its own:
    planning a spec draws nothing from torch's global RNG (a seeded script that plans and then trains does
    not depend on whether it planned)."""
    from tasks import models

    def needs_values(num_classes, in_channels, width):
        torch.randn(3).sum().item()        # .item() has no value on the meta device
        return models.small_cnn(num_classes, in_channels, 2)

    monkeypatch.setitem(models.MODELS, "needs_values", needs_values)
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    assert models.build_problem("needs_values") is None
    assert models.alignment_problem("needs_values") is None
    assert torch.equal(torch.random.get_rng_state(), before)


def test_the_plan_time_checks_build_the_model_for_the_datas_classes_and_channels(monkeypatch):
    """`build_problem` and `alignment_problem` judge the model the run will build: the builder is handed this
    data's (num_classes, in_channels) and the width asked, each in its place."""
    from tasks import models

    seen = []

    def recording(num_classes, in_channels, width):
        seen.append((num_classes, in_channels, width))
        return models.small_cnn(num_classes, in_channels, width)

    monkeypatch.setitem(models.MODELS, "recording", recording)
    assert models.build_problem("recording", 3, num_classes=7, in_channels=1) is None
    assert models.alignment_problem("recording", 3, num_classes=7, in_channels=1) is None
    assert seen == [(7, 1, 3), (7, 1, 3)]


class _FeatureCount(Classifier):
    """A model that keeps its feature count in `features` (an int), so `features(x)` cannot be called."""

    def __init__(self, k):
        super().__init__()
        self.body = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4, k)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


def test_a_model_whose_features_is_no_method_is_refused_when_it_is_built(monkeypatch):
    """"a `features(x)` method": an attribute named `features` that cannot be called (a feature count) is no
    such method, and is refused when the model is built, not when last-layer retraining first calls it."""
    from tasks import models

    def builder(num_classes, in_channels, width):
        model = _FeatureCount(num_classes)
        model.features = 4
        return model

    monkeypatch.setitem(models.MODELS, "counted", builder)
    with pytest.raises(TypeError, match="features"):
        build_model("counted", 3, 1)
