"""Connectivity paths between two trained models: linear and quadratic (Bezier) paths,
exact BatchNorm re-estimation, evaluation along a path, barrier heights, and training
of the Bezier control point.

State dicts are plain ``dict[str, Tensor]``. Floating tensors (weights, BN affine
parameters and running statistics) are combined; integer buffers (``num_batches_tracked``)
are taken from endpoint A. Running statistics are re-estimated by ``reset_bn`` at every
alpha anyway.

Why one module: path construction, BatchNorm re-estimation, evaluation along a path and the barrier
definitions are the one science of a path; the midpoint's training is here because it is trained on the
path it defines.
"""
from __future__ import annotations

import copy
import math
import operator
import threading
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.func import functional_call

from tasks.data import Split, iterate_batches
from tasks.evaluate import JoinedSets, autocast, evaluate_joined, resolve_precision
from tasks.seeding import derive_seed, generator
from tasks.settings.paths import (BN_DATA, BN_SAMPLES, MIDPOINT_INITS, PRECISIONS,  # noqa: F401 - declared there
                                  MidpointSettings, PathSettings)
from tasks.train import TrainState, distributed_rank, fit, prepare_batch

State = dict[str, Tensor]
BARRIER_DEFINITIONS = ("chord", "mean_endpoints", "worse_endpoint")   # `barriers`; the orchestrator's vocab.DEFINITIONS

# Seed tags, so that different uses of one seed draw independent streams.
_TAG_INIT = "midpoint-init"
_TAG_BATCHES = "midpoint-batches"
_TAG_ALPHA = "midpoint-alpha"
_TAG_BN_SAMPLE = "bn-sample"


# --------------------------------------------------------------------------- combining states

def _check_keys(*states: State) -> None:
    keys = set(states[0])
    for other in states[1:]:
        if set(other) != keys:
            missing = sorted(keys ^ set(other))
            raise KeyError(f"state dicts differ in keys: {missing[:10]}; endpoints must share one architecture")


def _combine(states: tuple[State, ...], weights: tuple[float, ...]) -> State:
    _check_keys(*states)
    out: State = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            acc = weights[0] * first
            for w, state in zip(weights[1:], states[1:]):
                acc = acc + w * state[key].to(first.device)
            out[key] = acc
        else:
            out[key] = first.clone()
    return out


def interpolate(state_a: State, state_b: State, alpha: float) -> State:
    """Linear path: (1 - alpha) A + alpha B on floating tensors; integer buffers from A."""
    return _combine((state_a, state_b), (1.0 - alpha, alpha))


def bezier(state_a: State, state_mid: State, state_b: State, alpha: float) -> State:
    """Quadratic Bezier path: (1-a)^2 A + 2a(1-a) M + a^2 B; integer buffers from A."""
    a = alpha
    return _combine((state_a, state_mid, state_b), ((1 - a) ** 2, 2 * a * (1 - a), a ** 2))


# --------------------------------------------------------------------------- BatchNorm

def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class _PooledMoments:
    """Per-channel mean and M2 over every element a BN layer saw, as a forward hook.

    During re-estimation each BN runs with momentum 1.0, so after a batch its running buffers hold
    exactly that batch's mean and unbiased variance, computed by BN's own kernel: reading them
    costs nothing (computing moments again from the activations cost 0.7-2x the forward pass; see
    bench/reset_bn_ab.py). Batches are pooled with Chan et al.'s pairwise update in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor | None = None) -> None:
        x = inputs[0]
        n = x.numel() // x.shape[1]
        self.add(n, module.running_mean.detach().double(), module.running_var.detach().double() * (n - 1))

    def add(self, n: int, mean: Tensor, m2: Tensor) -> None:
        """Pool one batch: `n` elements per channel, their mean and centred sum of squares."""
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * n / total)
        self.count = total


def reset_bn(model: nn.Module, x: Tensor, batch_size: int = 1024, precision: str = "fp32", *,
             traced: ResetPass | None = None) -> None:
    """Re-estimate every BatchNorm's running statistics on images `x`, exactly.

    One forward pass in train mode (each BN normalises with its batch's statistics, as
    torch does during re-estimation) in near-equal batches of at most `batch_size`.
    Hooks pool the inputs of each BN layer over all N samples (and spatial positions):
    running_mean = their mean, running_var = their unbiased variance (divisor count - 1,
    torch's convention). For the first BN layer this is the mean/variance of its input
    over the N samples exactly, independent of the batching; deeper layers see inputs
    normalised with per-batch statistics upstream. `num_batches_tracked` = number of batches.
    The pass runs in `precision` (`tasks.evaluate.PRECISIONS`, fp32 by default as in `evaluate`; pass the
    one used to evaluate, so the statistics match the activations seen there). Per-batch moments are BN's
    own (float32 buffers, read with momentum 1.0), pooled across batches in float64.
    Afterwards the model is in eval mode and each BN keeps its momentum. No-op without BN.
    `traced`: a `ResetPass` of `model`, which computes the same statistics (within float rounding) with less
    work on the CPU in float32; used there, ignored elsewhere.
    """
    device = next(model.parameters(), torch.empty(0)).device
    if traced is not None and traced.applies(precision, device):
        traced.run(x, batch_size)
        return
    layers = _bn_layers(model)
    if not layers:
        model.eval()
        return
    if len(x) < 2:
        raise ValueError(f"reset_bn needs at least 2 samples, got {len(x)}")
    moments = {layer: _PooledMoments() for layer in layers}
    handles = [layer.register_forward_hook(moments[layer]) for layer in layers]
    momenta = {layer: layer.momentum for layer in layers}
    chunks = torch.tensor_split(x, -(-len(x) // batch_size))      # views: no copy of the images
    labels = torch.zeros(0, dtype=torch.int64)
    context = autocast(precision, device)
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = 1.0          # buffers = this batch's statistics (read by the hooks)
        model.train()
        with torch.no_grad(), context:
            for chunk in chunks:
                batch, _ = prepare_batch(chunk, labels, device)
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
        for layer in layers:
            layer.momentum = momenta[layer]
        model.eval()
    _store_statistics(layers, [moments[layer] for layer in layers], len(chunks))


def _store_statistics(layers: list[nn.modules.batchnorm._BatchNorm], moments: list[_PooledMoments],
                      batches: int) -> None:
    """Each BN's running statistics from its pooled moments: the mean and the unbiased variance (torch's
    convention), `batches` as `num_batches_tracked` (`reset_bn`, `ResetPass`)."""
    for layer, m in zip(layers, moments):
        layer.running_mean.copy_(m.mean.to(layer.running_mean.dtype))
        layer.running_var.copy_((m.m2 / max(m.count - 1, 1)).to(layer.running_var.dtype))
        layer.num_batches_tracked.fill_(batches)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether an fx node is a plain (not in-place) ReLU of its one argument."""
    if node.op == "call_function":
        return node.target in (torch.relu, F.relu) and len(node.args) == 1 and not node.kwargs.get("inplace")
    if node.op == "call_method":
        return node.target == "relu" and len(node.args) == 1
    return node.op == "call_module" and isinstance(modules.get(node.target), nn.ReLU)


_FUSED_CONV = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)


class _ConvReLU(nn.Conv2d):
    """relu(conv(x)): on the CPU in float32 without gradients, one oneDNN primitive that applies the ReLU
    as the convolution writes its output (one pass over the activations fewer); elsewhere the two ops."""

    def forward(self, x: Tensor) -> Tensor:
        if (_FUSED_CONV is not None and x.device.type == "cpu" and x.dtype == self.weight.dtype == torch.float32
                and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
                and torch.backends.mkldnn.is_available()):
            return _FUSED_CONV(x, self.weight, self.bias, list(self.padding), list(self.stride),
                               list(self.dilation), self.groups, "relu", [None], "")
        return torch.relu(super().forward(x))


class FoldedBN:
    """An evaluation-only view of `model` with each BatchNorm that directly follows a convolution folded
    into that convolution (W' = W * g / sqrt(var + eps), b' = beta + (b - mean) * g / sqrt(var + eps)):
    the same function in eval mode, one elementwise pass per block fewer. A ReLU that directly follows
    such a convolution runs inside it (`_ConvReLU`: on the CPU in float32, one oneDNN primitive).

    Traced once with torch.fx; `refresh()` recomputes the folded weights from the model's current
    parameters and running statistics (after every `load_state_dict` + `reset_bn`). Every other
    module is shared with `model`, so `module` follows its state. Only for evaluation (no gradients)."""

    def __init__(self, model: nn.Module):
        graph_module = fx.symbolic_trace(model)
        modules = dict(graph_module.named_modules())
        self.pairs: list[tuple[nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.Conv2d]] = []
        for node in list(graph_module.graph.nodes):
            if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
                continue
            conv_node = node.args[0] if node.args else None
            if not (isinstance(conv_node, fx.Node) and conv_node.op == "call_module"
                    and isinstance(modules[conv_node.target], nn.Conv2d) and len(conv_node.users) == 1):
                continue
            conv, bn = modules[conv_node.target], modules[node.target]
            relu = next(iter(node.users)) if len(node.users) == 1 else None
            fuse = (relu is not None and _is_relu(relu, modules) and isinstance(conv.padding, tuple)
                    and conv.padding_mode == "zeros")       # the ReLU then runs inside the convolution
            folded = (_ConvReLU if fuse else nn.Conv2d)(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                conv.groups, bias=True, padding_mode=conv.padding_mode)
            folded.weight.data = torch.empty_like(conv.weight)      # same device, dtype, memory format
            folded.bias.data = torch.empty_like(bn.running_mean)
            name = f"folded_{len(self.pairs)}"                       # a new root attribute: `model` is untouched
            graph_module.add_submodule(name, folded)
            conv_node.target = name
            node.replace_all_uses_with(conv_node)
            graph_module.graph.erase_node(node)
            self.pairs.append((conv, bn, folded))
            if fuse:
                relu.replace_all_uses_with(conv_node)
                graph_module.graph.erase_node(relu)
        graph_module.graph.lint()
        graph_module.recompile()
        graph_module.delete_all_unused_submodules()   # the folded BNs (containers here are fx's own copies)
        self.module = graph_module.eval()
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> nn.Module:
        """Fold the model's current convolution weights and BN statistics; returns `module`."""
        for conv, bn, folded in self.pairs:
            weight, bias = fold_bn(conv.weight, conv.bias, bn, bn.running_mean, bn.running_var)
            folded.weight.copy_(weight)
            folded.bias.copy_(bias)
        return self.module


def fold_bn(weight: Tensor, bias: Tensor | None, bn: nn.modules.batchnorm._BatchNorm, mean: Tensor,
            var: Tensor) -> tuple[Tensor, Tensor]:
    """The weight and bias of a convolution (`weight`, `bias`: None for none) with the BatchNorm `bn` that
    follows it folded in, for BN statistics `mean` and `var`, computed in their dtype:
    W' = W * g / sqrt(var + eps), b' = beta + (b - mean) * g / sqrt(var + eps)."""
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(scale.dtype)
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.to(scale.dtype)
    if bias is not None:
        shift = shift + bias.to(scale.dtype) * scale
    return weight.to(scale.dtype) * scale.view(-1, 1, 1, 1), shift


class _BatchMoments(nn.Module):
    """One BatchNorm of `ResetPass`: train-mode BN of a batch (normalised with the batch's own statistics, as
    in `reset_bn`) with the ReLU that follows it applied in place (`relu`); only the statistics where nothing
    reads the output (`normalise` False). Returns (output, (n, mean, M2)) as `_PooledMoments.add` takes them."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, relu: bool):
        super().__init__()
        self.bn, self.relu, self.normalise = bn, relu, True

    def forward(self, y: Tensor) -> tuple[Tensor, tuple[int, Tensor, Tensor]]:
        bn = self.bn
        n = y.numel() // y.shape[1]
        mean, var = torch.zeros_like(bn.running_mean), torch.ones_like(bn.running_var)   # momentum 1.0: the batch's
        if self.normalise:
            y = F.batch_norm(y, mean, var, bn.weight, bn.bias, True, 1.0, bn.eps)
            if self.relu:
                y = y.relu_()
        else:
            torch.batch_norm_update_stats(y, mean, var, 1.0)
        return y, (n, mean.double(), var.double() * (n - 1))


class _InputBlock(_BatchMoments):
    """The first BatchNorm of `ResetPass` when it follows a convolution of the images themselves, with that
    convolution (and its ReLU). Given the moments of the batch's image patches (`patches`: count, mean [D],
    biased covariance [D, D], float64), the BN's statistics follow without convolving (mean = W mu,
    variance = w Sigma w^T per channel) and the convolution runs once with the BN folded in and the ReLU fused
    (`_ConvReLU`'s primitive); without them, convolution then `_BatchMoments`."""

    def __init__(self, conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm, relu: bool):
        super().__init__(bn, relu)
        self.conv = conv
        self.patches: tuple[int, Tensor, Tensor] | None = None
        self.folded = (_ConvReLU if relu else nn.Conv2d)(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, Tensor, Tensor]]:
        if self.patches is None:
            return super().forward(self.conv(x))
        count, mu, sigma = self.patches
        conv, bn, folded = self.conv, self.bn, self.folded
        w = conv.weight.double().flatten(1)                                  # [C, D], D in unfold's order
        shifted_mean = w @ mu                                               # the mean less the conv's bias
        var = ((w @ sigma) * w).sum(1)                                      # biased, as BN normalises with
        weight, bias = fold_bn(conv.weight, None, bn, shifted_mean, var)    # in float64; the conv's bias
        folded.weight.data = weight.to(conv.weight.dtype)                  # cancels against the mean's
        folded.bias.data = bias.to(conv.weight.dtype)
        mean = shifted_mean + conv.bias.double() if conv.bias is not None else shifted_mean
        return folded(x), (count, mean, var * count)


def _patch_moments(x: Tensor, conv: nn.Conv2d, part: int = 64) -> tuple[int, Tensor, Tensor]:
    """(count, mean [D], biased covariance [D, D]) in float64 of the patches `conv` reads from images `x`
    (`F.unfold`, zero padding), over every image and position; `part` images at a time."""
    d = conv.in_channels * math.prod(conv.kernel_size)
    total, sums, outer = 0, x.new_zeros(d, dtype=torch.float64), x.new_zeros(d, d, dtype=torch.float64)
    for piece in x.split(part):
        p = F.unfold(piece.double(), conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        p = p.transpose(1, 2).reshape(-1, d)
        total += len(p)
        sums += p.sum(0)
        outer += p.T @ p
    mean = sums / total
    return total, mean, outer / total - torch.outer(mean, mean)


class PatchMoments:
    """`_patch_moments` of image batches, kept while the very batch (same storage, offset, shape, strides and
    version; the tensor is held, so its memory is not reused) comes again: for a BN sample that every alpha of a
    path shares. Thread-safe: one per path, shared by the alphas run side by side."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[tuple, tuple[Tensor, tuple[int, Tensor, Tensor]]] = {}

    def of(self, chunk: Tensor, batch: Tensor, conv: nn.Conv2d) -> tuple[int, Tensor, Tensor]:
        """The moments of `batch` (`chunk` prepared for the model) as `conv` reads it; `chunk` names it."""
        key = (chunk.untyped_storage().data_ptr(), chunk.storage_offset(), tuple(chunk.shape), chunk.stride(),
               chunk.dtype, chunk.device, chunk._version, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        with self.lock:
            if key not in self.kept:
                self.kept[key] = (chunk, _patch_moments(batch, conv))
            return self.kept[key][1]


class ResetPass:
    """`reset_bn`'s re-estimation pass over `model`, traced once (torch.fx) into a graph that does less work
    for the same statistics, within float rounding (tests/tasks/test_paths.py):
    - the first BatchNorm, when it directly follows a convolution of the images (with `patches`, a
      `PatchMoments` for a sample that repeats): its statistics from the moments of the image patches, the
      convolution then run once with that BN folded in and its ReLU fused, instead of convolution, train-mode
      BN and ReLU, each a pass over the largest activations (`_InputBlock`);
    - every other BN train-mode on the batch as in `reset_bn`, the ReLU after it in place (`_BatchMoments`);
    - nothing runs that no BN's statistics need (the last BN's normalisation, its ReLU, the pooling, the head).
    Used by `reset_bn(..., traced=...)` on the CPU in float32 (`applies`); modules are shared with `model`."""

    def __init__(self, model: nn.Module, patches: PatchMoments | None = None):
        self.model, self.patches = model, patches
        graph_module = fx.symbolic_trace(model)
        graph = graph_module.graph
        modules = dict(graph_module.named_modules())
        images = next((n for n in graph.nodes if n.op == "placeholder"), None)
        self.layers: list[nn.modules.batchnorm._BatchNorm] = []
        self.input_block: _InputBlock | None = None
        outputs, blocks = [], []
        for node in list(graph.nodes):
            bn = modules.get(node.target) if node.op == "call_module" else None
            if not (isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats and node.args):
                continue
            relu = next(iter(node.users)) if len(node.users) == 1 else None
            relu = relu if relu is not None and _is_relu(relu, modules) else None
            source = node.args[0]
            conv = modules.get(source.target) if isinstance(source, fx.Node) and source.op == "call_module" else None
            first = (not self.layers and isinstance(conv, nn.Conv2d) and source.args and source.args[0] is images
                     and len(source.users) == 1 and conv.groups == 1 and isinstance(conv.padding, tuple)
                     and conv.padding_mode == "zeros" and isinstance(bn, nn.BatchNorm2d))
            block = _InputBlock(conv, bn, relu is not None) if first else _BatchMoments(bn, relu is not None)
            name = f"reset_{len(self.layers)}"
            graph_module.add_submodule(name, block)
            with graph.inserting_after(node):
                call = graph.call_module(name, (images,) if first else (source,))
            with graph.inserting_after(call):
                out = graph.call_function(operator.getitem, (call, 0))
            with graph.inserting_after(out):
                outputs.append(graph.call_function(operator.getitem, (call, 1)))
            if relu is not None:
                relu.replace_all_uses_with(out)
                graph.erase_node(relu)
            node.replace_all_uses_with(out)
            graph.erase_node(node)
            if first:
                graph.erase_node(source)
                self.input_block = block
            self.layers.append(bn)
            blocks.append((block, out))
        for node in [n for n in graph.nodes if n.op == "output"]:
            graph.erase_node(node)
        graph.output(tuple(outputs))
        graph.eliminate_dead_code()
        for block, out in blocks:
            block.normalise = bool(out.users)
        graph.lint()
        graph_module.recompile()
        self.module = graph_module
        self.unique = len({id(layer) for layer in self.layers}) == len(self.layers)    # no BN called twice

    def applies(self, precision: str, device: torch.device | str) -> bool:
        """Whether `reset_bn` runs this pass: on the CPU in float32 (`runs_on`; elsewhere its own, as before)."""
        return self.unique and ResetPass.runs_on(precision, device)

    @staticmethod
    def runs_on(precision: str, device: torch.device | str) -> bool:
        """Whether a `ResetPass` is used in `precision` on `device` (worth tracing a model for): CPU, float32."""
        return torch.device(device).type == "cpu" and resolve_precision(precision, device) == "fp32"

    @torch.no_grad()
    def run(self, x: Tensor, batch_size: int) -> None:
        """`reset_bn(model, x, batch_size)`: the same buffers set, the model left in eval mode."""
        model, layers = self.model, self.layers
        if not layers:
            model.eval()
            return
        if len(x) < 2:
            raise ValueError(f"reset_bn needs at least 2 samples, got {len(x)}")
        device = next(model.parameters()).device
        moments = [_PooledMoments() for _ in layers]
        chunks = torch.tensor_split(x, -(-len(x) // batch_size))
        labels = torch.zeros(0, dtype=torch.int64)
        block = self.input_block
        model.train()
        try:
            for chunk in chunks:
                batch, _ = prepare_batch(chunk, labels, device)
                if block is not None and self.patches is not None:
                    block.patches = self.patches.of(chunk, batch, block.conv)
                for pooled, stats in zip(moments, self.module(batch)):
                    pooled.add(*stats)
        finally:
            if block is not None:
                block.patches = None
            model.eval()
        _store_statistics(layers, moments, len(chunks))


# --------------------------------------------------------------------------- path evaluation

def draw_bn_sample(bn_data: Tensor, settings: PathSettings, *, seed: int, alpha_index: int,
                   bn_data_b: Tensor | None = None, alpha: float = 0.0) -> Tensor:
    """The images that re-estimate BatchNorm at the `alpha_index`-th alpha (`alpha`) of a path.

    Which images: `fixed` takes the first `bn_reset_samples` indices of the training set, the same at
    every alpha; `resample` a seeded draw without replacement of `bn_reset_samples` indices, fresh for
    each alpha (stream (seed, "bn-sample", alpha_index)), so evaluating a model against itself
    measures how far the choice of BN sample alone moves a curve.

    From which distribution (`settings.bn_data`): `clean` takes them all from `bn_data` (the clean
    training images). `endpoints` and `mix` need `bn_data_b` too (`bn_data` then holds endpoint A's
    training images, `bn_data_b` B's, the same images in the same order with each endpoint's cues):
    the first round((1 - alpha) * N) drawn indices come from A's (`endpoints`; half of them for
    `mix`), the rest from B's, so the two shares are different images."""
    size = min(settings.bn_reset_samples, len(bn_data))
    if settings.bn_sample == "fixed":
        if settings.bn_data == "clean":
            return bn_data[:size]                  # a view: no copy of the images
        index = torch.arange(size)
    else:
        index = torch.randperm(len(bn_data), generator=generator(seed, _TAG_BN_SAMPLE, alpha_index))[:size]
    index = index.to(bn_data.device)
    if settings.bn_data == "clean":
        return bn_data[index]
    if bn_data_b is None or len(bn_data_b) != len(bn_data):
        raise ValueError(f"`bn_data` {settings.bn_data!r} needs both endpoints' training images (`bn_data_b`, as "
                         "many as `bn_data`)")
    share_a = 0.5 if settings.bn_data == "mix" else 1.0 - alpha
    k = int(math.floor(share_a * size + 0.5))
    return torch.cat([bn_data[index[:k]], bn_data_b.to(bn_data.device)[index[k:]]])


def agreement(pred: Tensor, reference: Tensor) -> float:
    """Fraction of samples whose predicted class equals the reference's (1.0 for identical decisions)."""
    return float((pred == reference).double().mean())


def cue_reliance(acc: dict[str, float], num_classes: int) -> dict[str, float | None]:
    """How much one model's decisions follow the cue, from its accuracies per evaluation set:

    reliance_randimg = acc(randimg) - 1/num_classes: above chance on images whose content belongs to
        another sample but whose cue names the true label (0 for a model that ignores the cue).
    reliance_randcue = acc(nocue) - acc(randcue): what a wrong cue costs (0 for a model that ignores it).
    None where the sets are not evaluated."""
    randimg = acc["randimg"] - 1.0 / num_classes if "randimg" in acc else None
    randcue = acc["nocue"] - acc["randcue"] if "nocue" in acc and "randcue" in acc else None
    return {"reliance_randimg": randimg, "reliance_randcue": randcue}


def _num_classes(model: nn.Module) -> int:
    return int(model.head.out_features)


def _endpoints_first(alphas: list[float]) -> list[int]:
    """Indices of `alphas` in evaluation order: alpha 0 and 1 (the endpoints) first, then the rest."""
    ends = [0, len(alphas) - 1]
    return ends + [i for i in range(len(alphas)) if i not in ends]


def alpha_workers(device: torch.device | str, num_alphas: int) -> int:
    """How many alphas `evaluate_path` evaluates at once: on the CPU one per intra-op thread
    (`torch.get_num_threads()`, at most `num_alphas`), each alpha's work then running on one thread;
    elsewhere 1. Where it is more than 1, every alpha is computed with one intra-op thread, so a path's
    numbers are those of a one-thread run (BENCHMARKS.md §1). Memory: a model copy and one alpha's
    activations per worker (a Ray path task gets as many threads as its `cpus`)."""
    if torch.device(device).type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), num_alphas))


def _map_alphas(evaluate_alpha: Callable, order: list[int], scratches: list) -> dict[int, object]:
    """{i: evaluate_alpha(i, *scratch)} for every alpha index in `order`, taken in that order.

    One scratch (a model and its `FoldedBN`): in this thread. Several: one Python thread per scratch, each
    taking the next alpha until none is left, with torch's intra-op threads set to 1 while they run (restored
    afterwards): on a few CPU cores, whole alphas side by side use them better than one alpha's small
    operations split across threads (their OpenMP regions wait for every thread). The first error is raised
    once all threads have stopped."""
    if len(scratches) == 1:
        return {i: evaluate_alpha(i, *scratches[0]) for i in order}
    pending, lock = iter(order), threading.Lock()
    done: dict[int, object] = {}
    errors: list[BaseException] = []

    def work(scratch) -> None:
        torch.set_num_threads(1)          # this thread's own OpenMP/MKL setting (torch reads it per thread)
        while not errors:
            with lock:
                i = next(pending, None)
            if i is None:
                return
            try:
                done[i] = evaluate_alpha(i, *scratch)
            except BaseException as error:   # re-raised by the caller's thread below
                errors.append(error)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        threads = [threading.Thread(target=work, args=(scratch,), name=f"path-alpha-{k}", daemon=True)
                   for k, scratch in enumerate(scratches)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]
    return done


def evaluate_path(model: nn.Module, state_a: State, state_b: State, *, midpoint: State | None = None,
                  bn_data: Tensor, sets: dict[str, Split], settings: PathSettings,
                  device: torch.device | str, seed: int = 0, bn_data_b: Tensor | None = None) -> list[dict]:
    """Loss, accuracy and mechanism on every set at `settings.num_alphas` points of the path A -> B.

    Linear path, or the Bezier path through `midpoint` when given. At each alpha the state is
    loaded into `model` (used as scratch: it ends holding the alpha = 1 state, in channels_last),
    BN statistics are re-estimated once on `draw_bn_sample(bn_data, settings, seed=seed, ...)` (clean
    training images; with `settings.bn_data` `endpoints` or `mix`, `bn_data` and `bn_data_b` are A's and
    B's training images) and shared by every set, which are then evaluated together in one pass
    (`evaluate_joined`) with BN folded into the convolutions (`FoldedBN`), all in `settings.precision`; on the
    CPU in fp32 the re-estimation runs as a `ResetPass` (the same statistics within float rounding, less work;
    with a `fixed` `clean` sample the first layer's patch moments are computed once per path).
    On the CPU with several intra-op threads, `alpha_workers` alphas run side by side, each on its own copy
    of `model` and one thread; each alpha's numbers are those of a one-thread run either way.

    Rows, in ascending alpha, one per (alpha, set): {alpha, eval_set, loss, acc, n, agree_a, agree_b,
    reliance_randimg, reliance_randcue}. agree_a / agree_b: the fraction of the set's samples whose
    prediction equals that of endpoint A (alpha 0) / B (alpha 1) as evaluated on this very path (same
    BN re-estimation), so agree_a = 1 at alpha 0, agree_b = 1 at alpha 1, and agree_a at alpha 1 is the
    endpoints' mutual agreement. The reliance values (`cue_reliance`) are per alpha, the same in each
    of that alpha's rows; None when their sets are not evaluated.
    """
    device = torch.device(device)
    precision = resolve_precision(settings.precision, device)
    model.to(device, memory_format=torch.channels_last).eval()   # 1.3-1.5x faster convolutions on CPU too
    # Combine the states where the model lives: one copy to the device, not one per alpha.
    state_a, state_b = ({k: v.to(device) for k, v in s.items()} for s in (state_a, state_b))
    if midpoint is not None:
        midpoint = {k: v.to(device) for k, v in midpoint.items()}
    joined = JoinedSets(sets, device)     # every set in one pass per alpha, copied to the device once
    num_classes = _num_classes(model)
    alphas = settings.alphas()
    last = len(alphas) - 1
    final: State = {}

    def evaluate_alpha(i: int, scratch: nn.Module, folded: FoldedBN, traced: ResetPass | None) -> dict[str, dict]:
        alpha = alphas[i]
        if midpoint is None:
            state = interpolate(state_a, state_b, alpha)
        else:
            state = bezier(state_a, midpoint, state_b, alpha)
        scratch.load_state_dict(state)
        sample = draw_bn_sample(bn_data, settings, seed=seed, alpha_index=i, bn_data_b=bn_data_b, alpha=alpha)
        reset_bn(scratch, sample, settings.eval_batch_size, precision, traced=traced)
        if i == last:
            final.update({k: v.clone() for k, v in scratch.state_dict().items()})
        return evaluate_joined(folded.refresh(), joined, batch_size=settings.eval_batch_size, precision=precision,
                               predictions=True)

    models = [model] + [copy.deepcopy(model) for _ in range(alpha_workers(device, len(alphas)) - 1)]
    # every alpha re-estimates BN on the same images: their patch moments are computed once (`ResetPass`)
    patches = PatchMoments() if settings.bn_sample == "fixed" and settings.bn_data == "clean" else None
    traced = ResetPass.runs_on(precision, device)          # elsewhere `reset_bn`'s own pass: nothing to trace
    done = _map_alphas(evaluate_alpha, _endpoints_first(alphas),
                       [(m, FoldedBN(m), ResetPass(m, patches) if traced else None) for m in models])
    model.load_state_dict(final)          # the alpha = 1 state, re-estimated, ends in `model`
    pred = {i: {name: r["pred"] for name, r in results.items()} for i, results in done.items()}
    rows = []
    for i, alpha in enumerate(alphas):
        results = done[i]
        reliance = cue_reliance({name: r["acc"] for name, r in results.items()}, num_classes)
        rows += [{"alpha": alpha, "eval_set": name, "loss": float(r["loss"]), "acc": float(r["acc"]),
                  "n": int(r["n"]), "agree_a": agreement(pred[i][name], pred[0][name]),
                  "agree_b": agreement(pred[i][name], pred[last][name]), **reliance}
                 for name, r in results.items()]
    return rows


def barriers(rows: list[dict]) -> list[dict]:
    """Barrier heights per eval set from path rows ({alpha, eval_set, loss, acc}), by `BARRIER_DEFINITIONS`:

    loss  chord:          max_a [L(a) - ((1-a) L(0) + a L(1))]      (the paper's)
    loss  mean_endpoints: max_a L(a) - (L(0) + L(1)) / 2
    loss  worse_endpoint: max_a L(a) - max(L(0), L(1))             (peak above the worse endpoint, >= 0)
    acc   chord:          max_a [((1-a) A(0) + a A(1)) - A(a)]     (a drop, >= 0)
    acc   mean_endpoints: (A(0) + A(1)) / 2 - min_a A(a)
    acc   worse_endpoint: min(A(0), A(1)) - min_a A(a)             (a drop below the worse endpoint, >= 0)
    Alphas are rescaled so the smallest is 0 and the largest 1. A curve with a non-finite loss or
    accuracy gives NaN for every barrier of that set (never a finite number from non-finite work).
    """
    by_set: dict[str, dict[float, dict]] = {}
    for row in rows:
        points = by_set.setdefault(row["eval_set"], {})
        alpha = float(row["alpha"])
        if alpha in points:
            raise ValueError(f"eval set {row['eval_set']!r}: alpha {alpha} appears twice")
        points[alpha] = row
    out: list[dict] = []
    for name, points in by_set.items():
        if len(points) < 2:
            raise ValueError(f"eval set {name!r}: needs at least 2 alphas, got {sorted(points)}")
        alphas = sorted(points)
        lo, hi = alphas[0], alphas[-1]
        ts = [(a - lo) / (hi - lo) for a in alphas]
        loss = [float(points[a]["loss"]) for a in alphas]
        acc = [float(points[a]["acc"]) for a in alphas]
        values = {
            ("loss", "chord"): max(v - ((1 - t) * loss[0] + t * loss[-1]) for t, v in zip(ts, loss)),
            ("loss", "mean_endpoints"): max(loss) - 0.5 * (loss[0] + loss[-1]),
            ("loss", "worse_endpoint"): max(loss) - max(loss[0], loss[-1]),
            ("acc", "chord"): max(((1 - t) * acc[0] + t * acc[-1]) - v for t, v in zip(ts, acc)),
            ("acc", "mean_endpoints"): 0.5 * (acc[0] + acc[-1]) - min(acc),
            ("acc", "worse_endpoint"): min(acc[0], acc[-1]) - min(acc),
        }
        finite = all(math.isfinite(v) for v in loss + acc)
        for (metric, definition), value in values.items():
            out.append({"eval_set": name, "metric": metric, "definition": definition,
                        "value": value if finite else math.nan})
    return out


# --------------------------------------------------------------------------- midpoint training

def fresh_state(model: nn.Module, seed: int) -> State:
    """The model's own initialisation (every `reset_parameters`), drawn from `seed` on the CPU
    without touching the caller's global RNG state."""
    clone = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, _TAG_INIT))
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return {k: v.detach().clone() for k, v in clone.state_dict().items()}


def draw_alpha(seed: int, epoch: int, step: int) -> float:
    """The point on the curve trained at this step, a ~ U(0, 1); identical on every rank."""
    return float(torch.rand((), generator=generator(seed, _TAG_ALPHA, epoch, step)))


class BezierObjective:
    """Cross-entropy at a random point of the Bezier path A -> M -> B; only M (the module's
    parameters) receives gradients, scaled by 2a(1-a) through autograd. BN buffers are the
    module's own; in train mode BN normalises with batch statistics."""

    def __init__(self, state_a: State, state_b: State, train: Split, batch_size: int, seed: int,
                 device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.state_a = {k: v.detach().to(self.device) for k, v in state_a.items()}
        self.state_b = {k: v.detach().to(self.device) for k, v in state_b.items()}
        self.train, self.batch_size, self.seed = train, batch_size, seed

    def batches(self, epoch: int) -> Iterator[tuple[int, Tensor, Tensor]]:
        rank, world = distributed_rank()
        batches = iterate_batches(self.train, self.batch_size, seed=derive_seed(self.seed, _TAG_BATCHES),
                                  epoch=epoch, rank=rank, world_size=world)
        for step, (x, y) in enumerate(batches):
            yield step, x, y

    def curve_state(self, model: nn.Module, alpha: float) -> dict[str, Tensor]:
        a = alpha
        wa, wm, wb = (1 - a) ** 2, 2 * a * (1 - a), a ** 2
        tensors: dict[str, Tensor] = {
            name: wa * self.state_a[name] + wm * p + wb * self.state_b[name]
            for name, p in model.named_parameters()}
        tensors.update(dict(model.named_buffers()))
        return tensors

    def steps(self, model: nn.Module, batch, epoch: int) -> Iterator[tuple[Tensor, int, int]]:
        step, x, y = batch
        x, y = prepare_batch(x, y, self.device)
        alpha = draw_alpha(self.seed, epoch, step)
        logits = functional_call(model, self.curve_state(model, alpha), (x,)).float()
        loss = F.cross_entropy(logits, y)
        yield loss, int((logits.argmax(1) == y).sum()), len(y)


def train_midpoint(model: nn.Module, state_a: State, state_b: State, train: Split,
                   settings: MidpointSettings, *, seed: int, device: torch.device | str,
                   on_epoch: Callable | None = None, resume: TrainState | None = None) -> tuple[State, list[dict]]:
    """Train the Bezier control point between A and B (the paper's quadratic path).

    `model` gives the architecture and is left untouched. Returns (midpoint state on CPU,
    curve rows from `fit`: the epochs run). `resume`: a state `on_epoch` saw; training continues
    after it exactly.
    """
    if settings.init == "fresh":
        init = fresh_state(model, seed)
    else:
        init = interpolate(state_a, state_b, 0.5)
    mid = copy.deepcopy(model)
    mid.load_state_dict(init)
    mid.to(device)
    objective = BezierObjective(state_a, state_b, train, settings.batch_size, seed, device)
    curve = fit(mid, objective, mid.parameters(), settings, seed=seed, device=device, on_epoch=on_epoch,
                resume=resume)
    state = {k: v.detach().cpu().clone() for k, v in mid.state_dict().items()}
    return state, curve
