"""How far two runs of the same sweep land from each other: the same tasks (same ids) computed on
another machine, another CPU instruction set or another thread count give tables that are not
bit-identical. This compares two sweep directories task by task and prints, per table and value
column, how many values differ, the largest and the median absolute difference, and for barriers
how many cross the tolerance max(0.005, 2% of the value).

    python -m bench.table_spread RUNS_A/default RUNS_B/default

To see what another CPU's kernels do on this one, run the second sweep with PyTorch's AVX2 kernels
and oneDNN capped at AVX2 (what a CPU without AVX-512 runs):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 mmc-sweep run --storage RUNS_B 'seeds=[0]'
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from orchestrator import vocab
from orchestrator.results import tables
from orchestrator.storage.layout import Storage, SweepLayout

KEYS = {vocab.EVALUATIONS: ["task_id", "eval_set"], vocab.PATHS: ["task_id", "eval_set", "alpha"],
        vocab.BARRIERS: ["task_id", "eval_set", "metric", "definition"]}
VALUES = {vocab.EVALUATIONS: ["loss", "acc"], vocab.PATHS: ["loss", "acc"], vocab.BARRIERS: ["value"]}


def _layout(path: str) -> SweepLayout:
    path = path.rstrip("/")
    root, _, name = path.rpartition("/")
    return SweepLayout(Storage(root or "."), name)


def spread(a: SweepLayout, b: SweepLayout) -> pd.DataFrame:
    rows = []
    for table, keys in KEYS.items():
        ta, tb = tables.read_table(a, table), tables.read_table(b, table)
        both = ta.merge(tb, on=keys, suffixes=("_a", "_b"))
        for column in VALUES[table]:
            d = (both[f"{column}_a"].astype(float) - both[f"{column}_b"].astype(float)).abs().to_numpy()
            d = d[np.isfinite(d)]
            row = {"table": table, "column": column, "values": len(d), "differ": int((d > 0).sum()),
                   "max |diff|": float(d.max()) if len(d) else np.nan,
                   "median |diff| of those": float(np.median(d[d > 0])) if (d > 0).any() else 0.0}
            if table == vocab.BARRIERS:
                ref = both[f"{column}_a"].astype(float).abs().to_numpy()[: len(d)]
                row["beyond max(0.005, 2%)"] = int((d > np.maximum(0.005, 0.02 * ref)).sum())
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(argv)
    print(spread(_layout(args.a), _layout(args.b)).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
