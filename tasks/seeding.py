"""Explicit, stable seeds: every random draw in `tasks/` comes from a seeded `torch.Generator`.

`derive_seed(seed, epoch, step)` combines integers into one 63-bit seed through sha256, so
the same parts give the same stream on every machine, process and torch version, and
nearby parts (seed 1 vs 2, epoch 3 vs 4) give unrelated streams.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_SEED_BITS = 63


def _encode_part(part: int | str) -> str:
    # bool is an int subclass; refuse it so `True` and `1` cannot silently collide.
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise TypeError(
            f"seed part {part!r} has type {type(part).__name__}; must be int (or str for a named stream)"
        )
    # Type-tagged so that 5 and "5" give different seeds.
    return f"i{part}" if isinstance(part, int) else f"s{part}"


def derive_seed(*parts: int | str) -> int:
    """Stable 63-bit seed from integers (str parts name a stream, e.g. `derive_seed(seed, "randcue")`)."""
    text = ",".join(_encode_part(p) for p in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _SEED_BITS)


def generator(*parts: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A `torch.Generator` on `device` seeded with `derive_seed(*parts)`."""
    import torch   # here, not at the top: the driver derives task seeds (orchestrator/graph) without torch

    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(*parts))
    return gen
