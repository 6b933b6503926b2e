"""Guards for tasks/train.py behaviour the other train tests leave open: a DivergenceError keeps every
field, the name of the learning rate to lower included, when it crosses a process boundary."""
from __future__ import annotations

import pickle

from tasks.train import DivergenceError


def test_a_divergence_error_keeps_the_learning_rate_it_names_when_pickled():
    """Ray and spawn pickle the exception from the worker: a head-only phase's `llrt_lr` must survive the
    trip, or the user is told to lower `lr`, which did not diverge."""
    error = DivergenceError(2, 5, float("nan"), where="the model's `bn.running_var`").with_lr("llrt_lr")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is DivergenceError
    assert (copy.epoch, copy.step, copy.where, copy.lr) == (2, 5, "the model's `bn.running_var`", "llrt_lr")
    assert copy.value != copy.value                  # NaN kept
    assert "lower `llrt_lr`" in str(copy)
    assert copy.advice("finetune") == "lower `finetune.llrt_lr`"
