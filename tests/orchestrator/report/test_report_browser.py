"""report.html of a small finished sweep in a real headless Chromium: the tables are there, every
figure decodes and is not blank (checked by the page itself under `#selftest`), and a screenshot
of the page is not blank. Chromium is required (CI installs it): missing, the test fails."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from orchestrator import knobs
from orchestrator.report import build as report, figures
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.report_data import METHODS, PAIRS, synthetic_sweep, write_sweep

CHROMIUM_ENV_VAR = "MMC_CHROMIUM"          # path of the browser binary, if not on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_TIMEOUT_S = 90


def find_chromium() -> str:
    """The Chromium binary; fails the test (never skips) with how to install it."""
    explicit = os.environ.get(CHROMIUM_ENV_VAR)
    if explicit:
        if shutil.which(explicit):
            return shutil.which(explicit)
        pytest.fail(f"`{CHROMIUM_ENV_VAR}`: {explicit!r} is not an executable")
    for name in CHROMIUM_NAMES:
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail(f"no headless Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH): "
                "install it with `apt-get install chromium` (what .ci/run does) or set "
                f"`{CHROMIUM_ENV_VAR}` to the browser binary")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a throwaway profile and no network chatter."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(command, capture_output=True, timeout=BROWSER_TIMEOUT_S, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish within {BROWSER_TIMEOUT_S} s: {' '.join(command)}")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"Chromium exited with {exc.returncode}: {exc.stderr.decode()[-2000:]}")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished synthetic sweep (3 seeds, every pair type with its controls, naive, cbft and
    naive_cued fine-tuning) and its report, the figures drawn by this process and a worker process
    (the path big sweeps take)."""
    tmp = tmp_path_factory.mktemp("browser")
    layout = SweepLayout(Storage(str(tmp / "store")), "browser-sweep")
    tables = synthetic_sweep()
    write_sweep(layout, tables)
    caught: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = caught.append
    logger = logging.getLogger("orchestrator")
    logger.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(knobs.REPORT_WORKERS.name, "2")
            mp.setattr(figures, "MIN_JOBS_PER_WORKER", 2)
            rep = report.write_report(layout)
    finally:
        logger.removeHandler(handler)
    problems = [r.getMessage() for r in caught if "report" in r.getMessage()]
    assert not problems, problems
    return layout, rep, tmp


def self_test(tmp: Path, page: Path) -> tuple[dict, str]:
    """Open `page#selftest` in Chromium; (the page's own report on its images, the final DOM)."""
    dom = run_chromium(tmp, "--virtual-time-budget=10000", "--dump-dom",
                       page.as_uri() + "#selftest").stdout.decode()
    found = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert found, "the page's self-test did not run (no <pre id=\"selftest\"> in the DOM)"
    return json.loads(html.unescape(found.group(1))), dom


def is_blank(img: dict) -> bool:
    return img["distinct"] < 8 or not 0.002 < img["dark"] / max(1, img["pixels"]) < 0.6


def test_every_figure_loads_and_is_not_blank(finished):
    layout, rep, tmp = finished
    result, dom = self_test(tmp, layout.storage.local_path(rep.html))

    images = {img["name"]: img for img in result["images"]}
    expected = {Path(p).name for p in rep.figures}
    assert len(expected) == len({p[0] for p in PAIRS}) + 3   # one per pair type, barriers, fine-tuning, training
    assert set(images) == expected and len(result["images"]) == len(expected)
    for name, img in images.items():
        assert img["complete"] and img["width"] > 300 and img["height"] > 200, (name, img)
        assert "error" not in img, (name, img)
        assert not is_blank(img), f"{name} looks blank: {img}"

    # the tables, as the browser parsed them
    assert result["tables"] >= 9      # progress, 4 claims, barriers (x2 + all), fine-tuning, mechanism, provenance
    text = re.sub(r"<[^>]+>", " ", dom)
    n_tasks = len(synthetic_sweep()["tasks"])
    assert f"{n_tasks} of {n_tasks} tasks finished" in " ".join(text.split())
    for pair_type, *_ in PAIRS:
        assert html.escape(pair_type) in dom or pair_type in dom
    table1 = dom[dom.index('id="finetune"'):dom.index('id="paths"')]
    assert "cue proportion 80%" in table1 and "pretrained (no cue)" in table1
    for method in METHODS:
        assert f">{method}<" in table1
    assert table1.count("±") >= 4 * (2 + len(METHODS))   # every cell filled: mean ± std
    assert 'class="missing"' not in table1
    claims = dom[dom.index('id="claims"'):dom.index('id="barriers"')]
    assert claims.count('class="claim holds"') == 4 and claims.count("✓") >= 12
    assert "deadbeef" in dom and "abc123" in dom          # provenance: git revision, spec hash


def test_self_test_catches_broken_and_blank_figures(finished):
    """The checks above can fail: a corrupt image and an all-white one are reported as such."""
    layout, rep, tmp = finished
    page = layout.storage.local_path(rep.html).read_text()
    white = io.BytesIO()
    mpimg.imsave(white, np.ones((300, 600, 3)), format="png")
    marker = "data:image/png;base64,"
    first = page.index(marker) + len(marker)
    second = page.index(marker, first) + len(marker)
    end_first, end_second = page.index('"', first), page.index('"', second)
    broken = (page[:first] + "iVBORw0KGgoAAAAbroken" + page[end_first:second]
              + base64.b64encode(white.getvalue()).decode() + page[end_second:])
    copy = tmp / "broken.html"
    copy.write_text(broken)
    result, _ = self_test(tmp, copy)
    images = result["images"]
    assert images[0]["width"] == 0                       # did not decode
    assert images[1]["width"] == 600 and is_blank(images[1])
    assert not any(is_blank(img) or img["width"] == 0 for img in images[2:])


def test_screenshot_is_not_blank(finished):
    layout, rep, tmp = finished
    page = layout.storage.local_path(rep.html)
    shot = tmp / "report.png"
    run_chromium(tmp, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), "Chromium wrote no screenshot"
    image = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3]
    assert image.shape[:2] == (2400, 1280)
    ink = image.min(axis=2) < 0.6                          # text, lines, bars
    colour = image.max(axis=2) - image.min(axis=2) > 0.25  # plot colours, table shading
    assert 0.01 < ink.mean() < 0.5, f"screenshot looks blank: {ink.mean():.4f} of pixels inked"
    assert colour.mean() > 0.002, "screenshot has no colour: figures or shading missing"
    # the figures are below the tables: the lower half of the page holds ink too
    assert ink[1200:].mean() > 0.005
    print(f"screenshot: {shot}")


def test_missing_chromium_fails_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(CHROMIUM_ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))          # an empty directory: no browser on PATH
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        find_chromium()
