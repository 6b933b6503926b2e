"""Permutation alignment of two models of the same architecture (activation and weight matching).

A `PermutationSpec` says, for every permutable state entry, which permutation group acts on each
axis (as in git re-basin), and which modules' post-ReLU outputs carry each group's channels.
Permutations map B's channels onto A's: the aligned B has `w_b.index_select(axis, perm)`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from tasks.settings.align import ALIGNMENT_NAMES, AlignSettings  # noqa: F401 - declared there (torch-free)
from tasks.models import Classifier
from tasks.permutation import AlignmentUnsupported, PermutationSpec, trace_permutation_spec

Perms = dict[str, Tensor]
_RUNNING_STATS = ("running_mean", "running_var")


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The permutation spec of `model` (built-in or your own), derived by tracing its forward
    (tasks/permutation.py); raises `AlignmentUnsupported` for a model the tracer cannot permute."""
    return trace_permutation_spec(model)


def permute_state(state: dict[str, Tensor], spec: PermutationSpec, perms: Perms) -> dict[str, Tensor]:
    """A new state dict with every axis of group g re-indexed by perms[g] (groups missing from
    `perms` stay as they are). Entries outside the spec are shared, not copied."""
    out = dict(state)
    for name, axis_groups in spec.axes.items():
        tensor = state[name]
        for axis, group in enumerate(axis_groups):
            if group is not None and group in perms:
                tensor = tensor.index_select(axis, perms[group].to(tensor.device))
        out[name] = tensor
    return out


def _solve(score: np.ndarray) -> Tensor:
    """The permutation p maximising sum_i score[i, p[i]]."""
    from scipy.optimize import linear_sum_assignment   # here: every task's process imports this module (0.25 s)

    _, cols = linear_sum_assignment(score, maximize=True)
    return torch.as_tensor(cols, dtype=torch.long)


class _CorrelationStats:
    """Streaming sums for the correlation of two [M, C] activation matrices, in float64."""

    def __init__(self) -> None:
        self.n = 0
        self.sums: list[Tensor] | None = None

    def update(self, a: Tensor, b: Tensor) -> None:
        a, b = a.double(), b.double()
        parts = [a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b]
        self.sums = parts if self.sums is None else [s + p for s, p in zip(self.sums, parts)]
        self.n += a.shape[0]

    def correlation(self, eps: float = 1e-8) -> Tensor:
        sa, sb, saa, sbb, sab = (s / self.n for s in self.sums)
        cov = sab - sa[:, None] * sb[None, :]
        std_a = (saa - sa**2).clamp_min(0).sqrt()
        std_b = (sbb - sb**2).clamp_min(0).sqrt()
        return cov / (std_a[:, None] * std_b[None, :] + eps)


def _channels_last_rows(t: Tensor) -> Tensor:
    """[N, C, H, W] (or [N, C]) -> [N*H*W, C]."""
    return t.movedim(1, -1).reshape(-1, t.shape[1])


@torch.no_grad()
def align_by_activations(model_a: Classifier, model_b: Classifier, x: Tensor,
                         batch_size: int = 512) -> Perms:
    """Per group, correlate both models' post-ReLU channels over all samples and positions of `x`
    (eval mode) and match them by linear assignment. Groups seen at several points (a ResNet stage)
    sum the correlation matrices of those points."""
    spec = permutation_spec(model_a)
    names = sorted({m for mods in spec.points.values() for m in mods})
    stats = {m: _CorrelationStats() for m in names}
    modes = (model_a.training, model_b.training)
    model_a.eval(), model_b.eval()
    try:
        for start in range(0, len(x), batch_size):
            outs = [_capture(model, names, x[start:start + batch_size]) for model in (model_a, model_b)]
            for m in names:
                stats[m].update(_channels_last_rows(outs[0][m]), _channels_last_rows(outs[1][m]))
    finally:
        model_a.train(modes[0]), model_b.train(modes[1])
    perms = {}
    for group, mods in spec.points.items():
        score = sum(stats[m].correlation() for m in mods)
        perms[group] = _solve(score.cpu().numpy())
    return perms


def _capture(model: nn.Module, names: list[str], x: Tensor) -> dict[str, Tensor]:
    """ReLU'd outputs of the named modules for one batch."""
    device = next(model.parameters()).device
    outputs: dict[str, Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [modules[m].register_forward_hook(
        lambda _mod, _inp, out, m=m: outputs.__setitem__(m, torch.relu(out))) for m in names]
    try:
        model(x.to(device).float())
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def _matched_names(spec: PermutationSpec, group: str) -> list[tuple[str, int]]:
    return [(n, ax) for n, ax in spec.groups[group] if not n.endswith(_RUNNING_STATS)]


def align_by_weights(state_a: dict[str, Tensor], state_b: dict[str, Tensor], spec: PermutationSpec,
                     max_iter: int = 100, seed: int = 0) -> Perms:
    """Git re-basin weight matching: coordinate descent over groups (random order per sweep),
    each a linear assignment maximising sum <w_a, P w_b> over the weights and BN affine
    parameters it touches, until a sweep brings no improvement. BN running stats are left out.
    Computed in float64 on the device of `state_a`; the perms come back on the CPU."""
    device = state_a[next(iter(spec.axes))].device
    a = {k: v.detach().to(device, torch.float64) for k, v in state_a.items() if k in spec.axes}
    b = {k: v.detach().to(device, torch.float64) for k, v in state_b.items() if k in spec.axes}
    perms = {g: torch.arange(a[name].shape[axis], device=device) for g, ((name, axis), *_) in spec.groups.items()}
    gen = torch.Generator().manual_seed(seed)
    groups = list(spec.groups)
    for _ in range(max_iter):
        improved = False
        for i in torch.randperm(len(groups), generator=gen).tolist():
            group = groups[i]
            n = len(perms[group])
            score = torch.zeros(n, n, dtype=torch.float64, device=device)
            for name, axis in _matched_names(spec, group):
                w_b = b[name]
                for other, g in enumerate(spec.axes[name]):
                    if other != axis and g is not None:
                        w_b = w_b.index_select(other, perms[g])
                score += a[name].movedim(axis, 0).reshape(n, -1) @ w_b.movedim(axis, 0).reshape(n, -1).T
            new = _solve(score.cpu().numpy()).to(device)
            rows = torch.arange(n, device=device)
            gain = score[rows, new].sum() - score[rows, perms[group]].sum()
            if gain > 1e-12 * max(1.0, score.abs().max().item()):
                perms[group], improved = new, True
        if not improved:
            break
    return {g: p.cpu() for g, p in perms.items()}


def _by_activation(model_a: Classifier, model_b: Classifier, x: Tensor, seed: int) -> Perms:
    return align_by_activations(model_a, model_b, x)


def _by_weight(model_a: Classifier, model_b: Classifier, x: Tensor | None, seed: int) -> Perms:
    spec = permutation_spec(model_a)
    return align_by_weights(model_a.state_dict(), model_b.state_dict(), spec, seed=seed)


ALIGNMENTS: dict[str, Callable[[Classifier, Classifier, Tensor | None, int], Perms]] = {
    name: globals()[f"_by_{name}"] for name in ALIGNMENT_NAMES}   # method -> _by_<method>


def align(model_a: Classifier, model_b: Classifier, method: str, x: Tensor | None,
          seed: int = 0) -> dict[str, Tensor]:
    """The state dict of `model_b` permuted onto `model_a` (same function as `model_b`).
    `x` (data for activation matching) is unused by weight matching."""
    if method not in ALIGNMENTS:
        raise ValueError(f"unknown alignment method {method!r}; allowed: {', '.join(sorted(ALIGNMENTS))}")
    if method == "activation" and x is None:
        raise ValueError("alignment `activation` needs data `x`; pass training images [N, C, H, W]")
    perms = ALIGNMENTS[method](model_a, model_b, x, seed)
    return permute_state(model_b.state_dict(), permutation_spec(model_a), perms)
