"""Loss and accuracy of a classifier on a split (eval mode, no gradients, bf16 autocast on CUDA only).

Every rank of a distributed run evaluates the whole split (no sharding), so all ranks agree.
"""
from __future__ import annotations

import contextlib
import torch
import torch.nn.functional as F
from torch import nn

from tasks.data import Split
from tasks.train import prepare_batch


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 1024,
             device: torch.device | str = "cpu") -> dict:
    """{loss: mean cross-entropy, acc, n} of `model` on `split`, in order, in batches of `batch_size`.

    The model is moved to `device` and left there; its train/eval mode is restored afterwards."""
    n = len(split)
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    if batch_size < 1:
        raise ValueError(f"`batch_size` {batch_size} is not allowed; must be >= 1")
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        model.to(device, memory_format=torch.channels_last)
    else:
        model.to(device)
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for start in range(0, n, batch_size):
            x, y = prepare_batch(split.x[start:start + batch_size], split.y[start:start + batch_size], device)
            with autocast:
                logits = model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    return {"loss": float(loss_sum) / n, "acc": int(correct) / n, "n": n}


def evaluate_sets(model: nn.Module, sets: dict[str, Split], **kw) -> list[dict]:
    """`evaluate` on each named split: rows {eval_set, loss, acc, n}, in the order of `sets`."""
    return [{"eval_set": name, **evaluate(model, split, **kw)} for name, split in sets.items()]
