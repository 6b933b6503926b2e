"""Loss and accuracy of a classifier on a split (eval mode, no gradients), and the evaluation precision.

Every rank of a distributed run evaluates the whole split (no sharding), so all ranks agree.

Precision of evaluation passes (`PRECISIONS`): "fp32"; "bf16" (autocast: matmuls and convolutions in
bfloat16, accumulation and the loss in float32); "auto" = bf16 where the device computes it natively
(CUDA GPUs with bf16 support; CPUs with AVX512-BF16 or AMX), fp32 elsewhere. bf16 evaluates 2.5-4x
faster on such CPUs, but it moves barriers by more than their tolerance (23 of 192 barrier values of a digits
sweep beyond max(0.005, 2%), docs/SCIENCE.md), so fp32 is the default, of `paths.precision` and of these
functions: a trained model's evaluation rows are fp32 on every machine.
Training always runs in float32 on CPU (bf16 autocast on CUDA, see `tasks.train`). Images and models
are channels_last everywhere (`tasks.train.prepare_batch`).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.data import Split
from tasks.settings.paths import PRECISIONS
from tasks.train import prepare_batch



def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 matmuls/convolutions natively (so bf16 is faster, not emulated)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":   # torch's own CPU feature probes (private, hence the getattr)
        probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(probe() for probe in probes if probe is not None)
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16": `precision` itself, or for "auto" what `device` runs natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not known; allowed: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(f"precision 'bf16' on {torch.device(device)}, which has no native bfloat16: it is emulated "
                      "and slower than fp32 (use 'auto' or 'fp32')", RuntimeWarning, stacklevel=2)
    return precision


def autocast(precision: str, device: torch.device | str):
    """The autocast context for a resolved `precision` ("fp32": none)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 1024,
             device: torch.device | str = "cpu", precision: str = "fp32", predictions: bool = False) -> dict:
    """{loss: mean cross-entropy, acc, n} of `model` on `split` (loss and acc NaN when any logit is
    NaN or inf, or the loss overflows), in order, in batches of `batch_size`;
    with `predictions`, also `pred`: the predicted class of every sample (int64 [n] on `device`, in
    split order), e.g. to compare two models' decisions sample by sample.

    The model is moved to `device` and left there (channels_last); its train/eval mode is
    restored afterwards. `precision`: one of `PRECISIONS` (see the module docstring)."""
    n = len(split)
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    if batch_size < 1:
        raise ValueError(f"`batch_size` {batch_size} is not allowed; must be >= 1")
    device = torch.device(device)
    context = autocast(precision, device)
    model.to(device, memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    finite = torch.ones((), dtype=torch.bool, device=device)
    predicted = []
    try:
        for start in range(0, n, batch_size):
            x, y = prepare_batch(split.x[start:start + batch_size], split.y[start:start + batch_size], device)
            with context:
                logits = model(x)
            logits = logits.float()
            finite &= torch.isfinite(logits).all()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            guess = logits.argmax(1)
            correct += (guess == y).sum()
            if predictions:
                predicted.append(guess)
    finally:
        model.train(was_training)
    # a non-finite logit anywhere makes the whole evaluation NaN: never a finite accuracy from
    # non-finite work (argmax of NaN logits still names a class)
    ok = bool(finite) and math.isfinite(float(loss_sum))   # finite logits so large that the loss overflows: too
    result = {"loss": float(loss_sum) / n if ok else math.nan, "acc": int(correct) / n if ok else math.nan, "n": n}
    if predictions:
        result["pred"] = torch.cat(predicted)
    return result


class JoinedSets:
    """Several named splits read as one, to evaluate them all in one pass per model (`evaluate_joined`):
    fewer, fuller batches than one pass per split. The images stay where and as they are stored (moved to
    `device` once); each batch, which may span two splits, is made float32 channels_last when it is read."""

    def __init__(self, sets: dict[str, Split], device: torch.device | str):
        if not sets or any(len(split) == 0 for split in sets.values()):
            raise ValueError("cannot evaluate on an empty split")
        self.device = torch.device(device)
        self.names = list(sets)
        self.sizes = [len(split) for split in sets.values()]
        self.parts = [split.x.to(self.device) for split in sets.values()]
        self.y = torch.cat([split.y.to(self.device) for split in sets.values()])

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """The images in order, in near-equal batches of at most `batch_size`."""
        total = len(self.y)
        bounds = [len(chunk) for chunk in torch.tensor_split(torch.arange(total), -(-total // batch_size))]
        starts = _starts(self.sizes)
        begin = 0
        for size in bounds:
            end = begin + size
            pieces = [x[max(begin - s, 0):min(end - s, len(x))] for x, s in zip(self.parts, starts)
                      if s < end and s + len(x) > begin]
            x, _ = prepare_batch(pieces[0] if len(pieces) == 1 else torch.cat(pieces), self.y[:0], self.device)
            yield x
            begin = end


@torch.no_grad()
def evaluate_joined(model: nn.Module, joined: JoinedSets, *, batch_size: int = 1024, precision: str = "fp32",
                    predictions: bool = False) -> dict[str, dict]:
    """`evaluate` on every split of `joined`, in one pass over their concatenation in near-equal batches
    of at most `batch_size`: {name: {loss, acc, n[, pred]}}, each as `evaluate` gives it for that split
    alone, up to float rounding (here each sample's loss is added in float64, where `evaluate` adds each
    batch's float32 sum in float64; NaN loss and acc for a split with a non-finite logit).
    The model runs in eval mode on `joined.device` as it is (move it there first)."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` {batch_size} is not allowed; must be >= 1")
    was_training = model.training
    model.eval()
    parts, guesses, finite = [], [], []
    try:
        for x in joined.batches(batch_size):          # made outside autocast (it would refuse float16 pieces)
            with autocast(precision, joined.device):
                logits = model(x)
            logits = logits.float()
            finite.append(torch.isfinite(logits).all(1))
            guesses.append(logits.argmax(1))
            parts.append(logits)
    finally:
        model.train(was_training)
    logits = torch.cat(parts)
    loss = F.cross_entropy(logits, joined.y, reduction="none").double()
    guess, ok = torch.cat(guesses), torch.cat(finite)
    correct = guess == joined.y
    out = {}
    for name, start, n in zip(joined.names, _starts(joined.sizes), joined.sizes):
        part = slice(start, start + n)
        total = float(loss[part].sum())
        good = bool(ok[part].all()) and math.isfinite(total)   # a loss that overflowed from finite logits: too
        result = {"loss": total / n if good else math.nan,
                  "acc": int(correct[part].sum()) / n if good else math.nan, "n": n}
        if predictions:
            result["pred"] = guess[part]
        out[name] = result
    return out


def _starts(sizes: list[int]) -> list[int]:
    return [sum(sizes[:i]) for i in range(len(sizes))]


def evaluate_sets(model: nn.Module, sets: dict[str, Split], **kw) -> list[dict]:
    """`evaluate` on each named split: rows {eval_set, loss, acc, n}, in the order of `sets`."""
    return [{"eval_set": name, **evaluate(model, split, **kw)} for name, split in sets.items()]
