"""Permutation specs traced from a model's forward (tasks/permutation.py): the built-ins' equal the
hand-written specs they replaced, models of your own are aligned like the built-ins, and what the
tracer cannot permute through is refused with one clear error.

The built-ins and examples/custom_model.py also go through every alignment test of test_align.py."""
import pickle

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tasks.align import align, permutation_spec
from tasks.models import BUILT_IN_MODELS, BasicBlock, Classifier, ConvBN, PlainCNN, ResNet, alignment_problem, build_model, supports_alignment
from tasks.permutation import AlignmentUnsupported, trace_permutation_spec
from tests.tasks.test_align import _data, _logits, _model, _randomly_permuted, _with_state

BUILTINS = [("small_cnn", 3), ("vgg13", 2), ("resnet18", 3)]
BN_ENTRIES = ("weight", "bias", "running_mean", "running_var")


# The hand-written specs the tracer replaced (tasks/align.py until the tracer), kept as the oracle.
def _convbn(name, out, inp):
    return {f"{name}.conv.weight": (out, inp, None, None), **{f"{name}.bn.{e}": (out,) for e in BN_ENTRIES}}


def _hand_written(model):
    axes, points = {}, {}
    if isinstance(model, PlainCNN):
        prev = None
        for i in range(len(model.blocks)):
            axes.update(_convbn(f"blocks.{i}", f"blocks.{i}", prev))
            points[f"blocks.{i}"], prev = [f"blocks.{i}"], f"blocks.{i}"
    else:
        assert isinstance(model, ResNet)
        prev = "stage.0"
        axes.update(_convbn("stem", prev, None))
        points[prev] = ["stem"]
        for k, block in enumerate(model.blocks):
            name, inner, stage = f"blocks.{k}", f"blocks.{k}.inner", prev
            assert isinstance(block, BasicBlock)
            if isinstance(block.shortcut, ConvBN):
                stage = f"stage.{int(prev.split('.')[1]) + 1}"
                axes.update(_convbn(f"{name}.shortcut", stage, prev))
                points[stage] = []
            axes[f"{name}.conv1.weight"] = (inner, prev, None, None)
            axes.update({f"{name}.bn1.{e}": (inner,) for e in BN_ENTRIES})
            axes[f"{name}.conv2.weight"] = (stage, inner, None, None)
            axes.update({f"{name}.bn2.{e}": (stage,) for e in BN_ENTRIES})
            points[inner] = [f"{name}.bn1"]
            points[stage].append(name)
            prev = stage
    axes["head.weight"], axes["head.bias"] = (None, prev), (None,)
    return axes, {g: tuple(p) for g, p in points.items()}


@pytest.mark.parametrize("name,width", BUILTINS)
def test_traced_specs_of_the_builtins_equal_the_hand_written_ones_in_the_same_order(name, width):
    """Same state entries in the same order, the same groups (tied axes) in the same order, the same
    points; only group names may differ. Weight matching depends on the group order (its coordinate
    descent visits groups in a seeded random order of the list), so the order is part of the check."""
    model = build_model(name, 10, in_channels=3, width=width)
    traced = trace_permutation_spec(model)
    axes, points = _hand_written(model)
    assert list(traced.axes) == list(axes)
    names = {}
    for group, entries in traced.groups.items():
        old = {axes[n][ax] for n, ax in entries}
        assert len(old) == 1, (group, old)
        names[group] = old.pop()
    assert len(set(names.values())) == len(names)
    assert {n: tuple(names.get(g) for g in gs) for n, gs in traced.axes.items()} == axes
    assert list(names.values()) == list(dict.fromkeys(g for gs in axes.values() for g in gs if g is not None))
    assert {names[g]: p for g, p in traced.points.items()} == points


def test_a_resnet_stage_is_one_group_across_its_residual_adds():
    spec = permutation_spec(build_model("resnet18", 10, width=4))
    group = {(n, ax): g for g, entries in spec.groups.items() for n, ax in entries}
    stages = [[("stem.conv.weight", 0), ("blocks.0.conv1.weight", 1), ("blocks.0.conv2.weight", 0),
               ("blocks.1.conv2.weight", 0), ("blocks.1.bn2.running_var", 0), ("blocks.2.shortcut.conv.weight", 1)]]
    for k in (2, 4, 6):   # a stage: its projection, every block's output, the next stage's inputs
        stages.append([(f"blocks.{k}.shortcut.conv.weight", 0), (f"blocks.{k}.conv2.weight", 0),
                       (f"blocks.{k + 1}.conv1.weight", 1), (f"blocks.{k + 1}.conv2.weight", 0)]
                      + ([(f"blocks.{k + 2}.conv1.weight", 1)] if k < 6 else [("head.weight", 1)]))
    stage_groups = [{group[e] for e in entries} for entries in stages]
    assert all(len(g) == 1 for g in stage_groups)
    assert len(set.union(*stage_groups)) == 4
    for k in range(8):    # a block's inner channels: conv1's output, bn1, conv2's input; nothing else
        inner = group[(f"blocks.{k}.conv1.weight", 0)]
        assert set(spec.groups[inner]) == {(f"blocks.{k}.conv1.weight", 0), (f"blocks.{k}.conv2.weight", 1)} | \
            {(f"blocks.{k}.bn1.{e}", 0) for e in BN_ENTRIES}
        assert spec.points[inner] == (f"blocks.{k}.bn1",)
    assert len(spec.groups) == 4 + 8
    assert spec.points[group[("stem.conv.weight", 0)]] == ("stem", "blocks.0", "blocks.1")
    assert spec.axes["stem.conv.weight"][1] is None and spec.axes["head.weight"][0] is None


# Models of your own that use what the tracer supports beyond the built-ins.
class _Block(nn.Module):
    """torchvision's BasicBlock: one inplace ReLU module used twice, `out += identity`, a downsample."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TorchvisionLike(Classifier):
    """Max-pooled stem, two stages, adaptive pooling + flatten, a hidden linear layer before the head."""

    def __init__(self, num_classes, in_channels, w):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(2)
        self.layer1, self.layer2 = nn.Sequential(_Block(w, w, 1), _Block(w, w, 1)), nn.Sequential(_Block(w, 2 * w, 2))
        self.avgpool, self.fc, self.head = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(2 * w, 3 * w), nn.Linear(3 * w, num_classes)
        nn.init.constant_(self.fc.bias, 1.0)   # hidden units alive on random images (activation matching
                                               # pairs a dead unit arbitrarily)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = torch.flatten(self.avgpool(self.layer2(self.layer1(x))), 1)
        return F.relu(self.fc(x))


class Functional(Classifier):
    """Functional ops, conv biases: a 1x1 conv added to the image (its output channels are the input's,
    never permuted), F.max_pool2d, .relu(), a conv + BN without ReLU (watched at its BN), adaptive
    pooling, view(N, -1), dropout, scaling by a number."""

    def __init__(self, num_classes, in_channels, w):
        super().__init__()
        self.pre, self.conv1 = nn.Conv2d(in_channels, in_channels, 1), nn.Conv2d(in_channels, w, 3, padding=1)
        self.conv2, self.conv3 = nn.Conv2d(w, 2 * w, 3, padding=1), nn.Conv2d(2 * w, 2 * w, 1, bias=False)
        self.bn3, self.drop, self.head = nn.BatchNorm2d(2 * w), nn.Dropout(0.5), nn.Linear(2 * w, num_classes)

    def features(self, x):
        x = x + 0.5 * self.pre(x)
        x = F.max_pool2d(self.conv1(x).relu(), 2)
        x = torch.relu(self.conv2(x)) * 2.0
        x = F.adaptive_avg_pool2d(self.bn3(self.conv3(x)), 1)
        return self.drop(x.view(x.size(0), -1))


def torchvision_like(num_classes, in_channels, width=None):
    return TorchvisionLike(num_classes, in_channels, width or 4)


def functional(num_classes, in_channels, width=None):
    return Functional(num_classes, in_channels, width or 4)


ZOO = ["torchvision_like", "functional"]


def test_the_zoo_specs_tie_what_they_should():
    spec = permutation_spec(torchvision_like(10, 3, 4))
    group = {(n, ax): g for g, entries in spec.groups.items() for n, ax in entries}
    stem = group[("conv1.weight", 0)]
    assert group[("layer1.1.conv2.weight", 0)] == group[("layer2.0.downsample.0.weight", 1)] == stem
    assert spec.points[stem] == ("relu", "layer1.0", "layer1.1")
    assert spec.points[group[("layer1.0.conv1.weight", 0)]] == ("layer1.0.bn1",)   # its shared ReLU runs twice
    assert group[("layer2.0.downsample.0.weight", 0)] == group[("fc.weight", 1)] != stem
    assert spec.points[group[("fc.weight", 0)]] == ("fc",) and group[("head.weight", 1)] == group[("fc.weight", 0)]
    assert len(spec.groups) == 1 + 2 + 1 + 1 + 1 and spec.axes["head.weight"][0] is None
    spec = permutation_spec(functional(10, 3, 4))
    assert spec.axes["pre.weight"] == (None,) * 4 and spec.axes["pre.bias"] == (None,)
    assert spec.axes["conv1.weight"][1] is None
    assert [spec.points[g] for g in spec.groups] == [("conv1",), ("conv2",), ("bn3",)]


@pytest.mark.parametrize("builder", ZOO)
def test_a_traced_permutation_keeps_the_function_and_alignment_undoes_it(builder):
    name, shape = f"{__name__}:{builder}", (3, 12, 12)
    assert supports_alignment(name)
    model, x = _model(name, 4, shape, seed=0), _data(shape, n=128)
    state_b, perms = _randomly_permuted(model, seed=1)
    assert all(not torch.equal(p, torch.arange(len(p))) for p in perms.values())
    model_b = _with_state(model, state_b)
    torch.testing.assert_close(_logits(model_b, x), _logits(model, x), atol=1e-4, rtol=0)
    for method in ("activation", "weight"):
        aligned = align(model, model_b, method, x, seed=0)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(aligned[key], value, atol=1e-5, rtol=0, msg=f"{method}: {key}")


# Models the tracer refuses: (what, trunk, head input, modules, the refused node, words of the message).
# A trunk's output is averaged over positions, unless it is already [N, D] (flat=True).
class _Net(Classifier):
    def __init__(self, trunk, head_in, flat=False, **modules):
        super().__init__()
        for key, module in modules.items():
            setattr(self, key, module)
        self._trunk, self._flat, self.head = trunk, flat, nn.Linear(head_in, 3)

    def trunk(self, x):
        return self._trunk(self, x)

    def features(self, x):
        return self.trunk(x) if self._flat else super().features(x)


def _conv(c_in=3, c_out=4, **kw):
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kw)


def _buffered_conv():
    conv = _conv()
    conv.register_buffer("mask", torch.ones(4))       # state the tracer has no axes for
    return conv


REFUSED = [
    ("a 1x1 map pooled back up to 2x2, then flattened",
     lambda m, x: torch.flatten(F.adaptive_avg_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 2), 1), 16,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("a 1x1 map enlarged by a padded pool, then flattened",
     lambda m, x: torch.flatten(F.avg_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 2, 1, 1), 1), 16,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("a 1x1 map enlarged by a padded pooling module, then flattened",
     lambda m, x: torch.flatten(m.p(F.adaptive_avg_pool2d(m.a(x), 1)), 1), 16,
     dict(a=_conv(), p=nn.AvgPool2d(2, 1, 1), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("grouped conv", lambda m, x: m.b(m.a(x)), 4, dict(a=_conv(), b=_conv(4, 4, groups=2)), "b",
     "grouped or depthwise"),
    ("depthwise conv", lambda m, x: m.b(m.a(x)), 4, dict(a=_conv(), b=_conv(4, 4, groups=4)), "b",
     "grouped or depthwise"),
    ("LayerNorm", lambda m, x: m.n(m.a(x)), 4, dict(a=_conv(), n=nn.LayerNorm([4, 6, 6])), "n", "LayerNorm `n`"),
    ("data-dependent branch", lambda m, x: m.a(x) if x.mean() > 0 else -m.a(x), 4, dict(a=_conv()), "forward",
     "cannot be traced"),
    ("channel concat", lambda m, x: torch.cat([m.a(x), m.b(x)], 1), 8, dict(a=_conv(), b=_conv()), "cat",
     "torch.cat"),
    ("flatten before pooling", lambda m, x: torch.flatten(m.a(x), 1), 144, dict(a=_conv(), flat=True), "flatten",
     "flattens the channel axis together with other axes"),
    ("reshape across channels", lambda m, x: m.a(x).reshape(x.shape[0], 2, -1, 6), 2, dict(a=_conv()), "reshape",
     "may mix channels"),
    ("attention", lambda m, x: m.att(*[m.a(x).flatten(2).transpose(1, 2)] * 3)[0].transpose(1, 2)[..., None], 4,
     dict(a=_conv(), att=nn.MultiheadAttention(4, 2, batch_first=True)), "transpose", "Tensor.transpose"),
    ("parameter used in forward", lambda m, x: m.a(x) * m.scale, 4, dict(a=_conv(), scale=nn.Parameter(torch.ones(4, 1, 1))),
     "scale", "get_attr"),
    ("module run twice", lambda m, x: m.b(m.b(m.a(x))), 4, dict(a=_conv(), b=_conv(4, 4)), "b",
     "runs more than once"),
    ("broadcast add", lambda m, x: m.a(x) + m.b(x), 4, dict(a=_conv(), b=_conv(c_out=1)), "add",
     "combines 4 with 1 channels"),
    ("product of tensors", lambda m, x: m.a(x) * m.b(x), 4, dict(a=_conv(), b=_conv()), "mul",
     "(operator.mul) multiplies"),
    ("mean over channels", lambda m, x: m.a(x).mean(1, keepdim=True), 1, dict(a=_conv()), "mean",
     "reduces over the batch or channel axis"),
    ("flatten after pooling one spatial axis", lambda m, x: torch.flatten(m.a(x).mean(2, keepdim=True), 1), 24,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("flatten after pooling to 1x2", lambda m, x: torch.flatten(F.adaptive_avg_pool2d(m.a(x), (1, 2)), 1), 8,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("flatten of channels with one spatial axis", lambda m, x: torch.flatten(m.a(x), 1, 2).mean(2), 24,
     dict(a=_conv(), flat=True), "flatten", "flattens axes the tracer cannot place"),
    ("squeeze of a spatial axis larger than 1", lambda m, x: torch.flatten(m.a(x).squeeze(2), 1), 144,
     dict(a=_conv(), flat=True), "squeeze", "squeezes axes"),
    ("view before pooling", lambda m, x: m.a(x).view(x.size(0), -1), 144, dict(a=_conv(), flat=True), "view",
     "may mix channels"),
    ("view after flattening positions", lambda m, x: torch.flatten(m.a(x), 2).view(x.size(0), -1), 144,
     dict(a=_conv(), flat=True), "view", "may mix channels"),
    ("add across axes", lambda m, x: m.a(x).amax((2, 3)) + m.b(x).mean((2, 3), keepdim=True), 4,
     dict(a=_conv(), b=_conv()), "add", "broadcasts a 2-axis tensor against a 4-axis one"),
    ("transposed conv", lambda m, x: m.b(m.a(x)), 4, dict(a=_conv(), b=nn.ConvTranspose2d(4, 4, 3, padding=1)), "b",
     "ConvTranspose2d `b`"),
    ("linear on a spatial axis", lambda m, x: m.l(m.a(x)), 4, dict(a=_conv(), l=nn.Linear(6, 6)), "l",
     "acts on the last axis"),
    ("unknown state entry", lambda m, x: m.a(x), 4, dict(a=_buffered_conv()), "a",
     "state entries the tracer does not know (mask)"),
    ("pooling module with indices", lambda m, x: m.p(m.a(x))[0], 4,
     dict(a=_conv(), p=nn.MaxPool2d(2, return_indices=True)), "p", "returns pooling indices"),
    ("module called by keyword", lambda m, x: m.a(input=x), 4, dict(a=_conv()), "a",
     "is called with more than one input"),
    ("flatten from a negative start before pooling", lambda m, x: torch.flatten(m.a(x), -3), 144,
     dict(a=_conv(), flat=True), "flatten", "flattens axes the tracer cannot place"),
    ("flatten after adding a pooled map to an unpooled one",
     lambda m, x: torch.flatten(m.a(x).mean((2, 3), keepdim=True) + m.b(x), 1), 144, dict(a=_conv(), b=_conv(), flat=True),
     "flatten", "flattens the channel axis together with other axes"),
    ("squeeze of the channel axis", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).squeeze(1).flatten(1), 4,
     dict(a=_conv(), flat=True), "squeeze", "squeezes axes that may be the batch or channel axis"),
    ("view to a fixed batch size", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).view(2, -1), 4,
     dict(a=_conv(), flat=True), "view", "may mix channels"),
    ("mean over every axis", lambda m, x: (lambda h: h - h.mean())(m.a(x)), 4, dict(a=_conv()), "mean",
     "reduces over axes the tracer cannot place"),
    ("mean over an empty tuple of axes (every axis)", lambda m, x: (lambda h: h - h.mean(()))(m.a(x)), 4, dict(a=_conv()),
     "mean", "reduces over axes the tracer cannot place"),
    ("a 1x1 map enlarged by a padded max pool, then flattened",       # torch.fx passes max_pool2d's padding by keyword
     lambda m, x: torch.flatten(F.max_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 2, 1, 1), 1), 16,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("a 1x1 map enlarged by a pool padded by keyword, then flattened",
     lambda m, x: torch.flatten(F.avg_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 2, 1, padding=1), 1), 16,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("a 1x1 map enlarged by a pool padded along one axis only, then flattened",
     lambda m, x: torch.flatten(F.avg_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), (2, 1), 1, (1, 0)), 1), 8,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("adaptive pooling that keeps one spatial axis (None), then flattened",
     lambda m, x: torch.flatten(F.adaptive_avg_pool2d(m.a(x), (1, None)), 1), 24,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("torch.flatten of every axis (batch included)",
     lambda m, x: torch.flatten(F.adaptive_avg_pool2d(m.a(x), 1)).view(x.size(0), -1), 4,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("Tensor.flatten() of every axis (batch included)",
     lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).flatten().view(x.size(0), -1), 4,
     dict(a=_conv(), flat=True), "flatten", "flattens the channel axis together with other axes"),
    ("squeeze without a dim (a batch or channel axis of 1 would go too)",
     lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).squeeze(), 4, dict(a=_conv(), flat=True), "squeeze",
     "squeezes axes that may be the batch or channel axis"),
    ("torch.mul of tensors", lambda m, x: torch.mul(m.a(x), m.b(x)), 4, dict(a=_conv(), b=_conv()), "mul",
     "(torch.mul) multiplies or divides two tensors"),
    ("torch.div of tensors", lambda m, x: torch.div(m.a(x), m.b(x)), 4, dict(a=_conv(), b=_conv()), "div",
     "(torch.div) multiplies or divides two tensors"),
    ("Tensor.div of tensors", lambda m, x: m.a(x).div(m.b(x)), 4, dict(a=_conv(), b=_conv()), "div",
     "(Tensor.div) multiplies or divides two tensors"),
    ("broadcast add of a one-channel map traced first", lambda m, x: (lambda g: m.a(x) + g)(m.b(x)), 4,
     dict(a=_conv(), b=_conv(c_out=1)), "add", "combines 1 with 4 channels"),
    ("linear on the last axis after a mean over one spatial axis", lambda m, x: m.l(m.a(x).mean(2)).mean(2), 4,
     dict(a=_conv(), l=nn.Linear(6, 6), flat=True), "l", "acts on the last axis"),
    ("view into three axes, splitting the channels", lambda m, x: m.l(F.adaptive_avg_pool2d(m.a(x), 1).view(x.size(0), -1, 2)).flatten(1),
     4, dict(a=_conv(), l=nn.Linear(2, 2), flat=True), "view", "may mix channels"),
    ("quotient of tensors", lambda m, x: m.a(x) / m.b(x), 4, dict(a=_conv(), b=_conv()), "truediv",
     "(operator.truediv) multiplies or divides two tensors"),
    ("the input normalised by its own spatial mean", lambda m, x: m.a(x - x.mean((2, 3), keepdim=True)), 4,
     dict(a=_conv()), "mean", "reduces the model's input, whose number of axes the tracer does not know"),
]


@pytest.mark.parametrize("what,trunk,head_in,modules,node,reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_the_tracer_refuses_what_it_cannot_permute_with_one_clear_error(what, trunk, head_in, modules, node, reason):
    model = _Net(trunk, head_in, **modules)
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 3)      # the model runs: only the tracer refuses it
    with pytest.raises(AlignmentUnsupported) as info:
        permutation_spec(model)
    message = str(info.value)
    assert info.value.node == node, message
    assert reason in message and f"node `{node}`" in message and "_Net" in message, message
    assert "supports nn.Conv1d/2d/3d with groups=1" in message and "without 'aligned'" in message
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, AlignmentUnsupported) and str(again) == message
    with pytest.raises(AlignmentUnsupported):
        align(model, model, "weight", None)


# Models the tracer accepts, one supported operation each (SUPPORTED in tasks/permutation.py): (what, trunk, head
# input, modules, the modules whose output channels are the ones the head reads).
ACCEPTED = [
    ("difference of two branches (a residual by subtraction)", lambda m, x: torch.relu(m.a(x)) - torch.relu(m.b(x)), 4,
     dict(a=_conv(), b=_conv()), ("a", "b")),
    ("torch.sub and Tensor.sub of branches", lambda m, x: torch.sub(m.a(x), m.b(x)).sub(m.c(x)).relu(), 4,
     dict(a=_conv(), b=_conv(), c=_conv()), ("a", "b", "c")),
    ("in-place add_ and sub_ of branches", lambda m, x: m.a(x).relu().add_(m.b(x).relu()).sub_(m.c(x)), 4,
     dict(a=_conv(), b=_conv(), c=_conv()), ("a", "b", "c")),
    ("mean over both spatial axes kept as 1x1, then flatten(1)",
     lambda m, x: torch.flatten(m.a(x).mean((2, 3), keepdim=True), 1), 4, dict(a=_conv(), flat=True), ("a",)),
    ("flatten with its last axis given", lambda m, x: torch.flatten(F.adaptive_avg_pool2d(m.a(x), 1), 1, 3), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("adaptive pooling with output_size by keyword",
     lambda m, x: torch.flatten(F.adaptive_avg_pool2d(m.a(x), output_size=1), 1), 4, dict(a=_conv(), flat=True), ("a",)),
    ("view to the channel count", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).view(x.size(0), 4), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("view by a shape tuple after contiguous",
     lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).contiguous().view((x.size(0), -1)), 4, dict(a=_conv(), flat=True),
     ("a",)),
    ("squeeze of both spatial axes", lambda m, x: F.adaptive_max_pool2d(m.a(x), 1).squeeze((2, 3)), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("sum over the spatial axes counted from the end, then dropout",
     lambda m, x: F.dropout(m.a(x).sum((-2, -1)), 0.5, training=False), 4, dict(a=_conv(), flat=True), ("a",)),
    ("flatten of [N, C] features", lambda m, x: m.a(x).amax((2, 3)).flatten(1), 4, dict(a=_conv(), flat=True), ("a",)),
    ("pooling a 1x1 map again", lambda m, x: torch.flatten(F.max_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 1), 1), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("a ReLU'd 1x1 conv added to the image (fixed channels)", lambda m, x: m.a(x + m.pre(x).relu()), 4,
     dict(a=_conv(), pre=nn.Conv2d(3, 3, 1)), ("a",)),
    ("two convolutions in a row, nothing between", lambda m, x: m.b(m.a(x)), 4, dict(a=_conv(), b=_conv(4, 4)), ("b",)),
    ("squeeze of one axis of a 1x1 map, then flatten(1)", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).squeeze(3).flatten(1),
     4, dict(a=_conv(), flat=True), ("a",)),
    ("an unused branch (computed, never read)", lambda m, x: (lambda h, _: h)(m.a(x), m.b(x)), 4, dict(a=_conv(), b=_conv()),
     ("a",)),
    ("a cast to the input's dtype", lambda m, x: m.a(x).to(x.dtype).relu(), 4, dict(a=_conv()), ("a",)),
    ("a residual connection of linear layers with other input widths",
     lambda m, x: (lambda h: m.c(m.b(h)) + m.d(h))(m.a(x).mean((2, 3))), 5,
     dict(a=_conv(), b=nn.Linear(4, 6), c=nn.Linear(6, 5), d=nn.Linear(4, 5), flat=True), ("c", "d")),
    ("average pooling of a 1x1 map with a stride and no padding",
     lambda m, x: torch.flatten(F.avg_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 1, 2), 1), 4, dict(a=_conv(), flat=True),
     ("a",)),
    ("torch.amax and torch.sum over the spatial axes", lambda m, x: torch.amax(m.a(x), (2, 3)) + torch.sum(m.b(x), dim=(-2, -1)),
     4, dict(a=_conv(), b=_conv(), flat=True), ("a", "b")),
    ("mean over one axis of a 1x1 map, then flatten(1)", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).mean(2).flatten(1), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("view(-1, C) after pooling to 1x1", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).view(-1, 4), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("a Conv1d along one spatial axis, adaptive 1d pooling, flatten",
     lambda m, x: torch.flatten(F.adaptive_avg_pool1d(m.c(m.a(x).mean(3)), 1), 1), 4,
     dict(a=_conv(), c=nn.Conv1d(4, 4, 3, padding=1), flat=True), ("c",)),
    ("in-place ReLU functions and functional dropout", lambda m, x: F.relu_(torch.relu_(m.a(x))) + F.dropout2d(m.b(x), 0.5, False),
     4, dict(a=_conv(), b=_conv()), ("a", "b")),
    ("torch.add of branches", lambda m, x: torch.add(m.a(x), m.b(x)).relu(), 4, dict(a=_conv(), b=_conv()), ("a", "b")),
    ("scaling by numbers with Tensor.mul, mul_, div and div_", lambda m, x: m.a(x).mul(2.0).mul_(3.0).div(2.0).div_(3.0), 4,
     dict(a=_conv()), ("a",)),
    ("torch.mean over the spatial axes", lambda m, x: torch.mean(m.a(x), (2, 3)), 4, dict(a=_conv(), flat=True), ("a",)),
    ("scaling by a number read from the input's shape (x.dim())", lambda m, x: m.a(x) / x.dim(), 4, dict(a=_conv()), ("a",)),
    ("an nn.Flatten module after an adaptive pooling module", lambda m, x: m.f(m.p(m.a(x))), 4,
     dict(a=_conv(), p=nn.AdaptiveAvgPool2d(1), f=nn.Flatten(), flat=True), ("a",)),
    ("the other dropout functions: dropout3d, dropout1d, alpha_dropout",
     lambda m, x: F.alpha_dropout(F.dropout1d(F.dropout3d(m.a(x), 0.5, False).mean(3), 0.5, False), 0.5, False).mean(2), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("clone, float and detach", lambda m, x: m.a(x).clone().float().detach().relu(), 4, dict(a=_conv()), ("a",)),
    ("flatten(2) of a 1x1 map, then view(N, -1)", lambda m, x: F.adaptive_avg_pool2d(m.a(x), 1).flatten(2).view(x.size(0), -1), 4,
     dict(a=_conv(), flat=True), ("a",)),
    ("average pooling of a 1x1 map with its stride and a zero padding given positionally",
     lambda m, x: torch.flatten(F.avg_pool2d(F.adaptive_avg_pool2d(m.a(x), 1), 1, 2, 0), 1), 4, dict(a=_conv(), flat=True),
     ("a",)),
]


@pytest.mark.parametrize("what,trunk,head_in,modules,tied", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_the_tracer_follows_the_channels_through_every_supported_operation(what, trunk, head_in, modules, tied):
    """Every operation here keeps the channel axis (SUPPORTED): the channels the head reads are one group, the
    output channels of every module in `tied`; the channels of the image (and of what is added to it) are never
    permuted and are no group; permuting every group keeps the function."""
    model = _Net(trunk, head_in, **modules).eval()
    spec = permutation_spec(model)
    group = spec.axes["head.weight"][1]
    assert group is not None and [spec.axes[f"{m}.weight"][0] for m in tied] == [group] * len(tied), spec.axes
    assert set(spec.points) == set(spec.groups) and all(spec.points.values()), spec.points
    assert all(gs[0] is None for n, gs in spec.axes.items() if n.startswith(("pre.", "head.")))
    state_b, perms = _randomly_permuted(model, seed=1)
    assert not torch.equal(perms[group], torch.arange(len(perms[group])))
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_logits(_with_state(model, state_b), x), _logits(model, x), atol=1e-5, rtol=0)


def test_a_module_seen_through_two_relus_is_watched_once():
    """Two ReLUs of one convolution's output show the same channels: one point (counted twice, its correlations
    would outweigh the group's other points)."""
    model = _Net(lambda m, x: (lambda h: h.relu() + torch.relu(h))(m.a(x)) + m.b(x).relu(), 4, a=_conv(), b=_conv())
    spec = permutation_spec(model)
    assert spec.points == {"a": ("a", "b")}


def test_every_relu_of_a_group_is_a_point_whether_a_module_returns_it_or_feeds_it():
    """_spec: each ReLU's output is a point, hooked at the innermost module returning it or else at the one returning its
    input. Here a ConvBN block returns its own ReLU'd output, and `torch.relu` in the trunk reads conv `c`'s output: both
    show the residual sum's channels, so activation matching sums the correlations of both points."""
    model = _Net(lambda m, x: m.cb(x) + torch.relu(m.c(x)), 4, cb=ConvBN(3, 4), c=_conv())
    spec = permutation_spec(model)
    assert spec.axes["head.weight"][1] == spec.axes["c.weight"][0] == spec.axes["cb.conv.weight"][0] is not None
    assert spec.points == {spec.axes["c.weight"][0]: ("cb", "c")}


def test_a_view_to_the_batch_and_the_inputs_own_channels_is_accepted_as_the_minus_one_form_is():
    """`x.view(x.size(0), C)` after pooling to 1x1 is the supported view written with the width instead of -1.
    Where the channels are the input's (never permuted, so of no size the tracer knows), both forms are the
    same reshape and get the same spec; a view of such a tensor that also reshapes the batch stays refused
    (`view(-1, 1)` folds the channels into the batch)."""
    def net(view, head_in=3):
        return _Net(lambda m, x: view(F.adaptive_avg_pool2d(x + m.pre(x), 1), x), head_in,
                    pre=nn.Conv2d(3, 3, 1), flat=True)

    by_width = permutation_spec(net(lambda h, x: h.view(x.size(0), 3)))
    assert by_width.axes == permutation_spec(net(lambda h, x: h.view(x.size(0), -1))).axes
    for view, head_in in ((lambda h, x: h.view(-1, 3, 1).flatten(1), 1), (lambda h, x: h.view(-1, 1), 1)):
        with pytest.raises(AlignmentUnsupported, match="may mix channels"):
            permutation_spec(net(view, head_in))


def grouped(num_classes, in_channels, width=None):
    return _Net(lambda m, x: m.b(m.a(x)), 4, a=_conv(in_channels), b=_conv(4, 4, groups=2))


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_every_built_in_model_is_permutable_at_every_width(name):
    """The spec's rules take this as given for a built-in model (orchestrator/spec/rules.py, so that checking
    a spec of built-ins builds no model): it must hold at any width a spec may give, not only the default."""
    for width in (None, 1, 2, 3, 5, 8, 16):
        assert alignment_problem(name, width) is None, (name, width)


def test_alignment_problem_names_a_user_model_the_tracer_refuses():
    assert supports_alignment("examples.custom_model:build", width=3)
    assert all(supports_alignment(name) for name, _ in BUILTINS)
    assert alignment_problem(f"{__name__}:functional") is None
    problem = alignment_problem(f"{__name__}:grouped")
    assert "cannot align _Net: node `b`" in problem and "grouped or depthwise convolution (groups=2)" in problem
    assert not supports_alignment(f"{__name__}:grouped")
    assert "unknown model 'nope'" in alignment_problem("nope")


class _Pooled(Classifier):
    """A conv of `dims` spatial axes, BN, ReLU, then `pool` (an adaptive pooling function) to size 1 and flatten(1)."""

    def __init__(self, dims, pool):
        super().__init__()
        conv, bn = {1: (nn.Conv1d, nn.BatchNorm1d), 2: (nn.Conv2d, nn.BatchNorm2d), 3: (nn.Conv3d, nn.BatchNorm3d)}[dims]
        self.conv, self.bn, self.pool, self.head = conv(2, 4, 3, padding=1), bn(4), pool, nn.Linear(4, 3)

    def features(self, x):
        return torch.flatten(self.pool(torch.relu(self.bn(self.conv(x))), 1), 1)


ADAPTIVE = [(1, F.adaptive_avg_pool1d), (1, F.adaptive_max_pool1d), (2, F.adaptive_avg_pool2d),
            (2, F.adaptive_max_pool2d), (3, F.adaptive_avg_pool3d), (3, F.adaptive_max_pool3d)]


@pytest.mark.parametrize("dims,pool", ADAPTIVE, ids=[p.__name__ for _, p in ADAPTIVE])
def test_adaptive_pooling_to_one_of_any_dimension_lets_flatten_keep_the_channels(dims, pool):
    """SUPPORTED: avg/max/adaptive pooling for Conv1d/2d/3d, and flatten once the spatial axes are 1x1. An adaptive pool
    to size 1 leaves one value per channel, so flatten(1) keeps the channel axis: the head reads the conv's group, and
    permuting it keeps the function."""
    model = _Pooled(dims, pool).eval()
    spec = permutation_spec(model)
    assert spec.axes["head.weight"] == (None, "bn") and spec.axes["conv.weight"][:2] == ("bn", None)
    state_b, perms = _randomly_permuted(model, seed=1)
    assert not torch.equal(perms["bn"], torch.arange(4))
    x = torch.randn(4, 2, *(5,) * dims, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_logits(_with_state(model, state_b), x), _logits(model, x), atol=1e-5, rtol=0)


POOLS = [(1, F.avg_pool1d), (1, F.max_pool1d), (2, F.avg_pool2d), (2, F.max_pool2d), (3, F.avg_pool3d), (3, F.max_pool3d)]


@pytest.mark.parametrize("dims,pool", POOLS, ids=[p.__name__ for _, p in POOLS])
def test_a_pool_of_kernel_one_keeps_a_larger_map_so_flatten_is_refused(dims, pool):
    """A pooling function that is not adaptive takes a kernel size, not an output size: pooling the 5-wide map of
    `_Pooled` with kernel 1 leaves it 5 wide, so flatten(1) would flatten the channels together with the positions
    and the tracer refuses it (as an adaptive pool to 1 would not be, test above)."""
    model = _Pooled(dims, pool).eval()
    x = torch.randn(2, 2, *(5,) * dims, generator=torch.Generator().manual_seed(0))
    assert torch.flatten(pool(torch.relu(model.bn(model.conv(x))), 1), 1).shape == (2, 4 * 5 ** dims)
    with pytest.raises(AlignmentUnsupported) as info:
        permutation_spec(model)
    assert info.value.node == "flatten" and "flattens the channel axis together with other axes" in str(info.value)


def test_a_linear_layer_on_the_models_input_is_refused():
    """nn.Linear acts on the last axis; on the model's input (whose axes the tracer does not know) that is the
    images' width, not channels: the tracer refuses it at that node instead of giving a spec whose group (the
    width, 6 wide) is then applied to the head's 3 input channels."""
    model = _Net(lambda m, x: torch.flatten(F.adaptive_avg_pool2d(torch.relu(m.a(x)), 1), 1), 3,
                 a=nn.Linear(6, 6), flat=True)
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 3)
    with pytest.raises(AlignmentUnsupported) as info:
        permutation_spec(model)
    assert info.value.node == "a" and "is not [N, C] features" in str(info.value)
