"""What an alignment is set by (`tasks.align` computes it)."""
from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import Settings, setting


ALIGNMENT_NAMES = ("activation", "weight")   # the methods of `tasks.align.ALIGNMENTS`, named here without torch


@dataclass(frozen=True)
class AlignSettings(Settings):
    samples: int = setting(500, ge=2, le=1_000_000, doc="clean training images whose activations are "
                           "matched (activation matching); at most the training set")
