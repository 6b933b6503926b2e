"""Guards for tasks/finetune.py behaviour the other fine-tuning tests leave open: the twin method's
choice of cue donors is a seeded draw, so replicate seeds are independent replicates."""
from __future__ import annotations

import torch

from tasks.data import CueData, Split
from tasks.finetune import cued_twins


def donor_tagged_data(n: int = 60, num_classes: int = 2) -> CueData:
    """Clean images are all -1; every other sample is cued, its cue one pixel whose value names the sample
    (1 + j / 1000), so a twin shows which donor it was given."""
    y = torch.arange(n) % num_classes
    clean = torch.full((n, 1, 4, 4), -1.0)
    cued = (torch.arange(n) // num_classes) % 2 == 0
    train = clean.clone()
    train[cued, 0, 0, 0] = 1 + torch.arange(n)[cued].float() / 1000
    split = Split(clean, y)
    return CueData(train=Split(train, y), train_clean=split, cued=cued, eval_sets={"nocue": split},
                   num_classes=num_classes, in_channels=1)


def donors(data: CueData, index: torch.Tensor, seed: int) -> torch.Tensor:
    twins, _ = cued_twins(data, index, seed)
    return ((twins[:, 0, 0, 0] - 1) * 1000).round().long()


def test_the_twin_donors_are_drawn_from_the_seed():
    """An uncued clean image borrows the cue of a random cued sample of its class: the draw must come
    from `seed`, or every replicate seed pairs the same images with the same donors and the seeds' spread
    understates the method's variance."""
    data = donor_tagged_data()
    index = (~data.cued).nonzero().squeeze(1)           # uncued images only: every one needs a donor
    drawn = {seed: donors(data, index, seed) for seed in range(4)}
    for seed, picked in drawn.items():
        assert torch.equal(picked, donors(data, index, seed))                  # seeded: repeatable
        assert bool(data.cued[picked].all())
        assert torch.equal(data.train.y[picked], data.train.y[index])          # a donor of the image's class
    assert len({tuple(picked.tolist()) for picked in drawn.values()}) == len(drawn)   # every seed its own draw
