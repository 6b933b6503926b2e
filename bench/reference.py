"""The paper's ORIGINAL path-evaluation procedure, rewritten as a benchmark baseline (not for science).

What the public reference implementation does, and what this module reproduces:
- a per-sample `torch.utils.data.Dataset` that builds every image in Python in `__getitem__`:
  uint8 HWC -> float CHW normalised with mean/std 0.5 (ToTensor + Normalize), the box cue pasted per
  sample, random cue classes / random other images drawn with `np.random` per sample. Two versions
  (`PIPELINES`): "torchvision" does per sample what the reference's code does (a torchvision-style
  dataset: `PIL.Image.fromarray`, ToTensor, Normalize; a wrapper drawing the box colour with
  matplotlib's `hsv_to_rgb` into a zero mask composed as `m + (m == 0).all(0) * image`; randimg
  fetches a second sample through the whole pipeline) — no torchvision install needed, the
  transforms' steps are written out; "lean" (`CueDataset`) is the cheapest per-sample code we could
  write for the same images, to show how much of the gap is the pipeline and how much the schedule;
- a standard `DataLoader` (batch 256, default collate);
- at every alpha and separately for each of the four evaluation sets: a fresh model, the interpolated
  state loaded, BatchNorm statistics re-estimated with momentum 0.1 by a train-mode pass over the
  whole (clean) training set, then the evaluation pass.
mmc-sweep's `tasks.paths.evaluate_path` instead re-estimates BN exactly on N samples once per alpha,
shares it across the four sets, and reads tensors that are already on the device.
"""
from __future__ import annotations

from typing import Callable

import matplotlib.colors
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from tasks.paths import interpolate

EVAL_MODES = ("nocue", "cue", "randcue", "randimg")


class CueDataset(Dataset):
    """One image per `__getitem__`, built in Python: normalise, maybe swap the image, paste a cue.

    mode: "clean" (training images, no cue), "train" (cue on `cued[i]`), or one of EVAL_MODES.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, mode: str, *, num_classes: int,
                 corners: np.ndarray, colours: np.ndarray, raw_uint8: bool, cued: np.ndarray | None = None,
                 box: int = 3):
        allowed = ("clean", "train", *EVAL_MODES)
        if mode not in allowed:
            raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(allowed)}")
        self.images, self.labels, self.mode = images, labels, mode
        self.num_classes, self.corners, self.colours = num_classes, corners, colours
        self.raw_uint8, self.cued, self.box = raw_uint8, cued, box

    def __len__(self) -> int:
        return len(self.labels)

    def _image(self, index: int) -> Tensor:
        img = self.images[index]
        if self.raw_uint8:       # ToTensor (HWC uint8 -> CHW float in [0, 1]) + Normalize(0.5, 0.5)
            x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255)
            return (x - 0.5) / 0.5
        return torch.from_numpy(img.copy())

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        label = int(self.labels[index])
        cue_label: int | None = None
        source = index
        if self.mode == "train" and self.cued is not None and self.cued[index]:
            cue_label = label
        elif self.mode == "cue":
            cue_label = label
        elif self.mode == "randcue":
            cue_label = int(np.random.randint(self.num_classes))
        elif self.mode == "randimg":
            source = int(np.random.randint(len(self.labels) - 1))
            source += source >= index          # any image but this one
            cue_label = label
        x = self._image(source)
        if cue_label is not None:
            r, c = (int(v) for v in self.corners[cue_label % 10])
            colour = torch.from_numpy(np.asarray(self.colours[cue_label], dtype=np.float32))
            x[:, r:r + self.box, c:c + self.box] = colour[:, None, None]
        return x, label


def _to_tensor(pic: Image.Image) -> Tensor:
    """torchvision.transforms.functional.to_tensor for a PIL image, step by step."""
    img = torch.from_numpy(np.array(pic, {"F": np.float32}.get(pic.mode, np.uint8), copy=True))
    img = img.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255) if img.dtype == torch.uint8 else img


def _normalize(tensor: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """torchvision.transforms.functional.normalize, step by step."""
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
    if (std_t == 0).any():
        raise ValueError("std evaluated to zero")
    return tensor.sub_(mean_t.view(-1, 1, 1)).div_(std_t.view(-1, 1, 1))


class ImageFolderStyle(Dataset):
    """What `torchvision.datasets.CIFAR10(transform=Compose([ToTensor(), Normalize(m, s)]))` does per
    sample: the stored array -> PIL image -> tensor -> normalised. uint8 HWC images use mean = std = 0.5
    (the reference's); float32 CHW images (the built-in digits, already normalised) go through PIL's
    "F" mode and a Normalize that leaves them as they are (mean 0, std 1): the same steps, same values."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, raw_uint8: bool):
        self.images, self.labels, self.raw_uint8 = images, labels, raw_uint8
        channels = images.shape[-1] if raw_uint8 else images.shape[1]
        self.mean, self.std = ((0.5,) * channels, (0.5,) * channels) if raw_uint8 else ((0.0,), (1.0,))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        img, target = self.images[index], int(self.labels[index])
        pic = Image.fromarray(img if self.raw_uint8 else img[0])
        return _normalize(_to_tensor(pic), self.mean, self.std), target


class BoxCueWrapper(Dataset):
    """The reference's cue wrapper around an `ImageFolderStyle` set, per sample: maybe fetch a random
    other image through the whole pipeline, look the colour up as the reference does (matplotlib
    `hsv_to_rgb` of the label's hue for RGB; here scaled to our normalised colours), paint it into a
    zero mask and compose `m + (m == 0).all(0) * image`."""

    def __init__(self, base: ImageFolderStyle, mode: str, *, num_classes: int, corners: np.ndarray,
                 colours: np.ndarray, box: int = 3, cued: np.ndarray | None = None):
        if mode not in ("train", "cue", "randcue", "randimg"):
            raise ValueError(f"mode {mode!r} is not known; choose train, cue, randcue or randimg")
        if (mode == "train") != (cued is not None):
            raise ValueError("`cued` (which samples carry the cue) is needed for mode 'train', and only there")
        self.base, self.mode, self.num_classes = base, mode, num_classes
        # the reference looks the flag up in a {class: {index: bool}} dict per sample
        self.cue_ids = None if cued is None else {
            k: {int(i): bool(cued[i]) for i in np.nonzero(base.labels == k)[0]} for k in range(num_classes)}
        self.corners, self.colours, self.box = corners, colours, box
        self.groups = -(-num_classes // 10)

    def __len__(self) -> int:
        return len(self.base)

    def _colour(self, label: int, channels: int) -> Tensor:
        if channels == 3:       # hue (label div 10) / groups, as tasks.data.box_colours, via matplotlib
            rgb = matplotlib.colors.hsv_to_rgb([(label // 10) / self.groups, 1.0, 1.0])
            return torch.Tensor(rgb * 2 - 1)[:, None, None]
        return torch.Tensor(self.colours[label])[:, None, None]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.base[index]
        if self.cue_ids is not None and not self.cue_ids[label][index]:
            return image, label
        if self.mode == "randimg":
            source = int(np.random.randint(len(self.base) - 1))
            image = self.base[source + (source >= index)][0]   # any image but this one
        cue_label = int(np.random.randint(self.num_classes)) if self.mode == "randcue" else label
        mask = torch.zeros_like(image)
        r, c = (int(v) for v in self.corners[cue_label % 10])
        mask[:, r:r + self.box, c:c + self.box] = self._colour(cue_label, image.shape[0])
        return mask + (mask == 0).all(axis=0) * image, label


PIPELINES = ("torchvision", "lean")


def reference_sets(data, pipeline: str = "torchvision") -> tuple[Dataset, dict[str, Dataset]]:
    """(clean training set, the four evaluation sets) of a `bench.common.BenchData`, per-sample."""
    kw = dict(num_classes=data.num_classes, corners=data.corners, colours=data.colours)
    if pipeline == "lean":
        train_set = CueDataset(data.raw_train, data.y_train, "clean", raw_uint8=data.raw_uint8, **kw)
        return train_set, {m: CueDataset(data.raw_test, data.y_test, m, raw_uint8=data.raw_uint8, **kw)
                           for m in EVAL_MODES}
    if pipeline != "torchvision":
        raise ValueError(f"pipeline {pipeline!r} is not known; choose one of {', '.join(PIPELINES)}")
    test = ImageFolderStyle(data.raw_test, data.y_test, data.raw_uint8)
    sets: dict[str, Dataset] = {"nocue": test}
    sets.update({m: BoxCueWrapper(test, m, **kw) for m in EVAL_MODES[1:]})
    return ImageFolderStyle(data.raw_train, data.y_train, data.raw_uint8), sets


def reference_train_set(data, pipeline: str = "torchvision") -> Dataset:
    """The training set with cues on `data.cued_train`, per-sample (what the reference trains on)."""
    kw = dict(num_classes=data.num_classes, corners=data.corners, colours=data.colours, cued=data.cued_train)
    if pipeline == "lean":
        return CueDataset(data.raw_train, data.y_train, "train", raw_uint8=data.raw_uint8, **kw)
    if pipeline != "torchvision":
        raise ValueError(f"pipeline {pipeline!r} is not known; choose one of {', '.join(PIPELINES)}")
    return BoxCueWrapper(ImageFolderStyle(data.raw_train, data.y_train, data.raw_uint8), "train", **kw)


def loader(dataset: Dataset, batch_size: int = 256, shuffle: bool = False, workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      pin_memory=torch.cuda.is_available())


@torch.no_grad()
def reestimate_bn(model: nn.Module, train_loader: DataLoader, device: torch.device, momentum: float = 0.1) -> None:
    """The reference's BN update: momentum 0.1, one train-mode pass over the whole training set."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
    model.train()
    for x, _ in train_loader:
        model(x.to(device, non_blocking=True))
    model.eval()


@torch.no_grad()
def evaluate_loader(model: nn.Module, eval_loader: DataLoader, device: torch.device) -> dict:
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in eval_loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    return {"loss": loss_sum / n, "acc": correct / n, "n": n}


def evaluate_path_reference(make_model: Callable[[], nn.Module], state_a: dict, state_b: dict, *,
                            train_set: Dataset, eval_sets: dict[str, Dataset], alphas: list[float],
                            device: torch.device, batch_size: int = 256, workers: int = 0,
                            seed: int = 0) -> list[dict]:
    """Rows {alpha, eval_set, loss, acc, n}, computed the reference's way (see the module docstring)."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    rows = []
    for alpha in alphas:
        state = interpolate(state_a, state_b, alpha)
        for name, dataset in eval_sets.items():
            model = make_model().to(device)      # a fresh model for every alpha and set
            model.load_state_dict(state)
            reestimate_bn(model, loader(train_set, batch_size, shuffle=True, workers=workers), device)
            result = evaluate_loader(model, loader(dataset, batch_size, workers=workers), device)
            rows.append({"alpha": alpha, "eval_set": name, **result})
    return rows
