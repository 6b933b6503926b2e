"""The report: every file written, figures not blank, one self-contained HTML page, partial sweeps."""

from __future__ import annotations

import io
import os

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from orchestrator import report, sinks, stats
from orchestrator.layout import Storage, SweepLayout
from tests.orchestrator.test_sinks import PAIRS, synthetic_sweep, write_sweep

SPEC = "# run with: mmc-sweep run sweeps/test.yaml\nname: test-sweep\nseeds: 3\n"


def _expected_path_figures() -> set[str]:
    names = set()
    for pair_type, path_kind, alignment, _p, _bump in PAIRS:
        name = f"paths_{pair_type.replace('~', '-').replace(':', '-')}_{path_kind}"
        names.add(name + (f"_{alignment}" if alignment else "") + ".png")
    return names


def _pixels_vary(png: bytes) -> bool:
    image = mpimg.imread(io.BytesIO(png), format="png")
    return image.ndim == 3 and float(np.var(image[..., :3])) > 0


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "test-sweep")


def test_full_report(layout):
    tables = synthetic_sweep()
    write_sweep(layout, tables)
    n_tasks = len(tables["tasks"])
    out = report.write_report(layout, spec_text=SPEC, provenance={"python": "3.11-test"},
                              planned=n_tasks, n_boot=200)
    storage = layout.storage
    names = {p.rstrip("/").rsplit("/", 1)[-1] for p in out.files}
    expected = {"summary.parquet", "summary.md", "finetune_table.md", "finetune_table.parquet",
                "barriers.png", "finetune.png", "report.html"} | _expected_path_figures()
    assert names == expected
    for path in out.files:
        assert storage.exists(path)
    assert {p.rsplit("/", 1)[-1] for p in out.figures} == expected & {n for n in names if n.endswith(".png")}
    for path in out.figures:
        assert _pixels_vary(storage.read_bytes(path)), path

    summary = pd.read_parquet(io.BytesIO(storage.read_bytes(layout.report_file("summary.parquet"))))
    direct = stats.summarize(sinks.read_table(layout, "barriers"), n_boot=200)
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), direct, check_dtype=False)
    md = storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    assert "pretrained (no cue)" in md and "cbft" in md and "±" in md and stats.MISSING not in md

    page = storage.read_bytes(out.html).decode()
    assert os.fspath(out) == out.html
    assert page.count("data:image/png;base64,") == len(out.figures)
    assert "cue~nocue" in page and "pretrained~ft:cbft" in page  # summary table
    assert "pretrained (cue)" in page and "±" in page            # fine-tuning table
    assert "mmc-sweep run sweeps/test.yaml" in page               # spec text
    assert "deadbeef" in page and "abc123" in page and "3.11-test" in page  # provenance
    assert f"{n_tasks} of {n_tasks} tasks finished" in page
    assert "<img" in page and 'src="http' not in page             # self-contained


def test_partial_report_marks_missing(layout):
    tables = synthetic_sweep()
    # the cbft fine-tuning failed; the quadratic paths have not run yet
    for task_id, rows in tables["tasks"].items():
        if rows[0].get("method") == "cbft":
            rows[0].update(status="failed", error="Traceback...\nRuntimeError: diverged at epoch 3")
    for table in ("evaluations", "train_curves"):
        tables[table] = {t: r for t, r in tables[table].items() if "cbft" not in t}
    for table in ("tasks", "paths", "barriers"):
        tables[table] = {t: r for t, r in tables[table].items() if "quadratic" not in t}
    write_sweep(layout, tables)
    planned = len(synthetic_sweep()["tasks"])
    finished = sum(1 for rows in tables["tasks"].values() if rows[0]["status"] == "done")
    out = report.write_report(layout, planned=planned, n_boot=100)
    page = layout.storage.read_bytes(out.html).decode()
    assert f"{finished} of {planned} tasks finished" in page and "partial sweep" in page
    assert "diverged at epoch 3" in page                      # failed tasks listed with the error
    md = layout.storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    cbft_line = next(line for line in md.splitlines() if line.startswith("| cbft"))
    assert cbft_line.count(stats.MISSING) == 4
    names = {p.rsplit("/", 1)[-1] for p in out.figures}
    assert not any("quadratic" in n for n in names) and "paths_cue-nocue_linear.png" in names


def test_report_on_empty_sweep(layout):
    layout.storage.write_bytes(layout.spec_file(), SPEC.encode())
    out = report.write_report(layout, planned=5)
    page = layout.storage.read_bytes(out.html).decode()
    assert out.figures == () and "0 of 5 tasks finished" in page
    assert "name: test-sweep" in page  # spec read from the sweep's spec.yaml
    assert layout.storage.exists(layout.report_file("summary.parquet"))
