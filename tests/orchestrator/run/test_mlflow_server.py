"""An MLflow tracking server on 127.0.0.1 over a sweep's own store (`<sweep>/mlflow.db`, artifacts
in `<sweep>/mlflow-artifacts`): the parent run, its child runs and the report artifacts are found
through the server's REST API, and in headless Chromium the `browse:` URL a run prints opens the
experiment's runs table (not MLflow 3's GenAI overview) with the sweep's runs by name, as a user
browsing `mlflow server`/`mlflow ui` would see them.
The server picks its own port (`--port 0`, read back from its log): no port is chosen and released
by the test, so no other process can take it in between."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.report import build as report
from orchestrator.run import recording, tracking
from orchestrator.run.work import alpha_step
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.chromium import Page
from tests.support.report_data import synthetic_sweep, write_sweep

SERVER_START_TIMEOUT_S = 300    # mlflow server imports a lot; the machine may be busy
SERVER_STOP_TIMEOUT_S = 20
SWEEP = "served-sweep"
EXPAND = 'button[data-component-id*="runnamecellrenderer"]'   # the +/- before a parent run's name


LISTENING = re.compile(rb"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@pytest.fixture(scope="module")
def logged_sweep(tmp_path_factory):
    """A sweep logged the way `run_sweep` logs one: the version's parent run, a child run per task of one
    seed of the default graph (metrics, training and path curves), the report and its figures (of a
    synthetic sweep) on the parent."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    layout = SweepLayout(Storage(str(tmp / "store")), SWEEP)
    write_sweep(layout, synthetic_sweep())
    graph = build_graph(load_spec(None, ["seeds=[0]"]))
    tracker = tracking.MlflowTracker(layout.mlflow_uri(), SWEEP)
    parent = tracker.start(tracking.SweepRun(graph=graph, sweep=SWEEP, version=1, spec_hash="abc123",
                                             spec_text=f"name: {SWEEP}\n", source="served.yaml"))
    ended = []
    for task in graph.tasks.values():
        if task.kind == vocab.PATH_EVAL:
            steps = [(f"path.{s}.loss", alpha_step(a / 10), 0.3 + a * (10 - a) / 100) for s in ("cue", "nocue")
                     for a in range(11)]
        else:
            steps = [("train_loss", e, 1 / (e + 1)) for e in range(3)]
        ended.append(recording.EndedTask(task, vocab.DONE, None, 1.0, time.time() - 5, time.time(), "cpu",
                                         {"eval.cue.acc": 0.9}, steps))
    children = tracker.tasks_ended(ended)
    rep = report.write_report(layout)
    tracker.finish(vocab.MLFLOW_FINISHED, metrics={"tasks_done": len(children)},
                   artifacts=report.local_paths(layout, [rep.html, *rep.figures]))
    figures = {Path(p).name for p in rep.figures}
    return layout, tracker, parent, children, figures, tmp


@contextlib.contextmanager
def serving(directory: Path, backend: str, artifacts: str, env: dict | None = None, default_root: str | None = None,
            stop_wait_s: float = SERVER_STOP_TIMEOUT_S):
    """`mlflow server` on a port of its own choosing on 127.0.0.1 (backend store `backend`, artifacts proxied to
    `artifacts`, the process environment `env`), its log in `directory`. Yields `ready()`, which returns its base
    URL once `/health` answers (the caller may do other work while the server starts), and stops it (and every
    process it started) afterwards: SIGTERM, SIGKILL after `stop_wait_s`."""
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
               *(["--default-artifact-root", default_root] if default_root else []),
               "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", "0", "--workers", "1"]
    log_path = directory / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=directory, env=env,
                            start_new_session=True)   # its own process group: uvicorn workers too
    started = time.monotonic()

    def ready() -> str:
        deadline = started + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n" + log_path.read_text()[-3000:])
            found = LISTENING.search(log_path.read_bytes())
            base = found.group(1).decode() if found else None
            try:
                if base is None:
                    raise ConnectionError("not listening yet")
                with urllib.request.urlopen(base + "/health", timeout=5) as response:
                    if response.status == 200:
                        return base
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy within {SERVER_START_TIMEOUT_S} s:\n"
                            + log_path.read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield ready
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=stop_wait_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
        log.close()


@pytest.fixture(scope="module")
def server(logged_sweep):
    """`mlflow server` on a port of its own choosing on 127.0.0.1 over the sweep's store; stopped afterwards."""
    layout, *_, tmp = logged_sweep
    artifacts = tracking.default_artifact_location(layout.mlflow_uri())
    with serving(tmp, layout.mlflow_uri(), artifacts, default_root=artifacts) as ready:
        yield ready()


def get(base: str, path: str, **query) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else base + path
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def search_runs(base: str, experiment_id: str, filter_string: str = "") -> list[dict]:
    runs, token = [], None
    while True:
        body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 100}
        if token:
            body["page_token"] = token
        page = post(base, "/api/2.0/mlflow/runs/search", body)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def artifact_names(base: str, run_id: str) -> dict[str, int]:
    listing = get(base, "/api/2.0/mlflow/artifacts/list", run_id=run_id)
    return {f["path"]: int(f.get("file_size", 0)) for f in listing.get("files", [])
            if not f.get("is_dir")}


def test_parent_children_and_report_through_rest_api(logged_sweep, server):
    _layout, tracker, parent_id, children, figures, _tmp = logged_sweep
    experiment = get(server, "/api/2.0/mlflow/experiments/get-by-name",
                     experiment_name=SWEEP)["experiment"]
    assert experiment["name"] == SWEEP and experiment["experiment_id"] == tracker.experiment_id
    assert experiment["artifact_location"].endswith("/mlflow-artifacts")

    runs = search_runs(server, experiment["experiment_id"])
    parents = [r for r in runs if "mlflow.parentRunId" not in tags_of(r)]
    assert [r["info"]["run_id"] for r in parents] == [parent_id]
    assert parents[0]["info"]["status"] == "FINISHED"
    assert parents[0]["info"]["run_name"] == f"{SWEEP} v1"

    # the children, found with a server-side filter on the parent link
    found = search_runs(server, experiment["experiment_id"],
                        f"tags.mlflow.parentRunId = '{parent_id}'")
    assert {tags_of(r)["task_id"]: r["info"]["run_id"] for r in found} == children
    assert len({r["info"]["run_name"] for r in found}) == len(children)      # names tell the runs apart
    for run in found:
        tags = tags_of(run)
        assert tags["task_kind"] and run["info"]["status"] == "FINISHED"
        assert not re.fullmatch(r"[a-z_]+-[0-9a-f]{16}", run["info"]["run_name"])   # not the task id

    # the report, every figure and the spec on the parent run, non-empty
    parent_files = artifact_names(server, parent_id)
    assert {"report.html", "spec.yaml", *figures} <= set(parent_files), parent_files
    assert all(size > 0 for name, size in parent_files.items()), parent_files

    # and the report itself can be fetched from the server (what the UI's artifact view shows)
    url = f"{server}/get-artifact?" + urllib.parse.urlencode({"path": "report.html",
                                                              "run_uuid": parent_id})
    with urllib.request.urlopen(url, timeout=30) as response:
        page = response.read().decode()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page


def test_the_printed_browse_url_opens_the_runs_table_with_the_sweeps_runs(logged_sweep, server):
    """The URL `mmc-sweep run` prints after `browse:` (for `mlflow ui` on 127.0.0.1:5000; here the server's
    own port), in headless Chromium: the runs table (MLflow 3 opens experiments on a GenAI overview unless
    told otherwise), the version's parent run by name and, expanded, its child runs by name."""
    _layout, tracker, parent_id, children, _figures, tmp = logged_sweep
    printed = tracker.browse_url()
    assert printed.startswith(f"http://127.0.0.1:{tracking.UI_PORT}/#/experiments/{tracker.experiment_id}/runs?")
    url = server + printed[len(f"http://127.0.0.1:{tracking.UI_PORT}"):]
    names = {r["info"]["run_name"] for r in search_runs(server, tracker.experiment_id,
                                                        f"tags.mlflow.parentRunId = '{parent_id}'")}
    with Page(tmp / "profile") as page:
        page.open(url)
        text = page.wait_for(lambda t: f"{SWEEP} v1" in t)
        assert text.startswith("Runs - ") and "Traces 0" not in text
        # the machine-learning view, not the GenAI one (whose sidebar has sessions and evaluation runs, and
        # which calls the same table "Training runs")
        assert "Evaluation runs" not in text and "Sessions" not in text and "Training runs" not in text, text[:1500]
        assert f"{len(children) + 1} matching runs" in text
        assert page.evaluate(f"document.querySelectorAll('{EXPAND}').length") == 1   # one parent, collapsed
        page.evaluate(f"document.querySelector('{EXPAND}').click()")
        text = page.wait_for(lambda t: "pretrain cue p=0.8 seed 0" in t)
        shown = [n for n in names if n in text]
        assert len(shown) >= 10, (shown, text[:2000])        # the rows in view (the table scrolls the rest)
        shot = page.screenshot(tmp / "mlflow-runs.png")
    image = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3]
    ink = image.min(axis=2) < 0.6
    assert 0.005 < ink.mean() < 0.5, f"screenshot looks blank: {ink.mean():.4f} of pixels inked"
    print(f"screenshot: {shot}")
