"""README's analysis queries (pandas through the Python API, DuckDB, polars) run as written against a
sweep directory, from the directory that holds `mmc-runs/`."""
import contextlib
import io
import os
import re
from pathlib import Path

import pytest

from orchestrator import vocab
from orchestrator.storage.layout import Storage, SweepLayout
from tests.orchestrator.report_data import synthetic_sweep, write_sweep

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tested: readme-queries -->"


def readme_block(marker: str, doc: Path = README) -> str:
    text = doc.read_text()
    assert marker in text, f"{doc.name} has no block marked {marker!r}"
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


@pytest.fixture
def runs_dir(tmp_path):
    write_sweep(SweepLayout(Storage(tmp_path / "mmc-runs"), "smoke"), with_weight_matching(synthetic_sweep()))
    return tmp_path


def test_readme_queries_run_and_agree(runs_dir):
    code = readme_block(MARKER)
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(runs_dir)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    assert "cue~nocue" in text and "pretrained~ft:cbft" in text          # pandas and DuckDB tables
    assert "agree_a" in text and "reliance_randimg" in text               # polars
    assert "barrier" in text and " n " in text.replace("│", " ")          # DuckDB's columns
    # activation and weight matching are separate rows in every tool's output (pandas, DuckDB, polars)
    assert text.count("activation") >= 3 and text.count("weight") >= 3, text


def test_analysis_md_api_block_runs(tmp_path, monkeypatch, capsys):
    """docs/ANALYSIS.md's Python block, on a sweep with activation and weight matching: the two stay apart."""
    write_sweep(SweepLayout(Storage(tmp_path / "mmc-runs"), "default"), with_weight_matching(synthetic_sweep()))
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block("<!-- tested: analysis-api -->", README.parent / "docs" / "ANALYSIS.md"),
                 "ANALYSIS.md", "exec"), {})
    out = capsys.readouterr().out
    assert "activation" in out and "weight" in out and "linear" in out
