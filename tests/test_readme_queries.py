"""README's analysis queries (pandas through the Python API, DuckDB, polars) and docs/ANALYSIS.md's
examples run as written against a sweep directory, from the directory that holds `mmc-runs/`: one
whose results are per-task fragments, one that has been compacted (`mmc-sweep compact`), and one
compacted and then grown by more tasks. With the obvious glob (or the table's directory) DuckDB,
polars, pandas and `pyarrow.dataset` count exactly the rows `open_sweep(...).table(...)` has."""
import contextlib
import io
import os
import re
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pytest

from orchestrator import vocab
from orchestrator.api import open_sweep
from orchestrator.results import compact
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.report_data import synthetic_sweep, write_sweep

DOCS = Path(__file__).resolve().parents[1]
README = DOCS / "README.md"
ANALYSIS = DOCS / "docs" / "ANALYSIS.md"
MARKER = "<!-- tested: readme-queries -->"
ANALYSIS_MARKER = "<!-- tested: analysis-api -->"
STATES = ("fragments", "compacted", "compacted-then-grown")


def readme_block(marker: str, path: Path = README) -> str:
    text = path.read_text()
    assert marker in text, f"{path.name} has no block marked {marker!r}"
    match = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S)
    return match.group(1)


def with_weight_matching(data: dict) -> dict:
    """The synthetic sweep plus a weight-matched copy of every activation-aligned path, 5 higher: a
    query that leaves `alignment` out averages the two."""
    for table in (vocab.TASKS, vocab.PATHS, vocab.BARRIERS):
        for task_id, rows in list(data[table].items()):
            if rows and rows[0].get("alignment") == "activation":
                shift = {"value": 5.0} if table == vocab.BARRIERS else {"loss": 5.0} if table == vocab.PATHS else {}
                data[table][task_id + "-w"] = [{**r, "task_id": task_id + "-w", "alignment": "weight",
                                                **{k: r[k] + v for k, v in shift.items()}} for r in rows]
    return data


def write_runs(root: Path, name: str, state: str) -> SweepLayout:
    layout = SweepLayout(Storage(root / "mmc-runs"), name)
    data = with_weight_matching(synthetic_sweep())
    if state == "compacted-then-grown":         # half the tasks ran, the run compacted, the rest ran
        first = {t: {k: v for i, (k, v) in enumerate(sorted(rows.items())) if i % 2 == 0} for t, rows in data.items()}
        write_sweep(layout, first)
        compact.compact(layout)
    write_sweep(layout, data)
    if state == "compacted-then-grown":          # the run's end, as `run` does it
        compact.compact_after_run(layout, log=lambda line: None)
    if state == "compacted":
        compact.compact(layout)
    if state != "fragments":
        assert any((root / "mmc-runs" / name / "results" / vocab.PATHS).glob("part-*.parquet"))
    return layout


@pytest.fixture(scope="module", params=STATES)
def runs_dir(tmp_path_factory, request):
    """One directory per state for the whole module: every test here only reads it."""
    root = tmp_path_factory.mktemp(request.param)
    for name in ("smoke", "default"):            # README queries `smoke`, ANALYSIS.md `default`
        write_runs(root, name, request.param)
    return root


def run_block(code: str, directory: Path, source: str) -> str:
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(directory)
        with contextlib.redirect_stdout(out):
            exec(compile(code, source, "exec"), {})
    finally:
        os.chdir(cwd)
    return out.getvalue()


def test_readme_queries_run_and_agree(runs_dir):
    text = run_block(readme_block(MARKER), runs_dir, "README.md")
    assert "cue~nocue" in text and "pretrained~ft:cbft" in text          # pandas and DuckDB tables
    assert "agree_a" in text and "reliance_randimg" in text               # polars
    assert "barrier" in text and " n " in text.replace("│", " ")          # DuckDB's columns
    # activation and weight matching are separate rows in every tool's output (pandas, DuckDB, polars)
    assert text.count("activation") >= 3 and text.count("weight") >= 3, text


def test_analysis_examples_run(runs_dir):
    text = run_block(readme_block(ANALYSIS_MARKER, ANALYSIS), runs_dir, "docs/ANALYSIS.md")
    assert "pair_type" in text and "count" in text
    assert "activation" in text and "weight" in text and "linear" in text   # the two alignments stay apart


@pytest.mark.parametrize("table", vocab.TABLES)
def test_every_parquet_tool_counts_the_rows_open_sweep_has(runs_dir, table):
    """The obvious glob (and the table's directory) hold data files only, each task's rows once."""
    expected = len(open_sweep(str(runs_dir / "mmc-runs" / "smoke")).table(table))
    assert expected > 0
    cwd = os.getcwd()
    try:
        os.chdir(runs_dir)
        directory = f"mmc-runs/smoke/results/{table}"
        glob = f"{directory}/*.parquet"
        counts = {
            "duckdb": duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()[0][0],
            "duckdb column": duckdb.sql(f"SELECT count(task_id) FROM read_parquet('{glob}')").fetchall()[0][0],
            "polars": pl.scan_parquet(glob).select(pl.len()).collect().item(),
            "polars read": pl.read_parquet(glob).height,
            "pandas": len(pd.read_parquet(directory)),
            "pyarrow.dataset": ds.dataset(directory, format="parquet").count_rows(),
        }
    finally:
        os.chdir(cwd)
    assert counts == dict.fromkeys(counts, expected)
