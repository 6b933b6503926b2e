"""Datasets, spurious cues, counterfactual evaluation sets and batching, all as tensors.

`load_cue_data(settings, device)` returns a `CueData`: the training split with the cue on an
exact, seeded fraction of each class, the same images without cues, and the four
counterfactual sets (`EVAL_SETS`) built from the test split or, with `eval_split: val`, from the
validation images. The validation images are carved from the published training split by a fixed,
dataset-level draw (`validation_indices`) and never appear in any training data, whatever `eval_split`
says, so a model trained while choosing settings on them is the very model later reported on the test split. Cue injection is batched tensor
indexing on the target device; every random draw comes from a CPU `torch.Generator` seeded
through `tasks.seeding`, so results are identical on CPU and GPU and across processes.

Images are normalised with mean 0.5 / std 0.5 (`x * 2 - 1` for `x` in [0, 1]): black is -1.

Why one module: the cue, the counterfactual sets and the data identity are one definition each and read
each other (a cue set is built from the same draw that placed the training cues); split, they would need
private reaches across modules.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tasks import datasets as raw
from tasks.datasets import DataError, download_hint
from tasks import plugins
from tasks.seeding import generator
from tasks.settings import SettingsError
from tasks.settings.data import (CUES, DATA_VERSION, DATASETS, EVAL_SETS, EVAL_SPLITS, cue_count,  # noqa: F401
                                 cue_proportion_problem, data_identity, dataset_info, DatasetInfo, DataSettings)

__all__ = [
    "CUES", "DATASETS", "EVAL_SETS", "EVAL_SPLITS", "BOX_SIZE", "CueData", "DataError", "DataSettings", "DatasetInfo", "Split",
    "box_colours", "box_corners", "choose_cued", "clean_subset_indices", "cue_count", "iterate_batches",
    "load_cue_data", "validation_count", "validation_indices",
]

@dataclass(frozen=True, eq=False)
class Split:
    x: Tensor  # [N, C, H, W] normalised (float32 or float16 storage)
    y: Tensor  # int64 [N]

    def __len__(self) -> int:
        return self.y.shape[0]

    def subset(self, index: Tensor) -> Split:
        index = index.to(self.y.device)
        return Split(self.x[index], self.y[index])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True, eq=False)
class CueData:
    train: Split  # training images, cue on a fraction `cue_proportion` of each class
    train_clean: Split  # the same training images without any cue (same order)
    cued: Tensor  # bool [N_train]: which training samples carry the cue
    eval_sets: dict[str, Split]  # EVAL_SETS built from the test split, deterministic per seed
    num_classes: int
    in_channels: int


# ---------------------------------------------------------------------------------------------
# Base images (no cue), normalised, on the device. Raw arrays are cached per process.

_DIGITS_SEED = 20230  # fixed: the built-in images (split, offsets, noise) never depend on settings
_DIGITS_TRAIN = 1400  # of 1797; the remaining 397 are the test split (the 1400 include the validation images)
_VALIDATION_SEED = 20231  # fixed: which training images are held out for validation never depends on settings
_DIGITS_GLYPH = 12  # 8x8 digits are resized to 12x12 ...
_DIGITS_CANVAS = 20  # ... and placed in a 20x20 canvas ...
_DIGITS_OFFSETS = (2, 6)  # ... at a random offset in [2, 6] per axis: a 2-pixel border ring stays free for the cue
_DIGITS_NOISE = 0.3  # std of additive Gaussian noise, normalised units
_CHUNK = 8192  # rows converted at a time (bounds temporary float32 memory)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1797 x 8x8, values 0..16) without importing sklearn (~1 s)."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # pragma: no cover - layout changed upstream

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


@lru_cache(maxsize=1)
def _digits_base() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The built-in dataset: jittered, noisy, upscaled digits; the digit is harder to learn than a cue."""
    images, labels = _digits_arrays()
    gen = generator(_DIGITS_SEED)
    n, glyph, size = images.shape[0], _DIGITS_GLYPH, _DIGITS_CANVAS
    small = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    glyphs = F.interpolate(small, size=(glyph, glyph), mode="bilinear", align_corners=False)
    offsets = torch.randint(_DIGITS_OFFSETS[0], _DIGITS_OFFSETS[1] + 1, (n, 2), generator=gen)
    span = torch.arange(glyph)
    rows = (offsets[:, 0, None] + span).view(n, 1, glyph, 1)
    cols = (offsets[:, 1, None] + span).view(n, 1, 1, glyph)
    canvas = torch.zeros(n, 1, size, size)
    canvas[torch.arange(n).view(n, 1, 1, 1), torch.zeros(1, 1, 1, 1, dtype=torch.long), rows, cols] = glyphs
    x = canvas * 2 - 1 + _DIGITS_NOISE * torch.randn(canvas.shape, generator=gen)
    y = torch.as_tensor(labels, dtype=torch.long)
    order = torch.randperm(n, generator=gen)
    x, y = x[order], y[order]
    return x[:_DIGITS_TRAIN], y[:_DIGITS_TRAIN], x[_DIGITS_TRAIN:], y[_DIGITS_TRAIN:]


@lru_cache(maxsize=4)
def _raw_arrays(name: str, root: str) -> raw.Arrays:
    loaders = {"cifar10": raw.load_cifar10, "cifar100": raw.load_cifar100, "fashion_mnist": raw.load_fashion_mnist}
    return loaders[name](root)


def _normalise(images: np.ndarray, device: torch.device, dtype: torch.dtype,
               size: tuple[int, int] | None = None) -> Tensor:
    """uint8 [N, C, H, W] -> normalised `dtype` on `device`, optionally resized (bilinear)."""
    source = torch.from_numpy(images)
    out_hw = size or tuple(images.shape[-2:])
    out = torch.empty((images.shape[0], images.shape[1], *out_hw), dtype=dtype, device=device)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = source[start:start + _CHUNK].to(device).float() / 255.0
        if size is not None:
            chunk = F.interpolate(chunk, size=size, mode="bilinear", align_corners=False)
        out[start:start + _CHUNK] = (chunk * 2 - 1).to(dtype)
    return out


def _resolve_root(settings: DataSettings) -> str:
    if settings.root is None:
        raise DataError(f"dataset `{settings.dataset}` reads files from a data root, but `data.root` is not set; "
                        f"fetch it with `{download_hint(settings.dataset)}` and set `data.root` to DIR")
    root = Path(settings.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; fetch dataset `{settings.dataset}` with "
                        f"`{download_hint(settings.dataset, root)}`", root)
    return str(root.resolve())


@dataclass(frozen=True)
class _Base:
    x_train: Tensor  # the published training split minus the validation images
    y_train: Tensor  # on CPU (draws happen on CPU)
    x_val: Tensor  # the validation images (carved from the published training split)
    y_val: Tensor  # on CPU
    x_test: Tensor
    y_test: Tensor
    cue_train: "BoxCue | DominoCue"  # also paints the validation images (they are training-split images)
    cue_test: "BoxCue | DominoCue"
    # every tensor is this load's own: none shares memory with the process-wide caches (`_digits_base`,
    # `_raw_arrays`), so a caller changing one in place changes no later load


@dataclass(frozen=True)
class ImageArrays:
    """What a dataset of your own returns (`load(root) -> ImageArrays`): uint8 images [N, C, H, W] (C = 1
    or 3) and integer labels in [0, num_classes), a training and a test split. mmc-sweep carves its
    validation images from the training split, paints box cues and builds the counterfactual sets."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


USER_VAL_FRACTION = 0.1   # validation images carved from a user dataset's training split


@lru_cache(maxsize=4)
def _user_arrays(name: str, root: str | None) -> ImageArrays:
    load = plugins.resolve(name, plugins.DATASET_GROUP)
    try:
        arrays = load(root)
    except DataError:
        raise
    except (Exception, SystemExit) as exc:   # noqa: BLE001 - a loader that is none (`os:system`), or one that fails:
        # the planner reads its sizes, so a spec naming it is refused saying why, not with a traceback (or an exit)
        raise DataError(f"dataset {plugins.shown(name)} could not be loaded from root {root!r}: its loader "
                        f"`load(root)` raised {type(exc).__name__}: {plugins.cut(str(exc), 2 * plugins.SHOWN)}") from exc
    if not isinstance(arrays, ImageArrays):
        raise DataError(f"dataset {name!r} returned a {type(arrays).__name__}; it must return "
                        "tasks.data.ImageArrays (uint8 images [N, C, H, W], labels, num_classes)")
    for split in ("train", "test"):
        x, y = getattr(arrays, f"x_{split}"), getattr(arrays, f"y_{split}")
        if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4 and x.shape[1] in (1, 3)):
            raise DataError(f"dataset {name!r}: x_{split} must be a uint8 array [N, C, H, W] with C = 1 or 3")
        if not (isinstance(y, np.ndarray) and y.shape == (x.shape[0],) and np.issubdtype(y.dtype, np.integer)
                and (y.size == 0 or 0 <= y.min() <= y.max() < arrays.num_classes)):
            raise DataError(f"dataset {name!r}: y_{split} must be {x.shape[0]} integer labels in "
                            f"[0, {arrays.num_classes})")
    if arrays.x_train.shape[1:] != arrays.x_test.shape[1:] or not 2 <= arrays.num_classes <= 10_000:
        raise DataError(f"dataset {name!r}: train and test images must have one shape, and 2 to 10000 classes")
    return arrays


@lru_cache(maxsize=4)
def user_dataset_info(name: str, root: str | None = None) -> DatasetInfo:
    """The facts of a dataset of your own, from its arrays (loaded, and these facts counted, once per
    process: the planner asks for every combination of swept values); `dataset_info` (in
    `tasks.settings.data`) gives a built-in's without loading anything."""
    arrays = _user_arrays(name, root)
    n = len(arrays.y_train)
    val = max(1, round(USER_VAL_FRACTION * n))
    info = DatasetInfo(name, arrays.num_classes, arrays.x_train.shape[1], tuple(arrays.x_train.shape[2:]), ("box",),
                       False, "float32", train_size=n - val, val_size=val)
    kept = validation_indices(info, n)[0].numpy()
    return replace(info, largest_class=int(np.bincount(arrays.y_train[kept]).max()))


def validation_count(info: DatasetInfo, n_published: int) -> int:
    """How many of a training split's `n_published` images are held out for validation: `info.val_size`
    for the published files; the same fraction, rounded, for other files (e.g. a reduced copy)."""
    standard = info.train_size + info.val_size
    if n_published == standard:
        return info.val_size
    return round(n_published * info.val_size / standard)


def validation_indices(info: DatasetInfo, n_published: int) -> tuple[Tensor, Tensor]:
    """(training indices, validation indices) into the published training split, both sorted (int64,
    CPU). A fixed draw per dataset: the same for every seed, setting and process, so no model is ever
    trained on an image that some configuration validates on."""
    count = validation_count(info, n_published)
    if not 0 < count < n_published:
        raise DataError(f"dataset `{info.name}`: cannot hold out {count} validation images from a training "
                        f"split of {n_published}")
    held_out = torch.zeros(n_published, dtype=torch.bool)
    held_out[torch.randperm(n_published, generator=generator(_VALIDATION_SEED, "validation", info.name))[:count]] = True
    return (~held_out).nonzero().squeeze(1), held_out.nonzero().squeeze(1)


def _carve(info: DatasetInfo, x: np.ndarray | Tensor, y: np.ndarray | Tensor) -> tuple:
    """(x_train, y_train, x_val, y_val): the published training split without / with only its validation images."""
    train, val = validation_indices(info, len(y))
    if isinstance(x, np.ndarray):
        train, val = train.numpy(), val.numpy()
    return x[train], y[train], x[val], y[val]


def _load_base(settings: DataSettings, device: torch.device) -> _Base:
    info = dataset_info(settings.dataset, settings.root)
    dtype = getattr(torch, info.storage_dtype)      # how the images are held
    if settings.dataset not in DATASETS:
        arrays = _user_arrays(settings.dataset, settings.root)
        x_tr, y_tr, x_va, y_va = _carve(info, arrays.x_train, arrays.y_train.astype(np.int64))
        cue = BoxCue.build(info, device)
        return _Base(_normalise(x_tr, device, dtype), torch.from_numpy(y_tr),
                     _normalise(x_va, device, dtype), torch.from_numpy(y_va),
                     _normalise(arrays.x_test, device, dtype),
                     torch.from_numpy(arrays.y_test.astype(np.int64)), cue, cue)
    if settings.dataset == "digits":
        x_all, y_all, x_te, y_te = _digits_base()
        x_tr, y_tr, x_va, y_va = _carve(info, x_all, y_all)
        cue = BoxCue.build(info, device)
        return _Base(x_tr.to(device), y_tr, x_va.to(device), y_va, x_te.to(device, copy=True), y_te.clone(), cue, cue)
    root = _resolve_root(settings)
    if settings.dataset == "dominoes":
        try:
            cx_all, cy_all, cx_te, cy_te = _raw_arrays("cifar10", root)
            fx_tr, fy_tr, fx_te, fy_te = _raw_arrays("fashion_mnist", root)
        except DataError as exc:
            raise DataError(f"{exc}\n(dataset `dominoes` needs both CIFAR-10 and FashionMNIST: "
                            f"`{download_hint('dominoes', root)}` fetches both)", exc.path) from exc
        width = info.image_size[1]
        blank = -1.0  # a black top half (normalised)

        def stack(cifar: np.ndarray) -> Tensor:
            x = torch.full((cifar.shape[0], 3, *info.image_size), blank, dtype=dtype, device=device)
            x[:, :, width:, :] = _normalise(cifar, device, dtype)
            return x

        cx_tr, cy_tr, cx_va, cy_va = _carve(info, cx_all, cy_all)
        pool_tr = DominoPool.build(_normalise(fx_tr, device, dtype, (width, width)), fy_tr)
        pool_te = DominoPool.build(_normalise(fx_te, device, dtype, (width, width)), fy_te)
        return _Base(stack(cx_tr), torch.from_numpy(cy_tr), stack(cx_va), torch.from_numpy(cy_va),
                     stack(cx_te), torch.from_numpy(cy_te.copy()), DominoCue(pool_tr), DominoCue(pool_te))
    x_all, y_all, x_te, y_te = _raw_arrays(settings.dataset, root)
    x_tr, y_tr, x_va, y_va = _carve(info, x_all, y_all)
    cue = BoxCue.build(info, device)
    return _Base(_normalise(x_tr, device, dtype), torch.from_numpy(y_tr),
                 _normalise(x_va, device, dtype), torch.from_numpy(y_va),
                 _normalise(x_te, device, dtype), torch.from_numpy(y_te.copy()), cue, cue)


# ---------------------------------------------------------------------------------------------
# Cues: `paint(x, index, cue_labels, gen)` writes the cue of `cue_labels[i]` onto `x[index[i]]` in place.

BOX_SIZE = 3  # the box cue is a BOX_SIZE x BOX_SIZE patch
_BOX_MARGIN = 1  # pixels between the image border and the corner/edge boxes
_BOX_VALUE = 2.0  # grayscale box value (normalised): brighter than any clean pixel (max 1)


def box_corners(height: int, width: int, layout: str = "grid") -> Tensor:
    """Top-left (row, col) of the box for each `label mod 10`: int64 [10, 2].

    layout "ring" (the built-in digits): ten positions on the image border, away from the digit,
    so that a cue never occludes the digit and the cue and the digit are independent features:
    0-3 along the top edge, 4 left and 5 right edge centres, 6-9 along the bottom edge. On the
    small digits canvas an occluding box (layout "grid") costs even a model trained without cues
    about 20 points of `randcue` accuracy, which would confound the cue-reliance measurements.

    layout "grid" (the paper's, for every other dataset):
    0-8: a 3x3 grid of near (margin 1), middle and far positions, row-major (0 top-left corner,
    1 top edge centre, 2 top-right, 3 left edge centre, 4 centre, 5 right, 6 bottom-left,
    7 bottom, 8 bottom-right); 9: a spot left-above the centre. Unlike the reference, which draws
    no box for label 9 when there are 10 classes, label 9 always gets a box here: "no box" would
    otherwise itself be a cue for class 9, present on every uncued image of every class.
    """
    if layout == "ring":
        far_r, far_c, mid_r = height - BOX_SIZE, width - BOX_SIZE, height // 2 - BOX_SIZE // 2
        along = [0, round(far_c / 3), round(2 * far_c / 3), far_c]
        ring = [(0, c) for c in along] + [(mid_r, 0), (mid_r, far_c)] + [(far_r, c) for c in along]
        return torch.tensor(ring, dtype=torch.long)
    if layout != "grid":
        raise ValueError(f"box layout {layout!r} is unknown; allowed: grid, ring")

    def lines(size: int) -> list[int]:
        near, mid, far = _BOX_MARGIN, size // 2 - BOX_SIZE // 2, size - _BOX_MARGIN - BOX_SIZE
        return [near, mid, far]

    rows, cols = lines(height), lines(width)
    grid = [(r, c) for r in rows for c in cols]
    grid.append(((rows[0] + rows[1]) // 2, (cols[0] + cols[1]) // 2))
    return torch.tensor(grid, dtype=torch.long)


def _hue_to_rgb(hue: Tensor) -> Tensor:
    """Fully saturated, full-value colours in [0, 1]: [K] hues in [0, 1) -> [K, 3]."""
    k = torch.tensor([5.0, 3.0, 1.0])  # standard HSV -> RGB with s = v = 1
    t = torch.remainder(k + hue[:, None] * 6, 6)
    return 1 - torch.clamp(torch.minimum(t, 4 - t), 0, 1)


def box_colours(num_classes: int, channels: int) -> Tensor:
    """Normalised box colour per label: float32 [num_classes, channels].

    RGB: the hue is `(label div 10) / ceil(num_classes / 10)` (red for 10 classes).
    Grayscale: 2.0 for 10 classes; brightness steps down from 2.0 with `label div 10` beyond.
    """
    groups = math.ceil(num_classes / 10)
    group = torch.arange(num_classes) // 10
    if channels == 3:
        return _hue_to_rgb(group.float() / groups) * 2 - 1
    if channels == 1:
        return (_BOX_VALUE - group.float() / groups)[:, None]
    raise ValueError(f"box cues support 1 or 3 channels, got {channels}")


@dataclass(frozen=True)
class BoxCue:
    colours: Tensor  # [num_classes, C] on the device
    corners: Tensor  # [10, 2] on the device

    @staticmethod
    def build(info: DatasetInfo, device: torch.device) -> BoxCue:
        return BoxCue(box_colours(info.num_classes, info.in_channels).to(device),
                      box_corners(*info.image_size, layout=info.box_layout).to(device))

    def paint(self, x: Tensor, index: Tensor, cue_labels: Tensor, gen: torch.Generator | None = None) -> None:
        n, channels = index.numel(), x.shape[1]
        if n == 0:
            return
        index, cue_labels = index.to(x.device), cue_labels.to(x.device)
        span = torch.arange(BOX_SIZE, device=x.device)
        corner = self.corners[cue_labels % 10]
        rows = (corner[:, 0, None] + span).view(n, 1, BOX_SIZE, 1)
        cols = (corner[:, 1, None] + span).view(n, 1, 1, BOX_SIZE)
        chans = torch.arange(channels, device=x.device).view(1, channels, 1, 1)
        colour = self.colours[cue_labels].to(x.dtype).view(n, channels, 1, 1)
        x[index.view(n, 1, 1, 1), chans, rows, cols] = colour.expand(n, channels, BOX_SIZE, BOX_SIZE)


@dataclass(frozen=True)
class DominoPool:
    """Simple images (FashionMNIST) by class, from which each cued sample draws its top half."""

    images: Tensor  # [M, 1, S, S] normalised, on the device
    order: Tensor  # [M] pool indices sorted by class (CPU)
    starts: Tensor  # [num_classes] first position of each class in `order` (CPU)
    counts: Tensor  # [num_classes] (CPU)

    @staticmethod
    def build(images: Tensor, labels: np.ndarray) -> DominoPool:
        labels_t = torch.from_numpy(labels)
        counts = torch.bincount(labels_t, minlength=10)
        return DominoPool(images, torch.argsort(labels_t, stable=True), torch.cumsum(counts, 0) - counts, counts)

    def draw(self, cue_labels: Tensor, gen: torch.Generator) -> Tensor:
        """A uniformly random pool image of each requested class: pool indices [n] (CPU)."""
        cue_labels = cue_labels.cpu()
        if bool((self.counts[cue_labels] == 0).any()):
            missing = sorted(set(cue_labels[self.counts[cue_labels] == 0].tolist()))
            raise DataError(f"the dominoes cue pool has no images of classes {missing}")
        u = torch.rand(cue_labels.numel(), generator=gen, dtype=torch.float64)
        offset = (u * self.counts[cue_labels]).long()
        return self.order[self.starts[cue_labels] + offset]


@dataclass(frozen=True)
class DominoCue:
    pool: DominoPool

    def paint(self, x: Tensor, index: Tensor, cue_labels: Tensor, gen: torch.Generator) -> None:
        if index.numel() == 0:
            return
        top = self.pool.images[self.pool.draw(cue_labels, gen).to(self.pool.images.device)]
        x[index.to(x.device), :, :top.shape[-2], :] = top.to(x.device, x.dtype)


# ---------------------------------------------------------------------------------------------
# Which samples carry the cue, counterfactual sets


def choose_cued(labels: Tensor, proportion: float, gen: torch.Generator) -> Tensor:
    """bool [N]: exactly `cue_count(n_k, p)` seeded samples of each class k.

    Each sample gets a random key; within a class the samples with the smallest keys are cued,
    so for one seed the cued set of a smaller p is a subset of that of a larger p.
    """
    labels = labels.cpu()
    n = labels.numel()
    keys = torch.rand(n, generator=gen, dtype=torch.float64)
    order = torch.argsort(labels.double() + keys)  # by class, then by key (keys < 1)
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    sorted_labels = labels[order]
    rank = torch.arange(n) - starts[sorted_labels]
    quota = torch.floor(proportion * counts.double() + 0.5).long()
    cued = torch.zeros(n, dtype=torch.bool)
    cued[order] = rank < quota[sorted_labels]
    return cued


def _check_cued(settings: DataSettings, labels: Tensor) -> None:
    """Refuse a cue proportion that makes the model another one (`cue_proportion_problem`, on the largest
    class of `labels`): above 0 but no cued sample, or for a `cue~cue:resubset` partner (its own
    `cue_seed`) its model's cued subset."""
    problem = cue_proportion_problem(settings.cue_proportion, int(torch.bincount(labels.cpu()).max()),
                                     settings.dataset, resubset=settings.cue_seed not in (None, settings.seed))
    if problem:
        raise SettingsError("DataSettings", [("cue_proportion", problem)])


def _derangement(n: int, gen: torch.Generator) -> Tensor:
    """A seeded random permutation with no fixed point (one random n-cycle); identity for n < 2."""
    perm = torch.randperm(n, generator=gen)
    partner = torch.empty_like(perm)
    partner[perm] = perm.roll(-1)
    return partner


def _eval_sets(x: Tensor, y: Tensor, cue_source: "BoxCue | DominoCue", seed: int,
               num_classes: int) -> dict[str, Split]:
    """The `EVAL_SETS` built from clean images `x` (labels `y` on CPU), deterministic per seed."""
    everyone = torch.arange(y.numel())
    y_dev = y.to(x.device)
    sets = {"nocue": Split(x, y_dev)}

    cue = x.clone()
    cue_source.paint(cue, everyone, y, generator(seed, "cue"))
    sets["cue"] = Split(cue, y_dev)

    gen = generator(seed, "randcue")
    random_labels = torch.randint(0, num_classes, (y.numel(),), generator=gen)
    randcue = x.clone()
    cue_source.paint(randcue, everyone, random_labels, gen)
    sets["randcue"] = Split(randcue, y_dev)

    gen = generator(seed, "randimg")
    randimg = x[_derangement(y.numel(), gen).to(x.device)]
    cue_source.paint(randimg, everyone, y, gen)
    sets["randimg"] = Split(randimg, y_dev)
    return sets


def _evaluation_sets(base: _Base, settings: DataSettings, num_classes: int) -> dict[str, Split]:
    if settings.eval_split == "val":
        return _eval_sets(base.x_val, base.y_val, base.cue_train, settings.seed, num_classes)
    return _eval_sets(base.x_test, base.y_test, base.cue_test, settings.seed, num_classes)


def load_cue_data(settings: DataSettings, device: torch.device | str = "cpu") -> CueData:
    """Training split (validation images excluded) with cues at `settings.cue_proportion`, its clean twin,
    and the `EVAL_SETS` built from `settings.eval_split` (test split or validation images)."""
    info = dataset_info(settings.dataset, settings.root)
    device = torch.device(device)
    base = _load_base(settings, device)
    cue_seed = settings.seed if settings.cue_seed is None else settings.cue_seed
    _check_cued(settings, base.y_train)
    cued = choose_cued(base.y_train, settings.cue_proportion, generator(cue_seed, "cued"))
    y_train = base.y_train.to(device)
    train_clean = Split(base.x_train, y_train)
    if bool(cued.any()):
        x = base.x_train.clone()
        index = cued.nonzero().squeeze(1)
        base.cue_train.paint(x, index, base.y_train[index], generator(cue_seed, "train_cue"))
        train = Split(x, y_train)
    else:
        train = train_clean
    return CueData(train=train, train_clean=train_clean, cued=cued.to(device),
                   eval_sets=_evaluation_sets(base, settings, info.num_classes),
                   num_classes=info.num_classes, in_channels=info.in_channels)


# ---------------------------------------------------------------------------------------------
# Batching


def iterate_batches(split: Split, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
                    drop_last: bool = True, rank: int = 0, world_size: int = 1) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield this rank's share of each global batch as (float32 images, int64 labels).

    The order is a permutation seeded by (seed, epoch). Each global batch of `batch_size` is
    split contiguously: rank r gets rows [r*b/w, (r+1)*b/w), so w workers together see exactly
    the batches one process sees. With `drop_last=False` the final, smaller batch is split the
    same way (a rank may get fewer rows, or none).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` {batch_size} is not allowed; must be >= 1")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"`rank` {rank} / `world_size` {world_size} are not allowed; need 0 <= rank < world_size")
    if batch_size % world_size:
        raise ValueError(f"`batch_size` {batch_size} is not divisible by `world_size` {world_size}; "
                         f"use a multiple of {world_size} (e.g. {batch_size + world_size - batch_size % world_size})")
    n = len(split)
    order = torch.randperm(n, generator=generator(seed, "shuffle", epoch)) if shuffle else torch.arange(n)
    order = order.to(split.y.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        batch = order[start:start + batch_size]
        size = batch.numel()
        mine = batch[rank * size // world_size:(rank + 1) * size // world_size]
        yield split.x[mine].float(), split.y[mine]


def clean_subset_indices(n_train: int, size: int, seed: int) -> Tensor:
    """`size` distinct training indices (int64, CPU), seeded, in draw order (not sorted)."""
    if not 0 <= size <= n_train:
        raise ValueError(f"clean subset `size` {size} is not allowed; must be between 0 and the "
                         f"{n_train} training samples")
    return torch.randperm(n_train, generator=generator(seed, "clean_subset"))[:size]
