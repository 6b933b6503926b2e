"""Classifiers: the paper's VGG-13 variant, CIFAR ResNet-18 and a small CNN for fast CPU runs.

Every conv is bias-free and followed by BatchNorm2d (+ ReLU); module names are short and regular
(`blocks.3.conv`, `blocks.3.bn`, `stem.conv`, `blocks.5.shortcut.bn`, `head`). Permutation specs are
traced from the forward passes (`tasks.permutation`), for these models and for models of your own.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from tasks import plugins
from tasks.permutation import trace_permutation_spec
from tasks.settings.models import BUILT_IN_MODELS, BUILT_IN_WIDTHS, ModelSettings, model_identity  # noqa: F401 - declared there (torch-free)


class ConvBN(nn.Module):
    """conv3x3 (or 1x1) without bias -> BatchNorm2d -> optional ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return torch.relu(x) if self.relu else x


class Classifier(nn.Module):
    """Backbone + global average pool (`features`) + linear `head`."""

    head: nn.Linear

    def trunk(self, x: Tensor) -> Tensor:  # [N, D, H, W]
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [N, D]: the trunk's output averaged over positions."""
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class PlainCNN(Classifier):
    """A chain of ConvBN blocks `blocks.i` given as (width, stride) pairs; used by vgg13 and small_cnn."""

    def __init__(self, layout: Sequence[tuple[int, int]], num_classes: int, in_channels: int):
        super().__init__()
        blocks, c_in = [], in_channels
        for c_out, stride in layout:
            blocks.append(ConvBN(c_in, c_out, stride))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)

    def trunk(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class BasicBlock(nn.Module):
    """ResNet basic block: conv1/bn1/relu, conv2/bn2, + shortcut (identity or 1x1 ConvBN), relu."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        needs_projection = stride != 1 or c_in != c_out
        self.shortcut = ConvBN(c_in, c_out, stride, kernel=1, relu=False) if needs_projection else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """CIFAR ResNet: 3x3 stride-1 `stem`, no max-pool, flat `blocks.k` of BasicBlocks, GAP, `head`."""

    def __init__(self, stage_blocks: Sequence[int], width: int, num_classes: int, in_channels: int):
        super().__init__()
        self.stem = ConvBN(in_channels, width)
        blocks, c_in = [], width
        for stage, n_blocks in enumerate(stage_blocks):
            c_out = width * 2**stage
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)

    def trunk(self, x: Tensor) -> Tensor:
        return self.blocks(self.stem(x))


def vgg13(num_classes: int, in_channels: int = 3, width: int | None = None) -> PlainCNN:
    """The paper's VGG-13: 10 ConvBN blocks, stride 2 instead of max-pool; `width` is the base (64)."""
    w = width or BUILT_IN_WIDTHS["vgg13"]
    layout = [(w, 1), (w, 2), (2 * w, 1), (2 * w, 2), (4 * w, 1), (4 * w, 2),
              (8 * w, 1), (8 * w, 2), (8 * w, 1), (8 * w, 1)]
    return PlainCNN(layout, num_classes, in_channels)


def resnet18(num_classes: int, in_channels: int = 3, width: int | None = None) -> ResNet:
    """CIFAR ResNet-18: BasicBlocks [2, 2, 2, 2] of widths w, 2w, 4w, 8w; `width` is the base (64)."""
    return ResNet((2, 2, 2, 2), width or BUILT_IN_WIDTHS["resnet18"], num_classes, in_channels)


def small_cnn(num_classes: int, in_channels: int = 3, width: int | None = None) -> PlainCNN:
    """Four ConvBN blocks of widths w, 2w (stride 2), 2w, 4w (stride 2); w = 16 by default."""
    w = width or BUILT_IN_WIDTHS["small_cnn"]
    return PlainCNN([(w, 1), (2 * w, 2), (2 * w, 1), (4 * w, 2)], num_classes, in_channels)


# The built-in builders, by name: each name of `tasks.settings.models.BUILT_IN_MODELS` (what a spec is checked
# against, without torch) is the function of that name above.
MODELS: dict[str, Callable[..., Classifier]] = {name: globals()[name] for name in BUILT_IN_MODELS}


def _build_cheaply(name: str, width: int | None, num_classes: int, in_channels: int) -> nn.Module:
    """The model `name`, built on the meta device (no weights drawn), or on the CPU for a builder that
    needs real tensors."""
    try:
        with torch.device("meta"):
            return build_model(name, num_classes, in_channels, width)
    except Exception:  # noqa: BLE001 - a builder that needs real tensors: build it on the CPU
        return build_model(name, num_classes, in_channels, width, seed=0)


def build_problem(name: str, width: int | None = None, *, num_classes: int = 10, in_channels: int = 3) -> str | None:
    """Why the model `name` (a model of your own: an import path or an entry point) builds no classifier
    for this data, or None: checked once when a spec is planned, not in every task of the run. Only a
    builder that is none (a signature that does not take (num_classes, in_channels, width), a return that
    is no Classifier: TypeError, ValueError) is refused here; any other failure (weights it fetches, a
    device it needs) may be the driver's alone, and is left to the workers that build it."""
    try:
        _build_cheaply(name, width, num_classes, in_channels)
    except (TypeError, ValueError) as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - see above: the run says it, from where the model is built
        return None
    return None


def alignment_problem(name: str, width: int | None = None, *, num_classes: int = 10,
                      in_channels: int = 3) -> str | None:
    """Why `tasks.align` cannot permute the model `name` (built in or your own), or None when it can:
    the model is built (on the meta device: no weights are drawn) and its forward traced
    (`tasks.permutation`). A builder that fails otherwise than TypeError or ValueError here (a device it needs)
    is left to the run, as in `build_problem`: the aligned path's task builds it where it runs, and says why."""
    try:
        model = _build_cheaply(name, width, num_classes, in_channels)
    except (ValueError, TypeError) as exc:   # a name that builds no classifier
        return str(exc)
    except Exception:  # noqa: BLE001 - see above
        return None
    try:
        trace_permutation_spec(model)
    except (ValueError, TypeError) as exc:   # AlignmentUnsupported
        return str(exc)
    return None


def supports_alignment(name: str, width: int | None = None) -> bool:
    """Whether `tasks.align` can permute models named `name`: the built-ins, and a model of your own
    whose forward the permutation tracer accepts (`alignment_problem` says why not)."""
    return alignment_problem(name, width) is None


def build_model(name: str, num_classes: int, in_channels: int = 3, width: int | None = None,
                *, seed: int | None = None) -> Classifier:
    """Build a registered model. With `seed`, the initialisation is drawn from that seed alone
    (the global RNG state is left untouched); without it, from the global RNG."""
    if name not in MODELS and not plugins.is_import_path(name) and name not in plugins.plugin_names(plugins.MODEL_GROUP):
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(sorted(MODELS))}, an import path `package.module:build`, "
                         f"or an entry point of group {plugins.MODEL_GROUP}")
    builder = MODELS.get(name) or plugins.resolve(name, plugins.MODEL_GROUP)
    if width is not None and width < 1:
        raise ValueError(f"`width` must be a positive integer or None, got {width!r}")
    if seed is None:
        return _checked(builder(num_classes, in_channels, width), name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _checked(builder(num_classes, in_channels, width), name)


def _checked(model: nn.Module, name: str) -> nn.Module:
    """A model must be a classifier with `features(x)` (penultimate features) and a linear `head`
    (last-layer retraining and CBFT use both)."""
    if not (isinstance(model, nn.Module) and callable(getattr(model, "features", None))
            and isinstance(getattr(model, "head", None), nn.Linear)):
        raise TypeError(f"model {name!r} must return an nn.Module with a `features(x)` method and an nn.Linear "
                        "`head` (forward = head(features(x))); subclass tasks.models.Classifier")
    return model
