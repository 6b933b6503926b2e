"""Which samples carry the cue, which cue the counterfactual `randcue` set paints, and which images
the clean subset holds, against references written here (tasks/data.py, tasks/finetune.py)."""
from __future__ import annotations

import math

import pytest
import torch

from tasks.data import CueData, DataSettings, Split, choose_cued, clean_subset_indices, load_cue_data
from tasks.finetune import clean_subset
from tasks.seeding import generator

# digits' box corner per label (the "ring" layout; docs/SCIENCE.md)
DIGITS_BOXES = {0: (0, 0), 1: (0, 6), 2: (0, 11), 3: (0, 17), 4: (9, 0), 5: (9, 17),
                6: (17, 0), 7: (17, 6), 8: (17, 11), 9: (17, 17)}


def shuffled_labels() -> torch.Tensor:
    """Classes of 5, 7, 15, 25 and 1 samples in a shuffled order."""
    y = torch.cat([torch.full((n,), k) for k, n in enumerate((5, 7, 15, 25, 1))])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.7, 1.0])
def test_each_class_gets_p_times_its_size_rounded_half_up(p):
    y = shuffled_labels()
    cued = choose_cued(y, p, generator(1, "cued"))
    for k, n in enumerate((5, 7, 15, 25, 1)):
        assert int(cued[y == k].sum()) == math.floor(p * n + 0.5), (k, n)     # 0.5 * 5 = 2.5 -> 3, not 2


def test_which_samples_of_a_class_carry_the_cue_is_a_seeded_uniform_draw():
    y = shuffled_labels()
    draws = torch.stack([choose_cued(y, 0.4, generator(seed, "cued")) for seed in range(300)])
    assert torch.equal(draws[0], choose_cued(y, 0.4, generator(0, "cued")))
    assert len({tuple(d.tolist()) for d in draws}) > 250
    big = y == 3                                             # 10 of 25 cued: each sample about 40% of the time
    assert float(draws[:, big].double().mean(0).min()) > 0.28
    assert float(draws[:, big].double().mean(0).max()) < 0.52


def test_the_data_seed_decides_which_training_samples_carry_the_cue():
    one, two = (load_cue_data(DataSettings(cue_proportion=0.5, seed=s)) for s in (1, 2))
    assert not torch.equal(one.cued, two.cued)
    assert torch.equal(one.train_clean.x, two.train_clean.x)
    for d in (one, two):
        assert torch.equal((d.train.x != d.train_clean.x).flatten(1).any(1), d.cued)


def test_randcue_paints_a_uniformly_random_class_true_class_included():
    sets = load_cue_data(DataSettings(cue_proportion=0.9, seed=4)).eval_sets
    nocue, randcue, y = sets["nocue"].x, sets["randcue"].x, sets["randcue"].y
    assert torch.equal(y, sets["nocue"].y)
    changed = (randcue != nocue)[:, 0]
    cue_class = torch.full((len(y),), -1)
    for label, (r, c) in DIGITS_BOXES.items():
        box = torch.zeros(20, 20, dtype=torch.bool)
        box[r:r + 3, c:c + 3] = True
        hit = (changed == box).flatten(1).all(1)
        assert bool((randcue[hit, 0][:, box] == 2.0).all())
        cue_class[hit] = label
    assert bool((cue_class >= 0).all())                      # one box, exactly, on every image
    counts = torch.bincount(cue_class, minlength=10)
    assert int(counts.min()) >= 20 and int(counts.max()) <= 65          # about 397 / 10 each
    same = float((cue_class == y).double().mean())
    assert 0.04 < same < 0.17                                # about 1 / 10: its own class too, as often
    for k in range(10):                                      # and independent of the true class
        assert len(set(cue_class[y == k].tolist())) >= 5, k


def small_data(proportion: float, seed: int) -> CueData:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(50) % 5
    cued = torch.rand(50, generator=g) < proportion
    x = clean.clone()
    x[cued, :, 0, 0] = 2.0
    return CueData(Split(x, y), Split(clean, y), cued, {}, 5, 1)


def test_the_clean_subset_is_drawn_without_replacement_from_the_clean_images_by_seed_and_size_only():
    index, split = clean_subset(small_data(0.8, seed=0), 20, seed=3)
    assert index.unique().numel() == 20 and int(index.min()) >= 0 and int(index.max()) < 50
    data = small_data(0.8, seed=0)
    assert torch.equal(split.x, data.train_clean.x[index]) and torch.equal(split.y, data.train_clean.y[index])
    assert bool(data.cued[index].any())                      # cued training samples: here without their cue
    for other in (small_data(0.3, seed=1), small_data(1.0, seed=2)):    # other cues, other cued samples
        assert torch.equal(clean_subset(other, 20, seed=3)[0], index)
    assert not torch.equal(clean_subset(data, 20, seed=4)[0], index)
    everything = clean_subset_indices(50, 50, seed=9)
    assert sorted(everything.tolist()) == list(range(50))


def test_the_cued_samples_of_a_class_are_those_with_the_smallest_seeded_keys():
    """The recipe of `choose_cued` written out: one float64 uniform key per sample from the stream, and in each
    class the floor(p * n + 0.5) samples with the smallest keys carry the cue (so a smaller p cues a subset)."""
    y = shuffled_labels()
    keys = torch.rand(len(y), generator=generator(6, "cued"), dtype=torch.float64)
    for p in (0.3, 0.6):
        expected = torch.zeros(len(y), dtype=torch.bool)
        for k in range(5):
            members = (y == k).nonzero().squeeze(1)
            quota = math.floor(p * len(members) + 0.5)
            expected[members[torch.argsort(keys[members])[:quota]]] = True
        assert torch.equal(choose_cued(y, p, generator(6, "cued")), expected), p
