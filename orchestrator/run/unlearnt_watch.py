"""A trained model that finished at chance, said while the run goes.

A learning rate that drives the loss to 1e10 without a NaN leaves models at chance while every task
finishes; the summary at the end names them (`report.learnt`). On a sweep of hours, the first pretraining
that ends there is the moment to hear it: every path and fine-tuning built on it will show no mechanism.
`UnlearntWatch` listens to the run's task states and, once per task kind, warns when a pretraining or
fine-tuning (of a model that learnt: a parent at chance was said already) finishes with every test
accuracy within the claims' floor of chance (`ClaimRules.floor_acc`). Chance is 1 / classes of a built-in
dataset; a dataset of one's own is not watched (its class count is known only to its tasks). The warning
says what the last training loss tells of the cause (`claim_rules.training_course`: steps that overshoot,
nothing learnt from the data, or data the test sets do not share) and what to change. The run goes on:
Ctrl-C stops it and keeps what finished.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from orchestrator import vocab
from orchestrator.messages import logger
from orchestrator.run.state import SweepState, TaskState
from orchestrator.spec.claim_rules import ADVICE, learnt_nothing, training_course
from tasks.settings.data import DATASETS
from tasks.settings.finetune import loss_is_cross_entropy

_LOG = logger(__name__)

# The kinds that train a model; each kind's settings are the spec section of its name (`pretrain.lr`).
WATCHED = (vocab.PRETRAIN, vocab.FINETUNE)


def best_accuracy(metrics: dict) -> float | None:
    """The highest test accuracy among a training task's metrics (`eval.<set>.acc`), None without one."""
    accs = [v for k, v in metrics.items() if k.startswith("eval.") and k.endswith(".acc")
            and isinstance(v, (int, float)) and v == v]
    return max(accs) if accs else None


def final_training_loss(steps) -> float | None:
    """The training loss of a training task's last epoch, None without one: its curve's `<split>_loss`
    step series (`train_loss`; `llrt_loss` for head-only epochs)."""
    losses = [(step, value) for name, step, value in steps or () if name.endswith("_loss")
              and isinstance(value, (int, float))]
    return float(max(losses)[1]) if losses else None


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
        loss = (final_training_loss(getattr(after.result, "steps", None))      # (CBFT's adds its invariance term)
                if loss_is_cross_entropy(task.labels.get("method")) else None)
        course = training_course(loss, dataset.num_classes)
        lr, epochs = (task.settings.get(f"{task.kind}.{name}") for name in ("lr", "epochs"))
        trained = " and ".join(f"`{task.kind}.{name}` {value:g}" for name, value in (("lr", lr), ("epochs", epochs))
                            if isinstance(value, (int, float)))
        self._log(f"warning: {task_id} finished at chance: its best test accuracy is {best:.1%} (chance "
                  f"{1 / dataset.num_classes:.0%})"
                  + (f", its last training loss {loss:.3g} against a constant guess's "
                     f"{math.log(dataset.num_classes):.2f} (ln {dataset.num_classes})" if loss is not None else "")
                  + (f", trained with {trained}" if trained else "")
                  + f"; the tasks built on it can show no mechanism. {ADVICE[course][0].upper()}{ADVICE[course][1:]}; "
                  "the run goes on (Ctrl-C stops it and keeps what finished), and its summary counts every "
                  f"{task.kind} task that learnt nothing.")
