"""The training curves of Table 1's models (`orchestrator.report.training.curves_long`): what one point of
the training figure counts and where a model without a cue proportion is drawn."""
from __future__ import annotations

import pandas as pd

from orchestrator import vocab
from orchestrator.report import stats, training


def _curve(task_id: str, epoch: int, loss: float, cue_proportion=0.0, kind=vocab.PRETRAIN) -> dict:
    return {"task_id": task_id, "kind": kind, "method": None, "cue_proportion": cue_proportion, "epoch": epoch,
            "split": "train", "loss": loss, "acc": 0.5}


def test_a_models_repeated_epoch_row_counts_it_once():
    """n is how many models reached the epoch: a model whose epoch 0 was recorded twice (a retried task's
    rows) is one model, not two; its rows still enter the mean, lowest and highest."""
    curves = pd.DataFrame([_curve("p0", 0, 2.0), _curve("p0", 0, 2.0), _curve("p1", 0, 1.0)])
    (point,) = training.curves_long(curves).to_dict("records")
    assert (point["row"], point["n"], point["loss_min"], point["loss_max"]) == (stats.PRETRAINED_NOCUE, 2, 1.0, 2.0)


def test_a_model_without_a_cue_proportion_is_drawn_at_no_cue():
    """A pretrained model without a recorded cue proportion is the no-cue reference (`stats.row_label`): its
    curve goes with proportion 0, beside the models recorded at 0, not at 100%."""
    curves = pd.DataFrame([_curve("p0", 0, 2.0, cue_proportion=None), _curve("p1", 0, 1.0, cue_proportion=0.0)])
    (point,) = training.curves_long(curves).to_dict("records")
    assert (point["row"], point["cue_proportion"], point["n"]) == (stats.PRETRAINED_NOCUE, 0.0, 2)
