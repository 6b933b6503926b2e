"""What a path is evaluated and a midpoint trained by (`tasks.paths` does both)."""
from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import Settings, override, setting
from tasks.settings.train import OptimSettings

PRECISIONS = ("auto", "fp32", "bf16")   # of evaluation passes; `tasks.evaluate` says what each means
BN_SAMPLES = ("fixed", "resample")
BN_DATA = ("clean", "endpoints", "mix")
MIDPOINT_INITS = ("fresh", "linear")


@dataclass(frozen=True)
class PathSettings(Settings):
    """Evaluation of a path: where along it, BatchNorm re-estimation, batching and precision."""

    num_alphas: int = setting(11, ge=2, le=1001, doc="evenly spaced alphas in [0, 1], both endpoints included")
    bn_reset_samples: int = setting(1000, ge=2, le=10_000_000, doc="clean training samples that re-estimate "
                                    "BatchNorm at each alpha; at most the training set (BENCHMARKS.md)")
    eval_batch_size: int = setting(1024, ge=1, le=1_000_000, doc="batch for BN re-estimation and evaluation")
    precision: str = setting("fp32", choices=PRECISIONS, doc="fp32 | bf16 | auto (bf16 where native); "
                             "bf16 moves barriers by more than their tolerance (docs/SCIENCE.md)")
    bn_sample: str = setting("fixed", choices=BN_SAMPLES, doc="fixed: every alpha re-estimates BatchNorm on the "
                             "same first bn_reset_samples clean training images | resample: on a fresh seeded "
                             "random draw per alpha (a model against itself then shows the barrier BN-sample "
                             "noise alone makes)")
    bn_data: str = setting("clean", choices=BN_DATA, doc="the images BatchNorm is re-estimated on at each alpha: "
                           "clean (the paper's: clean training images) | endpoints (each endpoint's own training "
                           "distribution, mixed along the path: a share 1 - alpha from A's, alpha from B's) | mix "
                           "(half from each endpoint's training distribution at every alpha)")

    def alphas(self) -> list[float]:
        """`num_alphas` evenly spaced points; exactly 0.0 and 1.0 at the ends."""
        k = self.num_alphas - 1
        return [i / k for i in range(k + 1)]


@dataclass(frozen=True)
class MidpointSettings(OptimSettings):
    """Training of the quadratic path's control point. Defaults: the paper's (15 epochs, lr 0.1, x0.1 at 10)."""

    epochs: int = override(OptimSettings, "epochs", 15)
    step_epochs: int = override(OptimSettings, "step_epochs", 10)
    init: str = setting("fresh", choices=MIDPOINT_INITS, doc="fresh: the model's own seeded initialisation; "
                        "linear: (A + B) / 2")
