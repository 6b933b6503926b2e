"""The tables a sweep should have written, from the same tasks run one after another in the test's own
process (no Ray, no driver to start): what a single node writes. A distributed run is compared with them
(`assert_same_tables`), rows sorted, timings left out."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.results import tables
from orchestrator.run import work
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout

TABLES = (vocab.EVALUATIONS, vocab.TRAIN_CURVES, vocab.PATHS, vocab.BARRIERS)


def one_process_tables(spec_path: Path, storage: Path, runner: str = "real") -> SweepLayout:
    """Every task of the spec run here with `runner`, parents first (the graph's order); the layout they wrote."""
    spec = load_spec(spec_path)
    graph = build_graph(spec)
    layout = SweepLayout(Storage(str(storage)), spec.name)
    for task in graph.tasks.values():
        result = work.run_here(task, layout, runner, spec.data_root, {p: graph.tasks[p].kind for p in task.parents})
        assert result.status == vocab.DONE, (task.id, result.error)
    return layout


def sorted_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A table's rows in a fixed order, without the columns that time the run."""
    keys = [c for c in ("task_id", "eval_set", "split", "epoch", "alpha", "metric", "definition") if c in df.columns]
    drop = [c for c in ("duration_s", "started_at", "finished_at") if c in df.columns]
    return df.drop(columns=drop).sort_values(keys).reset_index(drop=True)


def assert_same_tables(got: SweepLayout, want: SweepLayout, rtol: float, atol: float) -> None:
    """Each of TABLES holds the same rows in `got` as in `want` (each task's rows once, values close)."""
    for table in TABLES:
        mine, theirs = sorted_rows(tables.read_table(got, table)), sorted_rows(tables.read_table(want, table))
        assert len(theirs), f"the reference wrote no `{table}` rows"
        assert mine["task_id"].value_counts().to_dict() == theirs["task_id"].value_counts().to_dict(), table
        pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=rtol, atol=atol, obj=table)
