"""tasks.evaluate: mean cross-entropy and accuracy over batches, eval mode, mode restored."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasks.data import Split
from tasks.evaluate import evaluate, evaluate_sets
from tasks.seeding import generator


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def make_split(n: int, seed: int) -> Split:
    gen = generator(seed)
    return Split(torch.randn(n, 1, 2, 2, generator=gen).half(), torch.randint(0, 3, (n,), generator=gen))


def trained_bn_model() -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet()
    model.train()
    with torch.no_grad():  # give BN running statistics that differ from any batch's statistics
        model(torch.randn(64, 1, 2, 2) * 3 + 1)
    return model


def test_evaluate_matches_whole_set_reference_and_restores_mode():
    model, split = trained_bn_model(), make_split(10, seed=1)
    model.train()
    result = evaluate(model, split, batch_size=3, device="cpu")  # 4 batches, the last one partial
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(split.x.float())
    assert result["n"] == 10
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, split.y).item(), rel=1e-6)
    assert result["acc"] == pytest.approx((logits.argmax(1) == split.y).float().mean().item())
    assert evaluate(model, split, batch_size=1024) == pytest.approx(result)
    assert not model.training


def test_evaluate_sets_rows_in_order():
    model = trained_bn_model()
    sets = {"nocue": make_split(7, seed=2), "cue": make_split(5, seed=3)}
    rows = evaluate_sets(model, sets, batch_size=4, device="cpu")
    assert [r["eval_set"] for r in rows] == ["nocue", "cue"]
    assert [r["n"] for r in rows] == [7, 5]
    assert rows[1]["loss"] == pytest.approx(evaluate(model, sets["cue"])["loss"])
    assert rows[0]["loss"] != rows[1]["loss"]


def test_evaluate_refuses_empty_split():
    with pytest.raises(ValueError, match="empty split"):
        evaluate(trained_bn_model(), make_split(0, seed=0))
