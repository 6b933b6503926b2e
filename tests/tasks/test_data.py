"""Cues, proportions, counterfactual sets, batching and seeding (tasks/data.py, tasks/seeding.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tasks import data
from tasks.data import DataError, DataSettings, Split, clean_subset_indices, iterate_batches, load_cue_data
from tasks.seeding import derive_seed, generator
from tasks.settings import SettingsError
from tests.tasks.test_datasets import fashion_arrays, write_cifar10, write_cifar100, write_fashion

# Top-left corner of the 3x3 box for each `label mod 10`.
# digits (20x20, "ring"): four along the top edge, left and right edge centres, four along the bottom.
DIGITS_BOXES = {0: (0, 0), 1: (0, 6), 2: (0, 11), 3: (0, 17), 4: (9, 0), 5: (9, 17),
                6: (17, 0), 7: (17, 6), 8: (17, 11), 9: (17, 17)}
# CIFAR ("grid", the paper's): corners, edge centres, centre, and (label 9) a spot left-above the
# centre; margin 1 pixel.
CIFAR_BOXES = {0: (1, 1), 1: (1, 15), 2: (1, 28), 3: (15, 1), 4: (15, 15), 5: (15, 28),
               6: (28, 1), 7: (28, 15), 8: (28, 28), 9: (8, 8)}


def box_mask(shape: tuple[int, ...], corner: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros(shape[-2:], dtype=torch.bool)
    mask[corner[0]:corner[0] + 3, corner[1]:corner[1] + 3] = True
    return mask


@pytest.fixture(scope="module")
def digits90():
    return load_cue_data(DataSettings(cue_proportion=0.9, seed=1))


def box_class(image: torch.Tensor, clean: torch.Tensor, boxes: dict) -> int:
    """Which box location the difference between `image` and `clean` is exactly (-1: none / other)."""
    changed = (image != clean).any(0)
    for label, corner in boxes.items():
        if torch.equal(changed, box_mask(image.shape, corner)):
            return label
    return -1


# ---- built-in digits ---------------------------------------------------------------------------

def test_digits_shapes_and_metadata(digits90):
    assert digits90.num_classes == 10 and digits90.in_channels == 1
    assert digits90.train.x.shape == (1200, 1, 20, 20) and digits90.train.y.dtype == torch.int64
    assert len(digits90.train) == data.DATASETS["digits"].train_size
    assert set(digits90.eval_sets) == set(data.EVAL_SETS)
    assert all(len(s) == 397 for s in digits90.eval_sets.values())
    assert torch.equal(digits90.train.y, digits90.train_clean.y)
    assert sorted(digits90.train.y.unique().tolist()) == list(range(10))


def test_digit_base_images_do_not_depend_on_seed_or_proportion(digits90):
    other = load_cue_data(DataSettings(cue_proportion=0.0, seed=7))
    assert torch.equal(other.train_clean.x, digits90.train_clean.x)
    assert torch.equal(other.eval_sets["nocue"].x, digits90.eval_sets["nocue"].x)
    assert other.train is other.train_clean and not bool(other.cued.any())
    # mutating one result never leaks into another (the raw cache is copied)
    other.train_clean.x.zero_()
    assert not torch.equal(load_cue_data(DataSettings()).train_clean.x, other.train_clean.x)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.25, 0.5, 0.77, 0.9, 1.0])
def test_cue_proportion_is_exact_per_class(p):
    cue_data = load_cue_data(DataSettings(cue_proportion=p, seed=3))
    y, cued = cue_data.train.y, cue_data.cued
    assert cued.dtype == torch.bool
    for k in range(10):
        n = int((y == k).sum())
        assert int(cued[y == k].sum()) == math.floor(p * n + 0.5), (k, n)
    changed = (cue_data.train.x != cue_data.train_clean.x).flatten(1).any(1)
    assert torch.equal(changed, cued)


def test_box_is_exactly_where_label_mod_10_says(digits90):
    train, clean = digits90.train, digits90.train_clean
    for i in digits90.cued.nonzero().squeeze(1).tolist():
        label = int(train.y[i])
        mask = box_mask(train.x.shape, DIGITS_BOXES[label])
        assert torch.equal((train.x[i] != clean.x[i])[0], mask), (i, label)
        assert torch.all(train.x[i, 0][mask] == 2.0)


def test_digit_boxes_never_touch_the_digit(digits90):
    """The ring layout keeps cues off the digit: the glyph lives in rows/cols [2, 18)."""
    clean = digits90.train_clean.x
    for label, (r, c) in DIGITS_BOXES.items():
        box = box_mask(clean.shape, (r, c))
        inner = torch.zeros(box.shape, dtype=torch.bool)
        inner[2:18, 2:18] = True
        overlap = box & inner
        # the box reaches at most one pixel into the jitter range and never the 12x12 glyph core
        glyph_core = torch.zeros(box.shape, dtype=torch.bool)
        glyph_core[6:14, 6:14] = True
        assert not (box & glyph_core).any(), label
        assert overlap.sum() <= 3, label


def test_cued_sets_are_nested_across_proportions():
    low = load_cue_data(DataSettings(cue_proportion=0.3, seed=5)).cued
    high = load_cue_data(DataSettings(cue_proportion=0.8, seed=5)).cued
    assert bool((high | ~low).all()) and int(high.sum()) > int(low.sum())


def test_counterfactual_sets_for_digits(digits90):
    sets = digits90.eval_sets
    nocue, y = sets["nocue"].x, sets["nocue"].y
    for name in data.EVAL_SETS:
        assert torch.equal(sets[name].y, y), name
    assert all(box_class(sets["cue"].x[i], nocue[i], DIGITS_BOXES) == int(y[i]) for i in range(len(y)))

    randcue = [box_class(sets["randcue"].x[i], nocue[i], DIGITS_BOXES) for i in range(len(y))]
    assert min(randcue) >= 0  # every sample carries a box at one of the 10 locations
    assert len(set(randcue)) == 10
    assert np.mean(np.array(randcue) == y.numpy()) < 0.3  # the cue class is random, not the label

    randimg = sets["randimg"].x
    for i in range(len(y)):
        mask = box_mask(randimg.shape, DIGITS_BOXES[int(y[i])])
        assert torch.all(randimg[i, 0][mask] == 2.0)
    # outside the box, each randimg image is exactly another test image, and every image is used once
    outside = ~torch.stack([box_mask(randimg.shape, DIGITS_BOXES[int(k)]) for k in y])
    distance = ((randimg[:, None, 0] - nocue[None, :, 0]).abs() * outside[:, None]).flatten(2).sum(2)
    source = distance.argmin(1)
    assert torch.all(distance.min(1).values == 0)
    assert sorted(source.tolist()) == list(range(len(y)))
    assert bool((source != torch.arange(len(y))).all())


def test_counterfactual_sets_are_deterministic_per_seed(digits90):
    again = load_cue_data(DataSettings(cue_proportion=0.9, seed=1))
    other = load_cue_data(DataSettings(cue_proportion=0.9, seed=2))
    assert torch.equal(again.cued, digits90.cued) and torch.equal(again.train.x, digits90.train.x)
    assert not torch.equal(other.cued, digits90.cued)
    for name in data.EVAL_SETS:
        assert torch.equal(again.eval_sets[name].x, digits90.eval_sets[name].x), name
    for name in ("nocue", "cue"):  # no randomness in these
        assert torch.equal(other.eval_sets[name].x, digits90.eval_sets[name].x), name
    for name in ("randcue", "randimg"):
        assert not torch.equal(other.eval_sets[name].x, digits90.eval_sets[name].x), name


def test_validation_images_are_held_out_of_training_and_the_same_for_every_seed():
    x_all, _, x_test, y_test = data._digits_base()
    keep, held_out = data.validation_indices(data.DATASETS["digits"], len(x_all))
    assert len(held_out) == data.DATASETS["digits"].val_size == 200 and len(keep) == 1200
    assert not set(keep.tolist()) & set(held_out.tolist())
    assert sorted(keep.tolist() + held_out.tolist()) == list(range(len(x_all)))
    loaded = [load_cue_data(DataSettings(cue_proportion=p, seed=seed, eval_split="val"))
              for seed, p in ((0, 0.0), (5, 0.8), (9, 0.3))]
    for cue_data in loaded:
        # every training tensor (cued or not; clean subsets, BN reset data and alignment images are drawn from
        # these) holds exactly the non-validation images
        assert torch.equal(cue_data.train_clean.x, x_all[keep])
        cued = cue_data.cued
        assert torch.equal(cue_data.train.x[~cued], x_all[keep][~cued])
        assert torch.equal(cue_data.eval_sets["nocue"].x, x_all[held_out])      # the same draw for every seed
        assert all(len(s) == 200 for s in cue_data.eval_sets.values())
    val = loaded[0].eval_sets["nocue"].x.flatten(1)
    nearest_train = torch.cdist(val, loaded[0].train_clean.x.flatten(1)).min(1).values
    nearest_test = torch.cdist(val, x_test.flatten(1)).min(1).values
    assert bool((nearest_train > 0).all()) and bool((nearest_test > 0).all())  # disjoint from train and test
    reported = load_cue_data(DataSettings(cue_proportion=0.8, seed=5))          # eval_split: test
    assert torch.equal(reported.eval_sets["nocue"].x, x_test) and torch.equal(reported.train.x, loaded[1].train.x)
    assert not torch.equal(loaded[1].eval_sets["randimg"].x[:5], loaded[2].eval_sets["randimg"].x[:5])


def test_dataset_sizes_after_the_validation_carve_out():
    assert {name: (info.train_size, info.val_size) for name, info in data.DATASETS.items()} == {
        "digits": (1200, 200), "cifar10": (45000, 5000), "cifar100": (45000, 5000),
        "fashion_mnist": (55000, 5000), "dominoes": (45000, 5000)}
    for info in data.DATASETS.values():
        assert data.validation_count(info, info.train_size + info.val_size) == info.val_size
    with pytest.raises(ValueError, match="eval_split"):
        DataSettings(eval_split="train")


# ---- real formats through load_cue_data ------------------------------------------------------

def normalise(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 255 * 2 - 1


def test_cifar10_from_files_with_red_boxes(tmp_path):
    written = write_cifar10(tmp_path)
    cue_data = load_cue_data(DataSettings(dataset="cifar10", cue_proportion=0.5, seed=0, root=str(tmp_path)))
    # 100 training images that are not the published 50,000: the same validation fraction (1/10) is held out
    keep, held_out = data.validation_indices(data.DATASETS["cifar10"], 100)
    assert len(held_out) == 10 and len(keep) == 90
    assert cue_data.train.x.shape == (90, 3, 32, 32) and cue_data.in_channels == 3
    assert cue_data.train.x.dtype == torch.float16
    torch.testing.assert_close(cue_data.train_clean.x.float(), normalise(written["x_train"][keep.numpy()]),
                               atol=1e-3, rtol=0)
    assert torch.equal(cue_data.train.y, torch.from_numpy(written["y_train"][keep.numpy()]))
    counts = torch.bincount(cue_data.train.y, minlength=10)
    assert int(cue_data.cued.sum()) == sum(math.floor(0.5 * int(n) + 0.5) for n in counts)
    for i in cue_data.cued.nonzero().squeeze(1).tolist():
        label = int(cue_data.train.y[i])
        assert box_class(cue_data.train.x[i], cue_data.train_clean.x[i], CIFAR_BOXES) == label
        patch = cue_data.train.x[i][:, box_mask((32, 32), CIFAR_BOXES[label])].float()
        assert torch.equal(patch, torch.tensor([1.0, -1.0, -1.0])[:, None].expand(3, 9))


def test_cifar100_box_colour_encodes_label_div_10(tmp_path):
    write_cifar100(tmp_path)
    cue_data = load_cue_data(DataSettings(dataset="cifar100", cue_proportion=1.0, root=str(tmp_path)))
    assert cue_data.num_classes == 100
    x, y, clean = cue_data.train.x, cue_data.train.y, cue_data.train_clean.x
    expected = {0: [1.0, -1.0, -1.0], 5: [-1.0, 1.0, 1.0]}  # hue 0 (red), hue 0.5 (cyan)
    for i in range(len(y)):
        label = int(y[i])
        assert box_class(x[i], clean[i], CIFAR_BOXES) == label % 10
        colour = x[i][:, box_mask((32, 32), CIFAR_BOXES[label % 10])].float()
        assert torch.all(colour == colour[:, :1])
        if label // 10 in expected:
            assert colour[:, 0].tolist() == expected[label // 10]
    colours = {tuple(x[i][:, CIFAR_BOXES[int(y[i]) % 10][0], CIFAR_BOXES[int(y[i]) % 10][1]].tolist())
               for i in range(len(y))}
    assert len(colours) == 10


def test_fashion_mnist_from_files_and_raw_cache(tmp_path):
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    settings = DataSettings(dataset="fashion_mnist", cue_proportion=1.0, seed=0, root=str(tmp_path))
    cue_data = load_cue_data(settings)
    assert cue_data.train.x.shape == (37, 1, 28, 28) and cue_data.in_channels == 1   # 3 of 40 held out
    hits = data._raw_arrays.cache_info().hits
    again = load_cue_data(DataSettings(dataset="fashion_mnist", cue_proportion=1.0, seed=0, root=str(tmp_path) + "/"))
    assert data._raw_arrays.cache_info().hits == hits + 1
    assert torch.equal(again.train.x, cue_data.train.x)
    corner = (1, 1)  # label 0, 28x28 image
    i = int((cue_data.train.y == 0).nonzero()[0])
    assert torch.all(cue_data.train.x[i, 0][box_mask((28, 28), corner)] == 2.0)


@pytest.fixture()
def dominoes_root(tmp_path):
    written = write_cifar10(tmp_path)
    images, labels = fashion_arrays(n_train=40, n_test=20)
    # constant images, each with its own grey level, so the top half tells which image was drawn
    levels = {"train": 10 + 5 * np.arange(40), "t10k": 12 + 5 * np.arange(20)}
    for split in ("train", "t10k"):
        images[split] = np.broadcast_to(levels[split][:, None, None], images[split].shape).astype(np.uint8)
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    return tmp_path, levels, labels, written


def top_source(x: torch.Tensor, levels: np.ndarray) -> list[int]:
    """Index of the FashionMNIST image each composite's (constant) top half came from; -1 if blank."""
    top = x[:, :, :32].float()
    value = torch.round((top.mean((1, 2, 3)) + 1) / 2 * 255).long().tolist()
    assert torch.allclose(top, top[:, :1, :1, :1].expand_as(top), atol=2e-3)
    lookup = {int(v): i for i, v in enumerate(levels)}
    return [lookup.get(v, -1) if v != 0 else -1 for v in value]


def test_dominoes_pairs_by_class(dominoes_root):
    root, levels, labels, written = dominoes_root
    settings = DataSettings(dataset="dominoes", cue_proportion=0.6, seed=4, root=str(root))
    assert settings.cue == "dominoes"
    cue_data = load_cue_data(settings)
    train, clean = cue_data.train, cue_data.train_clean
    keep, _ = data.validation_indices(data.DATASETS["dominoes"], 100)
    assert train.x.shape == (90, 3, 64, 32) and cue_data.in_channels == 3 and cue_data.num_classes == 10
    assert torch.all(clean.x[:, :, :32] == -1)
    torch.testing.assert_close(clean.x[:, :, 32:].float(), normalise(written["x_train"][keep.numpy()]), atol=1e-3,
                               rtol=0)
    sources = top_source(train.x, levels["train"])
    for i, source in enumerate(sources):
        if bool(cue_data.cued[i]):
            assert source >= 0 and int(labels["train"][source]) == int(train.y[i])
        else:
            assert source == -1
    assert len({s for s in sources if s >= 0}) > 10  # draws vary within a class

    sets = cue_data.eval_sets
    y = sets["nocue"].y
    assert torch.all(sets["nocue"].x[:, :, :32] == -1)
    cue_sources = top_source(sets["cue"].x, levels["t10k"])
    assert [int(labels["t10k"][s]) for s in cue_sources] == y.tolist()
    rand_classes = [int(labels["t10k"][s]) for s in top_source(sets["randcue"].x, levels["t10k"])]
    assert rand_classes != y.tolist()
    assert torch.equal(sets["randcue"].x[:, :, 32:], sets["nocue"].x[:, :, 32:])
    img_sources = top_source(sets["randimg"].x, levels["t10k"])
    assert [int(labels["t10k"][s]) for s in img_sources] == y.tolist()
    bottoms = sets["randimg"].x[:, :, 32:]
    for i in range(len(y)):
        matches = [j for j in range(len(y)) if torch.equal(bottoms[i], sets["nocue"].x[j, :, 32:])]
        assert matches and i not in matches



def test_dominoes_validation_images_are_painted_from_the_training_pool(dominoes_root):
    """The validation images are training-split images: with `eval_split: val` their cue halves come from
    the FashionMNIST training pool, of the image's own class (`cue`, `randimg`)."""
    root, levels, labels, _ = dominoes_root
    sets = load_cue_data(DataSettings(dataset="dominoes", cue_proportion=0.5, seed=4, root=str(root),
                                      eval_split="val")).eval_sets
    y = sets["nocue"].y
    assert len(y) == 10
    for name in ("cue", "randimg"):
        sources = top_source(sets[name].x, levels["train"])
        assert min(sources) >= 0, name
        assert [int(labels["train"][s]) for s in sources] == y.tolist(), name
    assert min(top_source(sets["randcue"].x, levels["train"])) >= 0


def test_cue_seed_decides_which_samples_carry_the_cue_and_how_it_is_painted_and_nothing_else(dominoes_root):
    """`cue_seed` stands in for `seed` for the training cue only (which samples, which pool images); the
    counterfactual sets still follow `seed`."""
    root = str(dominoes_root[0])
    own = load_cue_data(DataSettings(dataset="dominoes", cue_proportion=0.5, seed=4, cue_seed=9, root=root))
    as_seed = load_cue_data(DataSettings(dataset="dominoes", cue_proportion=0.5, seed=9, root=root))
    plain = load_cue_data(DataSettings(dataset="dominoes", cue_proportion=0.5, seed=4, root=root))
    assert torch.equal(own.cued, as_seed.cued) and not torch.equal(own.cued, plain.cued)
    assert torch.equal(own.train.x, as_seed.train.x)
    for name in data.EVAL_SETS:
        assert torch.equal(own.eval_sets[name].x, plain.eval_sets[name].x), name


def test_cifar100_randcue_paints_boxes_of_all_hundred_classes(tmp_path):
    """randcue draws its cue class from all K classes: for CIFAR-100 the box colour (label div 10) varies too."""
    write_cifar100(tmp_path)
    sets = load_cue_data(DataSettings(dataset="cifar100", seed=2, root=str(tmp_path))).eval_sets
    nocue, randcue = sets["nocue"].x, sets["randcue"].x
    colours = data.box_colours(100, 3)
    seen_groups = set()
    for i in range(len(nocue)):
        position = box_class(randcue[i], nocue[i], CIFAR_BOXES)
        assert position >= 0, i
        r, c = CIFAR_BOXES[position]
        colour = randcue[i, :, r, c].float()
        group = [g for g in range(10) if torch.equal(colour, colours[10 * g].half().float())]
        assert len(group) == 1, (i, colour)
        seen_groups.add(group[0])
    assert len(seen_groups) >= 6        # 100 images, 10 equally likely colours


def test_grayscale_box_brightness_steps_down_by_label_div_10():
    """2.0 - (label div 10) / ceil(K / 10): 2.0 for ten classes, 2.0 and 1.5 for twenty, thirds for 25."""
    assert data.box_colours(10, 1).squeeze(1).tolist() == [2.0] * 10
    assert data.box_colours(20, 1).squeeze(1).tolist() == [2.0] * 10 + [1.5] * 10
    assert data.box_colours(25, 1).squeeze(1).tolist() == pytest.approx([2.0] * 10 + [5 / 3] * 10 + [4 / 3] * 5)


def test_digits_are_the_upscaled_glyphs_in_minus_one_to_one_jittered_over_offsets_two_to_six():
    """Black is -1 and full ink +1 (so the ink of an image, (x + 1) / 2, sums to its 12x12 glyph's up to noise),
    and each glyph's offset is uniform in [2, 6] per axis (mean 4), the noise std 0.3 (the free border ring)."""
    images, _ = data._digits_arrays()
    glyphs = torch.nn.functional.interpolate(torch.as_tensor(images, dtype=torch.float32)[:, None] / 16.0,
                                             size=(12, 12), mode="bilinear", align_corners=False)
    x_train, _, x_test, _ = data._digits_base()
    x = torch.cat([x_train, x_test]).double()
    assert x.shape == (1797, 1, 20, 20)
    ink, glyph_ink = (x + 1) / 2, glyphs.double()
    assert float(ink.sum()) == pytest.approx(float(glyph_ink.sum()), rel=0.01)
    for axis in (2, 3):        # pooled centre of ink = mean offset + pooled centre of the glyphs
        shape = [1, 1, 1, 1]
        shape[axis] = 20
        centre = float((ink * torch.arange(20.0).view(shape)).sum() / ink.sum())
        shape[axis] = 12
        glyph_centre = float((glyph_ink * torch.arange(12.0).view(shape)).sum() / glyph_ink.sum())
        assert centre - glyph_centre == pytest.approx(4.0, abs=0.15), axis
    border = torch.ones(20, 20, dtype=torch.bool)
    border[2:18, 2:18] = False
    assert float(x[:, 0][:, border].mean()) == pytest.approx(-1.0, abs=0.01)
    assert float(x[:, 0][:, border].std()) == pytest.approx(0.3, abs=0.01)


def test_digit_images_are_drawn_from_their_own_seed_not_the_global_rng():
    """Every process builds the same digits: offsets, noise and split order come from a fixed seed alone."""
    cached = data._digits_base()
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        fresh = data._digits_base.__wrapped__()
        assert all(torch.equal(a, b) for a, b in zip(fresh, cached)), global_seed

def test_each_digit_image_carries_the_label_of_its_glyph():
    """The mean image of each label is the mean glyph of that digit blurred over the 25 offsets in [2, 6]^2:
    nearer to it than to any other digit's (labels shuffled apart from their images are all nearest one digit)."""
    images, labels = data._digits_arrays()
    glyphs = torch.nn.functional.interpolate(torch.as_tensor(images, dtype=torch.float32)[:, None] / 16.0,
                                             size=(12, 12), mode="bilinear", align_corners=False).double()
    labels = torch.as_tensor(labels)
    x_train, y_train, x_test, y_test = data._digits_base()
    ink, y = (torch.cat([x_train, x_test])[:, 0].double() + 1) / 2, torch.cat([y_train, y_test])
    assert torch.equal(torch.bincount(y), torch.bincount(labels))
    expected = torch.zeros(10, 20, 20, dtype=torch.float64)
    for k in range(10):
        mean_glyph = glyphs[labels == k, 0].mean(0)
        for r in range(2, 7):
            for c in range(2, 7):
                expected[k, r:r + 12, c:c + 12] += mean_glyph / 25
    observed = torch.stack([ink[y == k].mean(0) for k in range(10)])
    rms = (observed[:, None] - expected[None]).pow(2).mean((2, 3)).sqrt()      # [observed label, digit]
    assert rms.argmin(1).tolist() == list(range(10))
    assert float(rms.diagonal().max()) < 0.03

# ---- settings and errors ---------------------------------------------------------------------

def test_settings_validation_names_field_and_choices():
    with pytest.raises(ValueError, match=r"`dataset`: 'mnist' is not a dataset; allowed: digits, cifar10"):
        DataSettings(dataset="mnist")
    with pytest.raises(ValueError, match=r"`cue_proportion`: 1.5 is not allowed; must be >= 0 and <= 1"):
        DataSettings(cue_proportion=1.5)
    with pytest.raises(ValueError, match=r"`cue`: 'dominoes' is not available for dataset 'cifar10'"):
        DataSettings(dataset="cifar10", cue="dominoes")
    with pytest.raises(ValueError, match="`cue`"):
        DataSettings(cue="stripe")


def test_missing_root_names_download_command(tmp_path):
    with pytest.raises(DataError, match=r"`data.root` is not set; fetch it with `mmc-sweep data download cifar10"):
        load_cue_data(DataSettings(dataset="cifar10"))
    with pytest.raises(DataError, match=f"mmc-sweep data download cifar100 --root {tmp_path / 'nope'}"):
        load_cue_data(DataSettings(dataset="cifar100", root=str(tmp_path / "nope")))
    with pytest.raises(DataError, match=f"mmc-sweep data download dominoes --root {tmp_path}"):
        load_cue_data(DataSettings(dataset="dominoes", root=str(tmp_path)))


# ---- batching --------------------------------------------------------------------------------

def numbered_split(n: int) -> Split:
    x = torch.arange(n, dtype=torch.float16).view(n, 1, 1, 1)
    return Split(x, torch.arange(n))


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("drop_last", [True, False])
def test_sharded_batches_reproduce_the_global_batch(world_size, drop_last):
    split = numbered_split(103)
    kwargs = dict(seed=9, epoch=2, drop_last=drop_last)
    single = list(iterate_batches(split, 16, **kwargs))
    shards = [list(iterate_batches(split, 16, rank=r, world_size=world_size, **kwargs)) for r in range(world_size)]
    assert all(len(s) == len(single) for s in shards)
    for step, (x, y) in enumerate(single):
        assert torch.equal(torch.cat([s[step][1] for s in shards]), y)
        assert torch.equal(torch.cat([s[step][0] for s in shards]), x)
        sizes = [len(s[step][1]) for s in shards]
        assert max(sizes) - min(sizes) <= 1
    assert len(single) == (103 // 16 if drop_last else math.ceil(103 / 16))
    seen = torch.cat([y for _, y in single])
    assert len(set(seen.tolist())) == len(seen)  # without replacement
    assert len(seen) == (96 if drop_last else 103)


def test_batches_are_float32_and_seeded_by_epoch():
    split = numbered_split(50)
    first = [y for _, y in iterate_batches(split, 10, seed=1, epoch=0)]
    again = [y for _, y in iterate_batches(split, 10, seed=1, epoch=0)]
    next_epoch = [y for _, y in iterate_batches(split, 10, seed=1, epoch=1)]
    other_seed = [y for _, y in iterate_batches(split, 10, seed=2, epoch=0)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(torch.cat(first), torch.cat(next_epoch))
    assert not torch.equal(torch.cat(first), torch.cat(other_seed))
    x, y = next(iterate_batches(split, 10, seed=1, epoch=0))
    assert x.dtype == torch.float32 and torch.equal(x.view(-1).long(), y)
    ordered = torch.cat([y for _, y in iterate_batches(split, 10, seed=1, epoch=0, shuffle=False)])
    assert torch.equal(ordered, torch.arange(50))


def test_batch_size_must_divide_by_world_size():
    with pytest.raises(ValueError, match="`batch_size` 10 is not divisible by `world_size` 4; use a multiple of 4"):
        next(iterate_batches(numbered_split(20), 10, seed=0, epoch=0, rank=0, world_size=4))
    with pytest.raises(ValueError, match="rank"):
        next(iterate_batches(numbered_split(20), 8, seed=0, epoch=0, rank=4, world_size=4))


def test_clean_subset_is_seeded_and_without_replacement():
    subset = clean_subset_indices(1400, 200, seed=3)
    assert subset.dtype == torch.int64 and len(set(subset.tolist())) == 200
    assert int(subset.min()) >= 0 and int(subset.max()) < 1400
    assert torch.equal(subset, clean_subset_indices(1400, 200, seed=3))
    assert not torch.equal(subset, clean_subset_indices(1400, 200, seed=4))
    assert sorted(clean_subset_indices(10, 10, seed=0).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="`size` 1401 is not allowed; must be between 0 and the 1400"):
        clean_subset_indices(1400, 1401, seed=0)



def test_a_smaller_clean_subset_is_the_first_draws_of_a_larger_one():
    """Indices come in draw order: the subset of size k is the first k of the subset of size m > k."""
    big = clean_subset_indices(300, 120, seed=5)
    for k in (0, 1, 40, 119):
        assert torch.equal(clean_subset_indices(300, k, seed=5), big[:k]), k


# ---- datasets of your own: loaded by tests.tasks.test_data:<name> ---------------------------------

def _user_images(n: int, labels: np.ndarray, num_classes: int) -> data.ImageArrays:
    x = np.random.default_rng(0).integers(0, 256, (n, 1, 6, 6), dtype=np.uint8)
    return data.ImageArrays(x, labels, x[:5], labels[:5], num_classes)


def user_47(root):
    return _user_images(47, np.arange(47) % 3, 3)


def user_label_equal_to_k(root):
    return _user_images(20, np.arange(20) % 4, 3)     # labels 0..3 with 3 classes: 3 is out of range


def test_a_user_datasets_validation_share_is_a_tenth_of_its_training_split_rounded():
    info = data.user_dataset_info("tests.tasks.test_data:user_47")
    assert (info.train_size, info.val_size) == (42, 5)     # 4.7 -> 5
    assert (info.num_classes, info.in_channels, info.image_size) == (3, 1, (6, 6))


def test_a_user_dataset_with_a_label_equal_to_its_class_count_is_refused():
    with pytest.raises(DataError, match=r"integer labels in \[0, 3\)"):
        data.dataset_info("tests.tasks.test_data:user_label_equal_to_k")

# ---- seeding ---------------------------------------------------------------------------------

def test_derive_seed_is_stable_across_processes_and_distinct():
    code = "from tasks.seeding import derive_seed; print(derive_seed(1, 2, 3), derive_seed(7, 'x'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == [str(derive_seed(1, 2, 3)), str(derive_seed(7, "x"))]
    seeds = {derive_seed(a, b) for a in range(20) for b in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(1, 2) != derive_seed(2, 1) != derive_seed(12)
    assert derive_seed(5) != derive_seed("5")
    with pytest.raises(TypeError, match="seed part True"):
        derive_seed(True)
    with pytest.raises(TypeError, match="seed part 1.5"):
        derive_seed(1.5)


def test_generator_streams_repeat():
    a = torch.rand(5, generator=generator(3, 4))
    assert torch.equal(a, torch.rand(5, generator=generator(3, 4)))
    assert not torch.equal(a, torch.rand(5, generator=generator(3, 5)))


# ---- mutation hunt (data): behaviours the suite did not pin yet -----------------------------------

def test_the_digit_split_is_a_seeded_shuffle_of_the_file_not_its_first_1400_images():
    """docs/SCIENCE.md: offsets, noise *and split* come from a constant seed. A shuffled split agrees with the
    file's label sequence at about one position in ten (ten classes); the file's own order would agree everywhere."""
    _, labels = data._digits_arrays()
    _, y_train, _, y_test = data._digits_base()
    in_file_order = torch.as_tensor(labels)
    agree = float((torch.cat([y_train, y_test]) == in_file_order).double().mean())
    assert agree < 0.2
    assert torch.equal(torch.bincount(torch.cat([y_train, y_test])), torch.bincount(in_file_order))


def test_the_digit_offsets_are_drawn_independently_per_axis():
    """Each glyph's row and column offsets are two independent draws in [2, 6]: the offset variance (2 per axis)
    dominates the centre of ink, so row and column centres of ink are nearly uncorrelated (one shared offset
    would correlate them at about 0.8)."""
    x_train, _, x_test, _ = data._digits_base()
    ink = ((torch.cat([x_train, x_test])[:, 0].double() + 1) / 2).clamp(0, 1)
    ink = torch.where(ink > 0.5, ink, torch.zeros_like(ink))       # the glyph, not the noise
    total = ink.sum((1, 2))
    rows = (ink * torch.arange(20.0, dtype=torch.float64).view(1, 20, 1)).sum((1, 2)) / total
    cols = (ink * torch.arange(20.0, dtype=torch.float64).view(1, 1, 20)).sum((1, 2)) / total
    assert abs(float(torch.corrcoef(torch.stack([rows, cols]))[0, 1])) < 0.2


def test_writing_into_a_loaded_evaluation_set_never_leaks_into_a_later_load():
    """Each load owns its tensors: the raw digits cache must not be handed out (a caller that paints or
    normalises in place would otherwise change every later task's test images)."""
    first = load_cue_data(DataSettings(seed=11))
    for name in data.EVAL_SETS:
        first.eval_sets[name].x.zero_()
    again = load_cue_data(DataSettings(seed=11))
    assert float(again.eval_sets["nocue"].x.abs().sum()) > 0
    assert float(data._digits_base()[2].abs().sum()) > 0


def _bilinear_reference(image: np.ndarray, out: int) -> np.ndarray:
    """Bilinear resize of one [H, W] float image with half-pixel centres (align_corners=False), written out:
    output pixel i samples the input at (i + 0.5) * H / out - 0.5, clamped at the first pixel."""
    def weights(size_in: int) -> np.ndarray:
        w = np.zeros((out, size_in))
        for i in range(out):
            src = max((i + 0.5) * size_in / out - 0.5, 0.0)
            lo = min(int(np.floor(src)), size_in - 1)
            hi = min(lo + 1, size_in - 1)
            frac = src - lo
            w[i, lo] += 1 - frac
            w[i, hi] += frac
        return w
    return weights(image.shape[0]) @ image @ weights(image.shape[1]).T


def test_a_resized_image_is_the_bilinear_half_pixel_resample_of_its_normalised_pixels():
    """The dominoes' FashionMNIST halves are resized 28 -> 32 bilinearly (align_corners=False) and normalised
    to x * 2 - 1; checked against the interpolation written out in numpy."""
    images = np.random.default_rng(3).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    out = data._normalise(images, torch.device("cpu"), torch.float32, (32, 32))
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    for i in range(2):
        expected = _bilinear_reference(images[i, 0] / 255.0, 32) * 2 - 1
        np.testing.assert_allclose(out[i, 0].numpy(), expected, atol=1e-5)


def test_cue_count_rounds_half_up():
    """docs/SCIENCE.md: exactly floor(p * n + 0.5) samples of a class carry the cue: 2.5 -> 3, 3.5 -> 4, 1.4 -> 1."""
    assert [data.cue_count(5, 0.5), data.cue_count(7, 0.5), data.cue_count(7, 0.2), data.cue_count(3, 0.9)] == [3, 4, 1, 3]
    assert data.cue_count(10, 0.0) == 0 and data.cue_count(10, 1.0) == 10


def test_other_file_sizes_hold_out_the_published_fraction_rounded_to_the_nearest_image():
    """CIFAR-10 holds out 5,000 of 50,000 (a tenth): 97 images hold out 9.7 -> 10, 94 hold out 9.4 -> 9."""
    info = data.DATASETS["cifar10"]
    assert data.validation_count(info, 97) == 10
    assert data.validation_count(info, 94) == 9
    keep, held_out = data.validation_indices(info, 97)
    assert len(held_out) == 10 and len(keep) == 87


def test_a_training_split_too_small_to_hold_out_one_validation_image_is_refused():
    """4 CIFAR-10 images hold out round(0.4) = 0: validation would be empty, which is refused."""
    with pytest.raises(DataError, match="cannot hold out 0 validation images from a training split of 4"):
        data.validation_indices(data.DATASETS["cifar10"], 4)


def test_grid_boxes_of_a_non_square_image_follow_its_height_for_rows_and_its_width_for_columns():
    """20 rows x 32 columns: rows near 1, middle 20 // 2 - 1 = 9, far 20 - 1 - 3 = 16; columns 1, 15, 28; the
    tenth spot at ((1 + 9) // 2, (1 + 15) // 2) = (5, 8)."""
    corners = data.box_corners(20, 32).tolist()
    rows, cols = (1, 9, 16), (1, 15, 28)
    assert corners == [[r, c] for r in rows for c in cols] + [[5, 8]]


def test_ring_boxes_of_a_non_square_image_sit_on_its_border():
    """Ring on 20 x 32: far row 17, far column 29, edge-centre row 9; top/bottom columns 0, round(29/3) = 10,
    round(58/3) = 19, 29."""
    corners = data.box_corners(20, 32, layout="ring").tolist()
    along = (0, 10, 19, 29)
    assert corners == [[0, c] for c in along] + [[9, 0], [9, 29]] + [[17, c] for c in along]


def test_rgb_box_colours_for_thirty_classes_are_red_green_and_blue():
    """Hue (label div 10) / 3: 0 red, 1/3 green, 2/3 blue (fully saturated, normalised to -1/+1)."""
    colours = data.box_colours(30, 3)
    assert colours[0].tolist() == [1.0, -1.0, -1.0] and colours[9].tolist() == [1.0, -1.0, -1.0]
    assert colours[10].tolist() == [-1.0, 1.0, -1.0]
    assert colours[25].tolist() == [-1.0, -1.0, 1.0]


def test_batches_drop_the_last_partial_batch_by_default():
    """The docstring: only with `drop_last=False` is the final smaller batch yielded; 23 rows in 5s: 4 batches."""
    batches = [y for _, y in iterate_batches(numbered_split(23), 5, seed=0, epoch=0)]
    assert [len(y) for y in batches] == [5, 5, 5, 5]


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="`batch_size` 0 is not allowed; must be >= 1"):
        next(iterate_batches(numbered_split(20), 0, seed=0, epoch=0))


def test_real_datasets_are_held_in_float16_and_loaded_that_way(tmp_path):
    """docs/SCIENCE.md: float16 storage for the real datasets (the built-in digits stay float32)."""
    assert {name: info.storage_dtype for name, info in data.DATASETS.items()} == {
        "digits": "float32", "cifar10": "float16", "cifar100": "float16", "fashion_mnist": "float16",
        "dominoes": "float16"}
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    loaded = load_cue_data(DataSettings(dataset="fashion_mnist", cue_proportion=0.5, root=str(tmp_path)))
    assert loaded.train.x.dtype == loaded.eval_sets["cue"].x.dtype == torch.float16


def test_default_data_settings_are_the_built_in_digits_without_cues_evaluated_on_the_test_split():
    """The defaults are part of every task id (ids leave defaults out): digits, box cue, p = 0, seed 0, the cue
    drawn from `seed`, the test split, no root."""
    d = DataSettings()
    assert (d.dataset, d.cue, d.cue_proportion, d.seed, d.cue_seed, d.eval_split, d.root) == (
        "digits", "box", 0.0, 0, None, "test", None)


def user_four(root):
    x = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 1, 2, 2)
    return data.ImageArrays(x, np.array([0, 1, 0, 1]), x[:2], np.array([0, 1]), 2)


def user_one_class(root):
    return _user_images(10, np.zeros(10, dtype=np.int64), 1)


def user_four_channels(root):
    x = np.zeros((6, 4, 5, 5), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(6) % 2, x[:2], np.array([0, 1]), 2)


def user_channels_differ(root):
    x = np.zeros((6, 1, 5, 5), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(6) % 2, np.zeros((2, 3, 5, 5), dtype=np.uint8), np.array([0, 1]), 2)


def user_distinct_test(root):
    rng = np.random.default_rng(7)
    x_train = rng.integers(0, 128, (30, 1, 6, 6), dtype=np.uint8)          # dark training images
    x_test = rng.integers(128, 256, (5, 1, 6, 6), dtype=np.uint8)          # bright test images
    return data.ImageArrays(x_train, np.arange(30) % 3, x_test, np.array([0, 1, 2, 0, 1]), 3)


def user_width_differs(root):
    x = np.zeros((6, 1, 5, 5), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(6) % 2, np.zeros((2, 1, 5, 6), dtype=np.uint8), np.array([0, 1]), 2)


def test_a_user_dataset_of_four_images_still_holds_out_one_for_validation():
    """A tenth of 4 rounds to 0, but at least one image is held out (an empty validation set is no split)."""
    info = data.user_dataset_info("tests.tasks.test_data:user_four")
    assert (info.train_size, info.val_size) == (3, 1)


@pytest.mark.parametrize("name, message", [
    ("user_one_class", "2 to 10000 classes"),
    ("user_four_channels", "C = 1 or 3"),
    ("user_channels_differ", "train and test images must have one shape"),
    ("user_width_differs", "train and test images must have one shape"),
])
def test_a_user_dataset_needs_two_classes_one_or_three_channels_and_one_image_shape(name, message):
    with pytest.raises(DataError, match=message):
        data.dataset_info(f"tests.tasks.test_data:{name}")


def test_a_user_dataset_trains_on_its_training_split_and_is_evaluated_on_its_test_split():
    """The counterfactual sets of `eval_split: test` are built from the dataset's own test images (here all
    brighter than any training image), normalised as x / 255 * 2 - 1."""
    name = "tests.tasks.test_data:user_distinct_test"
    arrays = user_distinct_test(None)
    loaded = load_cue_data(DataSettings(dataset=name, cue_proportion=0.5, seed=1))
    keep, _ = data.validation_indices(data.dataset_info(name), 30)
    torch.testing.assert_close(loaded.train_clean.x, normalise(arrays.x_train[keep.numpy()]))
    torch.testing.assert_close(loaded.eval_sets["nocue"].x, normalise(arrays.x_test))
    assert loaded.eval_sets["nocue"].y.tolist() == [0, 1, 2, 0, 1]


def test_derive_seed_is_the_top_63_bits_of_sha256_over_the_type_tagged_comma_joined_parts():
    """The recipe written out (tasks/seeding.py): every recorded sweep's streams depend on it, so it may not
    drift: ints tagged `i`, strings `s`, joined by commas, the first 8 digest bytes big-endian, shifted to 63 bits."""
    import hashlib

    def reference(text: str) -> int:
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1

    assert derive_seed(1, 2, 3) == reference("i1,i2,i3")
    assert derive_seed(7, "randcue") == reference("i7,srandcue")
    assert derive_seed(0) == reference("i0")


def test_a_domino_pool_draws_each_image_of_the_requested_class_uniformly():
    """A cued sample's top half is a uniformly random pool image of its class: class 0 has pool images 0, 3 and
    5, each drawn about a third of the time (3000 draws: 1000 +- 26 each), and never another class's image."""
    labels = np.array([0, 1, 2, 0, 1, 0, 2], dtype=np.int64)
    pool = data.DominoPool.build(torch.zeros(7, 1, 2, 2), labels)
    drawn = pool.draw(torch.zeros(3000, dtype=torch.long), generator(0, "pool"))
    counts = torch.bincount(drawn, minlength=7)
    assert counts[[1, 2, 4, 6]].sum() == 0
    assert all(880 < int(counts[i]) < 1120 for i in (0, 3, 5)), counts.tolist()
    twos = pool.draw(torch.full((300,), 2), generator(1, "pool"))
    assert set(twos.tolist()) == {2, 6}


def test_a_domino_pool_without_images_of_a_class_names_the_class():
    """A pool lacking the last class (9) cannot pair it: the error names the class instead of failing on an index."""
    pool = data.DominoPool.build(torch.zeros(9, 1, 2, 2), np.arange(9, dtype=np.int64))
    with pytest.raises(DataError, match=r"no images of classes \[9\]"):
        pool.draw(torch.tensor([3, 9]), generator(0, "pool"))


# ---- mutation hunt 4 (data): streams, dtypes, refusals and edges -----------------------------------

def test_every_dominoes_draw_comes_from_its_own_named_stream(dominoes_root):
    """The recipe written out: which training samples carry the cue (`cue_seed`, "cued") and which pool image each
    gets (`cue_seed`, "train_cue"); the `cue` set's pool images (`seed`, "cue"); `randcue`'s classes, then its pool
    images, from (`seed`, "randcue"); `randimg`'s derangement, then its pool images, from (`seed`, "randimg"). No two
    draws share a stream, so e.g. the `cue` set's images are not correlated with `randcue`'s classes."""
    root, levels, labels, _ = dominoes_root
    loaded = load_cue_data(DataSettings(dataset="dominoes", cue_proportion=0.5, seed=4, cue_seed=7, root=str(root)))
    pool_tr = data.DominoPool.build(torch.zeros(40, 1, 1, 1), labels["train"].astype(np.int64))
    pool_te = data.DominoPool.build(torch.zeros(20, 1, 1, 1), labels["t10k"].astype(np.int64))

    y_train = loaded.train.y
    cued = data.choose_cued(y_train, 0.5, generator(7, "cued"))
    assert torch.equal(loaded.cued, cued)
    index = cued.nonzero().squeeze(1)
    expected = pool_tr.draw(y_train[index], generator(7, "train_cue"))
    assert top_source(loaded.train.x[index], levels["train"]) == expected.tolist()

    sets, y = loaded.eval_sets, loaded.eval_sets["nocue"].y
    n = len(y)
    assert top_source(sets["cue"].x, levels["t10k"]) == pool_te.draw(y, generator(4, "cue")).tolist()
    gen = generator(4, "randcue")
    classes = torch.randint(0, 10, (n,), generator=gen)
    assert top_source(sets["randcue"].x, levels["t10k"]) == pool_te.draw(classes, gen).tolist()
    gen = generator(4, "randimg")
    partner = data._derangement(n, gen)
    assert torch.equal(sets["randimg"].x[:, :, 32:], sets["nocue"].x[partner, :, 32:])
    assert top_source(sets["randimg"].x, levels["t10k"]) == pool_te.draw(y, gen).tolist()


def test_the_clean_subset_is_the_start_of_its_own_seeded_permutation():
    """`clean_subset_indices` draws from the (seed, "clean_subset") stream, not from a stream another draw uses
    (e.g. epoch 0's shuffle, which would make the clean subset the first batches of the first epoch)."""
    expected = torch.randperm(300, generator=generator(5, "clean_subset"))[:40]
    assert torch.equal(clean_subset_indices(300, 40, seed=5), expected)
    first_batch = next(iterate_batches(numbered_split(300), 40, seed=5, epoch=0))[1]
    assert not torch.equal(clean_subset_indices(300, 40, seed=5), first_batch)


def test_a_final_batch_of_one_row_is_kept_with_drop_last_false():
    """21 rows in 5s with `drop_last=False`: four full batches and a fifth of the one row left; every row once."""
    batches = [y for _, y in iterate_batches(numbered_split(21), 5, seed=3, epoch=0, drop_last=False)]
    assert [len(y) for y in batches] == [5, 5, 5, 5, 1]
    assert sorted(torch.cat(batches).tolist()) == list(range(21))


def test_images_are_normalised_chunk_by_chunk_without_losing_or_repeating_rows(monkeypatch):
    """`_normalise` converts `_CHUNK` rows at a time; with chunks of 4, ten images (chunks 4, 4, 2) must still each
    be x / 255 * 2 - 1 of their own pixels."""
    monkeypatch.setattr(data, "_CHUNK", 4)
    images = np.random.default_rng(5).integers(0, 256, (10, 1, 3, 3), dtype=np.uint8)
    out = data._normalise(images, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(out, normalise(images))


def test_an_unknown_box_layout_is_refused():
    with pytest.raises(ValueError, match="box layout 'diagonal' is unknown; allowed: grid, ring"):
        data.box_corners(20, 20, layout="diagonal")


def test_box_colours_for_two_channel_images_are_refused():
    """Box cues know grey (1 channel) and RGB (3); two channels are neither."""
    with pytest.raises(ValueError, match="box cues support 1 or 3 channels, got 2"):
        data.box_colours(10, 2)


def test_hues_of_every_cifar100_group_match_hsv_with_full_saturation_and_value():
    """RGB box colours: hue (label div 10) / ceil(K / 10), s = v = 1, normalised x * 2 - 1; checked against
    `colorsys.hsv_to_rgb` for the ten groups of CIFAR-100 and the three of a 25-class dataset."""
    import colorsys

    for classes in (100, 25):
        groups = math.ceil(classes / 10)
        colours = data.box_colours(classes, 3)
        for label in range(classes):
            expected = [2 * v - 1 for v in colorsys.hsv_to_rgb((label // 10) / groups, 1.0, 1.0)]
            assert colours[label].tolist() == pytest.approx(expected, abs=1e-6), (classes, label)


def user_uint8_labels(root):
    x = np.random.default_rng(1).integers(0, 256, (20, 1, 6, 6), dtype=np.uint8)
    return data.ImageArrays(x, (np.arange(20) % 3).astype(np.uint8), x[:6], (np.arange(6) % 3).astype(np.uint8), 3)


def test_a_user_datasets_uint8_labels_are_loaded_as_int64():
    """Labels are int64 wherever they are handed out (`Split.y`), whatever integer type the dataset returns."""
    name = "tests.tasks.test_data:user_uint8_labels"
    loaded = load_cue_data(DataSettings(dataset=name, cue_proportion=1.0, seed=2))
    keep, _ = data.validation_indices(data.dataset_info(name), 20)
    assert loaded.train.y.dtype == torch.int64 and loaded.train.y.tolist() == (keep % 3).tolist()
    for split in loaded.eval_sets.values():
        assert split.y.dtype == torch.int64 and split.y.tolist() == [0, 1, 2, 0, 1, 2]
    val = load_cue_data(DataSettings(dataset=name, eval_split="val"))
    assert all(s.y.dtype == torch.int64 for s in val.eval_sets.values())


def user_non_square(root):
    x = np.zeros((12, 3, 5, 7), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(12) % 2, x[:2], np.array([0, 1]), 2)


def test_a_user_datasets_image_size_is_height_then_width():
    info = data.user_dataset_info("tests.tasks.test_data:user_non_square")
    assert (info.in_channels, info.image_size) == (3, (5, 7))


def user_negative_label(root):
    return _user_images(10, np.array([0, 1, 2, -1, 0, 1, 2, 0, 1, 2]), 3)


def user_short_labels(root):
    x = np.zeros((10, 1, 4, 4), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(9) % 2, x[:2], np.array([0, 1]), 2)


def user_bad_test_images(root):
    x = np.zeros((10, 1, 4, 4), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(10) % 2, x[:2].astype(np.float32), np.array([0, 1]), 2)


def user_bad_test_labels(root):
    x = np.zeros((10, 1, 4, 4), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(10) % 2, x[:2], np.array([0, 2]), 2)


@pytest.mark.parametrize("name, message", [
    ("user_negative_label", r"y_train must be 10 integer labels in \[0, 3\)"),
    ("user_short_labels", r"y_train must be 10 integer labels in \[0, 2\)"),
    ("user_bad_test_images", r"x_test must be a uint8 array \[N, C, H, W\]"),
    ("user_bad_test_labels", r"y_test must be 2 integer labels in \[0, 2\)"),
])
def test_a_user_dataset_with_a_negative_label_too_few_labels_or_a_bad_test_split_is_refused(name, message):
    """Both splits are checked: labels one per image and in [0, num_classes), images uint8 [N, C, H, W]."""
    with pytest.raises(DataError, match=message):
        data.dataset_info(f"tests.tasks.test_data:{name}")


def user_ten_thousand_classes(root):
    return _user_images(10, np.arange(10) * 999, 10_000)


def user_no_test_images(root):
    x = np.zeros((10, 1, 4, 4), dtype=np.uint8)
    return data.ImageArrays(x, np.arange(10) % 2, x[:0], np.zeros(0, dtype=np.int64), 2)


def test_a_user_dataset_may_have_ten_thousand_classes_and_an_empty_test_split():
    """The limits are inclusive (2 to 10000 classes), and an empty split's labels need no range check."""
    assert data.user_dataset_info("tests.tasks.test_data:user_ten_thousand_classes").num_classes == 10_000
    assert data.user_dataset_info("tests.tasks.test_data:user_no_test_images").train_size == 9


def test_a_home_relative_data_root_is_expanded(tmp_path, monkeypatch):
    """`data.root: ~/datasets` names a folder in the user's home (as `mmc-sweep data download --root` does)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "datasets" / "fashion-mnist", images, labels)
    loaded = load_cue_data(DataSettings(dataset="fashion_mnist", root="~/datasets"))
    assert len(loaded.train) == 37


def test_data_settings_refuse_a_negative_cue_proportion_or_cue_seed_and_dominoes_cues_on_your_own_data():
    """p is a fraction in [0, 1]; seeds are >= 0; a dataset of your own gets box cues only."""
    with pytest.raises(ValueError, match="`cue_proportion`"):
        DataSettings(cue_proportion=-0.1)
    with pytest.raises(ValueError, match="`cue_seed`"):
        DataSettings(cue_seed=-1)
    with pytest.raises(ValueError, match=r"`cue`: 'dominoes' is not available for dataset .*allowed: box"):
        DataSettings(dataset="tests.tasks.test_data:user_four", cue="dominoes")


def test_dominoes_without_cifar10_names_the_missing_batch_and_both_datasets(tmp_path):
    """A DataError names the path it is about (`DataError.path`); dominoes' error keeps CIFAR-10's missing batch and
    adds that the dataset needs both CIFAR-10 and FashionMNIST."""
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    with pytest.raises(DataError, match="needs both CIFAR-10 and FashionMNIST") as info:
        load_cue_data(DataSettings(dataset="dominoes", root=str(tmp_path)))
    assert info.value.path == str(tmp_path / "cifar-10-batches-py" / "data_batch_1")


# ---- mutation hunt 6 (data): recipes of the versioned images, user roots, edges of splits and batches -------------

def test_the_digits_are_data_version_twos_recipe_and_their_boxes_touch_the_ink_as_often_as_the_docs_say():
    """DATA_VERSION 2's digits, the recipe of docs/SCIENCE.md written out: each 8x8 glyph / 16 resized bilinearly
    (half-pixel) to 12x12, placed at an offset uniform in [2, 6] per axis in a black 20x20 canvas, x * 2 - 1 plus 0.3
    unit Gaussian noise, shuffled, the first 1,400 for training; offsets, then noise, then order from one generator of
    the constant seed 20230. Any change gives every task other images under the same ids (it needs a DATA_VERSION
    bump). The docs' own numbers check the canvas: the box of an image's own label touches its ink (> 0.05 before
    noise) on 6.4% of the 1,797 images, the box of some label on 39%."""
    from tasks.settings.data import DATA_VERSION

    assert DATA_VERSION == 2
    images, labels = data._digits_arrays()
    labels = torch.as_tensor(labels)
    n = len(labels)
    glyphs = torch.nn.functional.interpolate(torch.as_tensor(images, dtype=torch.float32)[:, None] / 16.0,
                                             size=(12, 12), mode="bilinear", align_corners=False)
    gen = generator(20230)
    offsets = torch.randint(2, 7, (n, 2), generator=gen)
    canvas = torch.zeros(n, 1, 20, 20)
    for i, (r, c) in enumerate(offsets.tolist()):
        canvas[i, 0, r:r + 12, c:c + 12] = glyphs[i, 0]
    x = canvas * 2 - 1 + 0.3 * torch.randn(canvas.shape, generator=gen)
    order = torch.randperm(n, generator=gen)
    x_train, y_train, x_test, y_test = data._digits_base()
    assert torch.equal(x_train, x[order[:1400]]) and torch.equal(x_test, x[order[1400:]])
    assert torch.equal(y_train, labels[order[:1400]]) and torch.equal(y_test, labels[order[1400:]])
    assert y_train.dtype == torch.int64
    boxes = torch.zeros(10, 20, 20, dtype=torch.bool)
    for k, corner in DIGITS_BOXES.items():
        boxes[k] = box_mask((20, 20), corner)
    touched = ((canvas[:, 0] > 0.05)[:, None] & boxes[None]).flatten(2).any(2)       # [image, label of the box]
    assert round(100 * float(touched[torch.arange(n), labels].double().mean()), 1) == 6.4
    assert round(100 * float(touched.any(1).double().mean())) == 39


def test_the_validation_images_are_data_version_twos_fixed_draw_for_each_dataset():
    """The recipe written out: a dataset's held-out images are the first `validation_count` of a permutation of its
    published training split drawn from (20231, "validation", dataset name), sorted, and the training images the rest,
    sorted. Like the digits' recipe it may not drift under DATA_VERSION 2; each dataset has a draw of its own."""
    for name, n in (("digits", 1400), ("cifar10", 97), ("cifar100", 97), ("fashion_mnist", 40)):
        info = data.DATASETS[name]
        count = data.validation_count(info, n)
        held = torch.zeros(n, dtype=torch.bool)
        held[torch.randperm(n, generator=generator(20231, "validation", name))[:count]] = True
        keep, held_out = data.validation_indices(info, n)
        assert held_out.tolist() == held.nonzero().squeeze(1).tolist(), name
        assert keep.tolist() == (~held).nonzero().squeeze(1).tolist(), name
    assert data.validation_indices(data.DATASETS["cifar10"], 97)[1].tolist() != \
        data.validation_indices(data.DATASETS["cifar100"], 97)[1].tolist()


def user_one_training_image(root):
    x = np.zeros((1, 1, 4, 4), dtype=np.uint8)
    return data.ImageArrays(x, np.array([0]), np.zeros((2, 1, 4, 4), dtype=np.uint8), np.array([0, 1]), 2)


def test_a_user_dataset_whose_only_training_image_would_be_held_out_is_refused():
    """One training image holds out max(1, round(0.1)) = 1: nothing would be left to train on, which is refused
    like an empty validation set (both halves of the split must be non-empty)."""
    with pytest.raises(DataError, match="cannot hold out 1 validation images from a training split of 1"):
        load_cue_data(DataSettings(dataset="tests.tasks.test_data:user_one_training_image"))


def user_from_root(root):
    """A dataset of your own that reads its arrays from `data.root`."""
    x, y = np.load(os.path.join(root, "x.npy")), np.load(os.path.join(root, "y.npy"))
    return data.ImageArrays(x, y, x[:4], y[:4], 2)


def test_a_user_dataset_is_loaded_from_data_root(tmp_path):
    """`data.root` is handed to your loader, both when its facts are read and when its images are loaded."""
    x = np.random.default_rng(4).integers(0, 256, (20, 1, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    name = "tests.tasks.test_data:user_from_root"
    info = data.dataset_info(name, str(tmp_path))
    assert (info.train_size, info.val_size) == (18, 2)
    loaded = load_cue_data(DataSettings(dataset=name, root=str(tmp_path), cue_proportion=0.5))
    keep, _ = data.validation_indices(info, 20)
    torch.testing.assert_close(loaded.train_clean.x, normalise(x[keep.numpy()]))
    torch.testing.assert_close(loaded.eval_sets["nocue"].x, normalise(x[:4]))


def test_the_validation_sets_of_a_file_dataset_are_its_held_out_images_with_their_own_labels(tmp_path):
    """`eval_split: val` on FashionMNIST files: the four sets hold the 3 of 40 held-out training images (x / 255 * 2 - 1)
    and those images' labels."""
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    loaded = load_cue_data(DataSettings(dataset="fashion_mnist", seed=1, eval_split="val", root=str(tmp_path)))
    _, held_out = data.validation_indices(data.DATASETS["fashion_mnist"], 40)
    assert len(held_out) == 3
    torch.testing.assert_close(loaded.eval_sets["nocue"].x.float(), normalise(images["train"][held_out.numpy()][:, None]),
                               atol=1e-3, rtol=0)
    for name, split in loaded.eval_sets.items():
        assert split.y.tolist() == labels["train"][held_out.numpy()].tolist(), name


def test_the_validation_sets_draw_from_the_same_named_streams_of_the_data_seed_as_the_test_sets():
    """With `eval_split: val` the sets are built from the 200 validation images by the test split's recipe, written out
    here with the ring boxes (value 2.0): `cue` boxes the true label; `randcue` a class randint(0, 10) from (seed,
    "randcue"); `randimg` the derangement drawn from (seed, "randimg"), boxed with the true label."""
    seed = 6
    sets = load_cue_data(DataSettings(seed=seed, eval_split="val")).eval_sets
    nocue, y = sets["nocue"].x, sets["nocue"].y
    n = len(y)

    def boxed(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = images.clone()
        for i, k in enumerate(labels.tolist()):
            r, c = DIGITS_BOXES[k]
            out[i, 0, r:r + 3, c:c + 3] = 2.0
        return out

    classes = torch.randint(0, 10, (n,), generator=generator(seed, "randcue"))
    partner = data._derangement(n, generator(seed, "randimg"))
    assert n == 200
    assert torch.equal(sets["cue"].x, boxed(nocue, y))
    assert torch.equal(sets["randcue"].x, boxed(nocue, classes))
    assert torch.equal(sets["randimg"].x, boxed(nocue[partner], y))


def test_a_cue_seed_of_zero_is_a_seed_like_any_other():
    """`cue_seed: null` means "drawn from `seed`"; 0 is a seed of its own: cue_seed 0 with seed 5 cues exactly the samples
    that seed 0 cues, not those of seed 5."""
    own = load_cue_data(DataSettings(cue_proportion=0.5, seed=5, cue_seed=0)).cued
    assert torch.equal(own, load_cue_data(DataSettings(cue_proportion=0.5, seed=0)).cued)
    assert not torch.equal(own, load_cue_data(DataSettings(cue_proportion=0.5, seed=5)).cued)


def test_a_negative_rank_is_refused():
    """Ranks are 0 .. world_size - 1; rank -1 would slice an empty or wrong share of each batch."""
    with pytest.raises(ValueError, match="`rank` -1 / `world_size` 2 are not allowed"):
        next(iterate_batches(numbered_split(20), 8, seed=0, epoch=0, rank=-1, world_size=2))


def test_each_epochs_order_is_the_permutation_of_its_own_seed_and_epoch_stream():
    """The recipe written out: epoch e of data seed s visits the rows in the order of randperm(n) drawn from (s, "shuffle",
    e) (like the clean subset's (s, "clean_subset")), so a resumed run replays its epochs bit for bit."""
    for seed, epoch in ((4, 2), (0, 0)):
        got = torch.cat([y for _, y in iterate_batches(numbered_split(30), 10, seed=seed, epoch=epoch)])
        assert torch.equal(got, torch.randperm(30, generator=generator(seed, "shuffle", epoch))), (seed, epoch)


def test_a_domino_draw_is_the_floor_of_a_float64_uniform_times_the_class_size():
    """The recipe written out: for each requested class k, one float64 uniform u from the stream picks the floor(u * n_k)-th
    pool image of class k, the images of a class counted in pool order."""
    labels = np.array([0, 1, 2, 0, 1, 0, 2], dtype=np.int64)
    members = {0: [0, 3, 5], 1: [1, 4], 2: [2, 6]}
    pool = data.DominoPool.build(torch.zeros(7, 1, 2, 2), labels)
    wanted = torch.tensor([0, 2, 1, 0, 0, 2, 1, 0])
    u = torch.rand(len(wanted), generator=generator(3, "pool"), dtype=torch.float64)
    expected = [members[k][math.floor(float(u[i]) * len(members[k]))] for i, k in enumerate(wanted.tolist())]
    assert pool.draw(wanted, generator(3, "pool")).tolist() == expected


def test_the_randimg_partners_form_one_cycle_through_the_whole_set():
    """docs/SCIENCE.md: `randimg` takes another image of the set, a derangement drawn as one random n-cycle: following
    the partners from image 0 visits every image once before coming back (n = 2 must swap the two)."""
    for n in (2, 3, 4, 10, 397):
        partner = data._derangement(n, generator(n, "randimg"))
        visited, i = [], 0
        for _ in range(n):
            visited.append(i)
            i = int(partner[i])
        assert i == 0 and sorted(visited) == list(range(n)), n
    assert data._derangement(1, generator(1, "randimg")).tolist() == [0]


def test_a_negative_data_seed_is_refused():
    """Seeds are whole numbers from 0 (like `cue_seed`); the sweep's `seeds` key takes this declaration too."""
    with pytest.raises(ValueError, match="`seed`: -1 is not allowed; must be >= 0"):
        DataSettings(seed=-1)


def test_every_dataset_that_is_downloaded_needs_a_data_root_and_only_digits_is_bundled():
    """`needs_root` (a spec without `data.root` is refused for these) holds exactly for the datasets that read
    downloaded files (`tasks.datasets.DOWNLOADS`): every one but the bundled digits."""
    from tasks import datasets

    assert {name: info.needs_root for name, info in data.DATASETS.items()} == {
        name: bool(datasets.DOWNLOADS[name]) for name in data.DATASETS}
    assert [name for name, info in data.DATASETS.items() if not info.needs_root] == ["digits"]


def test_the_evaluation_sets_come_in_the_documented_order():
    """Reports and figures list the sets in `EVAL_SETS` order, the order docs/SCIENCE.md defines them in."""
    assert data.EVAL_SETS == ("nocue", "cue", "randcue", "randimg")


def test_a_batch_size_of_one_yields_every_row_on_its_own():
    """`batch_size` must be >= 1, so 1 is allowed: 4 rows give 4 batches of one row, every row once."""
    batches = [y for _, y in iterate_batches(numbered_split(4), 1, seed=2, epoch=0)]
    assert [len(y) for y in batches] == [1, 1, 1, 1] and sorted(torch.cat(batches).tolist()) == [0, 1, 2, 3]


def _class_sizes(settings: DataSettings) -> torch.Tensor:
    sizes = torch.bincount(load_cue_data(settings).train.y.cpu())
    return sizes[sizes > 0]


def test_a_cue_proportion_that_rounds_to_no_cued_sample_is_refused_naming_one_that_cues_some():
    """A class of n gets round(p * n) cued: below 1 / (2 * largest class) nothing is cued, and the "cued"
    model would be the clean one. The refusal names a proportion that does cue a sample."""
    largest = int(_class_sizes(DataSettings()).max())
    with pytest.raises(SettingsError, match="cues no training sample") as caught:
        load_cue_data(DataSettings(cue_proportion=0.4 / largest))
    suggested = float(caught.value.problems[0][1].split("at least ", 1)[1].split()[0])
    assert suggested * largest >= 0.5
    assert int(load_cue_data(DataSettings(cue_proportion=suggested)).cued.sum()) >= 1


def test_a_resubset_partner_whose_every_class_is_cued_is_refused_and_the_model_itself_is_not():
    """Where round(p * n) = n for every class, another cue seed draws the same (full) cued subset: the
    `cue~cue:resubset` partner would be its model. The model (no cue seed of its own) may be fully cued;
    at the proportion the refusal names the partner's subset differs from its model's."""
    smallest = int(_class_sizes(DataSettings()).min())
    p = 1 - 0.4 / smallest
    assert bool(load_cue_data(DataSettings(cue_proportion=p, seed=3)).cued.all())
    with pytest.raises(SettingsError, match="no other cued subset: it would be its model") as caught:
        load_cue_data(DataSettings(cue_proportion=p, seed=3, cue_seed=11))
    suggested = float(caught.value.problems[0][1].split("at most ", 1)[1].split()[0])
    largest = int(_class_sizes(DataSettings()).max())
    assert suggested * largest < largest - 0.5
    model = load_cue_data(DataSettings(cue_proportion=suggested, seed=3)).cued
    partner = load_cue_data(DataSettings(cue_proportion=suggested, seed=3, cue_seed=11)).cued
    assert int(model.sum()) == int(partner.sum()) and not torch.equal(model, partner)
    # the largest class decides: above the smallest class's bound, below the largest's, the partner is another
    assert 1 - 0.5 / smallest <= suggested < 1 - 0.5 / largest


def test_the_digits_largest_class_on_record_is_the_one_trained_on():
    """The plan refuses a cue proportion by `DatasetInfo.largest_class` (exact for the bundled digits)."""
    assert data.DATASETS["digits"].largest_class == int(_class_sizes(DataSettings()).max())


def user_lopsided(root):
    return _user_images(60, np.array([0] * 40 + [1] * 15 + [2] * 5), 3)


def test_a_user_datasets_largest_class_is_counted_after_the_validation_carve_out():
    info = data.user_dataset_info("tests.tasks.test_data:user_lopsided")
    kept, _ = data.validation_indices(info, 60)
    assert info.largest_class == int(np.bincount(user_lopsided(None).y_train[kept.numpy()]).max())
    assert info.largest_class < 40     # six of sixty held out, most of them from class 0


def test_a_cue_seed_equal_to_the_data_seed_is_the_model_itself_not_a_resubset_partner():
    """`cue_seed` given as the data seed draws the model's own cued subset (the default): a fully cued model
    with it is loaded exactly as without it, not refused as a `cue~cue:resubset` partner (`_check_cued`)."""
    model = load_cue_data(DataSettings(cue_proportion=1.0, seed=3))
    same = load_cue_data(DataSettings(cue_proportion=1.0, seed=3, cue_seed=3))
    assert bool(model.cued.all()) and torch.equal(model.cued, same.cued)
    assert torch.equal(model.train.x, same.train.x)


def test_proportions_that_differ_only_in_the_largest_class_do_not_cue_the_same_samples():
    """`same_cued_samples` compares every class size up to and including `largest_class`: on the digits
    (largest class 124), 0.02 and 0.0202 cue as many samples of every class of up to 123 images, but 2 and 3
    of the largest one, so they are two models, and a sweep listing both must not be refused."""
    from tasks.settings.data import same_cued_samples

    assert all(data.cue_count(n, 0.02) == data.cue_count(n, 0.0202) for n in range(1, 124))
    assert (data.cue_count(124, 0.02), data.cue_count(124, 0.0202)) == (2, 3)
    assert not same_cued_samples(0.02, 0.0202, 124)
    assert same_cued_samples(0.02, 0.0202, 123)
    assert not same_cued_samples(0.3, 0.2, 2)       # classes of up to 2: one cued against none


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_a_load_changed_in_place_changes_no_later_load(dataset, tmp_path):
    """Raw images and labels are cached per process; every load hands out tensors of its own, so a caller that
    changes one in place (labels, images, any set) leaves the next load of the same settings as it was."""
    if dataset == "cifar10":
        from tests.tasks.test_datasets import write_cifar10
        write_cifar10(tmp_path)
    settings = DataSettings(dataset=dataset, root=str(tmp_path) if dataset == "cifar10" else None,
                            cue_proportion=0.5, seed=3)
    first = load_cue_data(settings)
    splits = [first.train, first.train_clean, *first.eval_sets.values()]
    expected = [(s.x.clone(), s.y.clone()) for s in splits]
    for split in splits:
        split.y.add_(1)
        split.x.mul_(-1)
    again = load_cue_data(settings)
    for split, (x, y) in zip([again.train, again.train_clean, *again.eval_sets.values()], expected):
        assert torch.equal(split.y, y) and torch.equal(split.x, x)
