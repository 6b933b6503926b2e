"""What an alignment is set by (`tasks.align` computes it)."""
from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import Settings, setting


def alignment_names() -> tuple[str, ...]:
    """The alignment methods, `tasks.align.ALIGNMENTS` (torch code: imported on the first call, when a spec is
    checked, so that this module stays free of torch)."""
    from tasks.align import ALIGNMENTS

    return tuple(ALIGNMENTS)


@dataclass(frozen=True)
class AlignSettings(Settings):
    samples: int = setting(500, ge=2, le=1_000_000, doc="clean training images whose activations are "
                           "matched (activation matching); at most the training set")
