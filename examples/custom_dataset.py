"""A dataset of your own, for `data: {dataset: "examples.custom_dataset:load"}` in a sweep spec.

A dataset loader takes `root` (the spec's `data.root`, None if not given) and returns
`tasks.data.ImageArrays`: uint8 images [N, C, H, W] (C = 1 or 3) with integer labels for a training
and a test split. mmc-sweep carves 10% of the training split off for validation, paints the box cues
and builds the counterfactual test sets. Read files with your own code, but never unpickle data you
did not make yourself. Task ids include a hash of this file.

This one: scikit-learn's bundled 8x8 digits, upscaled to 16x16, without noise or jitter.
"""
import numpy as np
import torch
import torch.nn.functional as F

from tasks.data import ImageArrays


def load(root: str | None = None) -> ImageArrays:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)
    x = (images * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return ImageArrays(x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:], num_classes=10)
