"""A model of your own, for `models: [examples.custom_model:build]` in a sweep spec.

A model builder takes (num_classes, in_channels, width) and returns a classifier with a
`features(x)` method (penultimate features, used by last-layer retraining and CBFT) and an
`nn.Linear` `head`; subclassing `tasks.models.Classifier` gives `forward = head(features(x))`.
Task ids include a hash of this file, so editing it reruns what depends on it. Aligned paths work too:
the permutation spec is traced from `forward` (tasks/permutation.py: convs, linear layers, BatchNorm,
ReLU, pooling, residual additions); a model using anything else (grouped convs, attention, LayerNorm,
concatenation, ...) is refused with the operation named (`tasks.models.alignment_problem`).
"""
from torch import Tensor, nn

from tasks.models import Classifier


class WideShallow(Classifier):
    """Two 5x5 convolutions with BatchNorm, then global average pooling."""

    def __init__(self, num_classes: int, in_channels: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.head = nn.Linear(2 * width, num_classes)

    def trunk(self, x: Tensor) -> Tensor:
        return self.body(x)


def build(num_classes: int, in_channels: int, width: int | None = None) -> Classifier:
    return WideShallow(num_classes, in_channels, width or 16)
