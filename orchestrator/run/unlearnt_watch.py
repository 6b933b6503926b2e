"""A trained model that finished at chance, said while the run goes.

A learning rate that drives the loss to 1e10 without a NaN leaves models at chance while every task
finishes; the summary at the end names them (`report.learnt`). On a sweep of hours, the first pretraining
that ends there is the moment to hear it: every path and fine-tuning built on it will show no mechanism.
`UnlearntWatch` listens to the run's task states and, once per task kind, warns when a pretraining or
fine-tuning (of a model that learnt: a parent at chance was said already) finishes with every test
accuracy within the claims' floor of chance (`ClaimRules.floor_acc`;
chance is 1 / classes of a built-in dataset; a dataset of one's own is not watched, its class count is known
only to its tasks). The run goes on: Ctrl-C stops it and keeps what finished.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from orchestrator import vocab
from orchestrator.run.state import SweepState, TaskState
from orchestrator.spec.claim_rules import learnt_nothing
from tasks.settings.data import DATASETS

_LOG = logging.getLogger(__name__)

# The kinds that train a model; each kind's settings are the spec section of its name (`pretrain.lr`).
WATCHED = (vocab.PRETRAIN, vocab.FINETUNE)


def best_accuracy(metrics: dict) -> float | None:
    """The highest test accuracy among a training task's metrics (`eval.<set>.acc`), None without one."""
    accs = [v for k, v in metrics.items() if k.startswith("eval.") and k.endswith(".acc")
            and isinstance(v, (int, float)) and v == v]
    return max(accs) if accs else None


class UnlearntWatch:
    """See the module docstring. Subscribed on creation; `close()` unsubscribes."""

    def __init__(self, state: SweepState, floor_acc: float, log: Callable[[str], None] = _LOG.warning):
        self._state, self._floor, self._log = state, floor_acc, log
        self.said: dict[str, str] = {}            # task kind -> the task it warned of
        self.unlearnt: set[str] = set()           # every task this run finished at chance
        self.close = state.subscribe(self._status_changed)

    def _status_changed(self, task_id: str, before: TaskState, after: TaskState) -> None:
        if after.status != vocab.DONE or before.status == vocab.DONE or after.result is None:
            return
        task = self._state.graph.tasks[task_id]
        if task.kind not in WATCHED:
            return
        dataset = DATASETS.get(task.labels.get("dataset"))
        best = best_accuracy(getattr(after.result, "metrics", None) or {})
        if dataset is None or best is None or not learnt_nothing(best, 1 / dataset.num_classes, self._floor):
            return
        self.unlearnt.add(task_id)
        if task.kind in self.said or self.unlearnt.intersection(task.parents):
            return      # said once per kind; a fine-tuning of a model at chance: its parent's warning said it
        self.said[task.kind] = task_id
        lr = f"{task.kind}.lr"
        value = task.settings.get(lr)
        self._log(f"warning: {task_id} finished at chance: its best test accuracy is {best:.1%} (chance "
                  f"{1 / dataset.num_classes:.0%}); the tasks built on it can show no mechanism. Lower `{lr}`"
                  + (f" ({value:g})" if isinstance(value, (int, float)) else "")
                  + " or train longer; the run goes on (Ctrl-C stops it and keeps what finished), and its summary "
                  f"counts every {task.kind} task that learnt nothing.")
