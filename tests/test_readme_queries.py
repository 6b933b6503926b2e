"""README's analysis queries (pandas through the Python API, DuckDB, polars) run as written against a
sweep directory, from the directory that holds `mmc-runs/`."""
import contextlib
import io
import os
import re
from pathlib import Path

import pytest

from orchestrator.storage.layout import Storage, SweepLayout
from tests.orchestrator.report_data import synthetic_sweep, write_sweep

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tested: readme-queries -->"


def readme_block(marker: str) -> str:
    text = README.read_text()
    assert marker in text, f"README.md has no block marked {marker!r}"
    match = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S)
    return match.group(1)


@pytest.fixture
def runs_dir(tmp_path):
    write_sweep(SweepLayout(Storage(tmp_path / "mmc-runs"), "smoke"), synthetic_sweep())
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
