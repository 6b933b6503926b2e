"""Which of a sweep's tasks are already finished when a run starts: their outputs verify (`outputs`), and so
do those of every task they were made from.

A task is cached when its `done.json` and the files it lists verify, and no task it depends on runs again.
A parent that lost its checkpoint or no longer verifies is recomputed, and its new outputs may differ from
the old in the last bits (another node's CPU kernels, a GPU); what was made from the old ones is then not
finished until that is known. Their markers are set aside at the start of the run (`outputs.set_aside`: an
interrupted run cannot leave them to verify beside a parent they were not made from), and each is taken
back when it comes to run, where the inputs it recorded are its parents' again (`outputs.take_back`: the
same bits, nothing recomputed), else it runs again; so on down the graph.
"""
from __future__ import annotations


from orchestrator import vocab
from orchestrator.graph.dag import Graph
from orchestrator.messages import counted, logger
from orchestrator.results import outputs
from orchestrator.run.state import SweepState
from orchestrator.storage.layout import SweepLayout

_LOG = logger(__name__)
MADE_FROM = "made from the outputs of"     # the reason of a task whose parent runs again


def verify_all(graph: Graph, layout: SweepLayout) -> dict[str, tuple[bool, str]]:
    """`outputs.verify_outputs` of every task (reads and hashes every output file once), as one pass
    (`outputs.verify_many`): each table's manifest is looked up once, not once per fragment (on an object
    store a missing one costs 4 requests per lookup); then `made_from_reruns`."""
    return made_from_reruns(graph, outputs.verify_many(layout, ((task.kind, task_id) for task_id, task in graph.tasks.items())))


def made_from_reruns(graph: Graph, verified: dict[str, tuple[bool, str]]) -> dict[str, tuple[bool, str]]:
    """`verified`, less the tasks made from the outputs of one that runs again (a lost checkpoint, a task
    that finished and no longer verifies), in topological order: finished only once it is known that the
    recomputed parent gave the bits they were made from (`mark_cached` sets their markers aside)."""
    out = dict(verified)
    for task_id, task in graph.tasks.items():          # parents first
        if out[task_id][0]:
            again = next((p for p in task.parents if not out[p][0]), None)
            if again is not None:
                out[task_id] = (False, f"{MADE_FROM} {again}, which runs again")
    return out


def mark_cached(state: SweepState, layout: SweepLayout, verified: dict[str, tuple[bool, str]], log=_LOG.info) -> None:
    """Tasks with verified outputs are cached; broken outputs are invalidated and recomputed; those made from
    a task that runs again (`made_from_reruns`, said in one line) have their markers set aside, to be taken
    back or recomputed when they come to run."""
    made_from = []
    for task_id, task in state.graph.tasks.items():
        ok, reason = verified[task_id]
        if ok:
            state.set_status(task_id, vocab.CACHED)
        elif reason.startswith(MADE_FROM):
            made_from.append(task_id)
            outputs.set_aside(layout, task.kind, task_id)
        elif reason != outputs.NOT_FINISHED:
            log(f"recomputing {task_id}: its stored output is not valid ({reason})")
            outputs.invalidate(layout, task.kind, task_id)
    if made_from:
        shown = ", ".join(made_from[:5]) + (f" and {len(made_from) - 5} more" if len(made_from) > 5 else "")
        log(f"checking again {counted(len(made_from), 'finished task')} made from the outputs of tasks that run again, "
            f"once those have run: kept where made from the same bits, else recomputed: {shown}")


def unfinished_kinds(graph: Graph, verified: dict) -> list[str]:
    kinds = {graph.tasks[t].kind for t, (ok, _) in verified.items() if not ok}
    return [k for k in vocab.TASK_KINDS if k in kinds]
