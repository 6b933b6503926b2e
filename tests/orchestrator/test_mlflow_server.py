"""An MLflow tracking server on 127.0.0.1 over a sweep's own store (`<sweep>/mlflow.db`, artifacts
in `<sweep>/mlflow-artifacts`): the parent run, its child runs and the report artifacts are found
through the server's REST API, as a user browsing `mlflow server`/`mlflow ui` would see them.
The server picks its own port (`--port 0`, read back from its log): no port is chosen and released
by the test, so no other process can take it in between."""

from __future__ import annotations

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

import pytest

from orchestrator import vocab
from orchestrator.report import build as report, plots
from orchestrator.results import tables
from orchestrator.run import tracking
from orchestrator.storage.layout import Storage, SweepLayout
from tests.orchestrator.report_data import synthetic_sweep, write_sweep

SERVER_START_TIMEOUT_S = 300    # mlflow server imports a lot; the machine may be busy
SERVER_STOP_TIMEOUT_S = 20
SWEEP = "served-sweep"


LISTENING = re.compile(rb"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@pytest.fixture(scope="module")
def logged_sweep(tmp_path_factory):
    """A synthetic sweep logged the way `run_sweep` logs one: a parent run, one child run per task
    (path tasks with their path plot), the report and its figures on the parent."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    layout = SweepLayout(Storage(str(tmp / "store")), SWEEP)
    sweep = synthetic_sweep()
    # a few tasks of every kind the synthetic sweep has keep the logging quick
    chosen = [t for t in sweep["tasks"] if t.startswith(("pretrain-p0.0-s0", "pretrain-p0.8-s0",
                                                         "finetune-cbft-s0"))]
    chosen += [t for t in sweep["tasks"] if t.startswith("path_eval") and t.endswith("s0")][:3]
    sweep = {name: {t: rows for t, rows in by_task.items() if t in chosen}
             for name, by_task in sweep.items()}
    write_sweep(layout, sweep)

    sink = tracking.MlflowSink(layout.mlflow_uri(), SWEEP)
    parent = sink.start_parent(params={"spec_hash": "abc123"}, tags={"sweep": SWEEP},
                               run_name="sweep-test")
    children, path_plots = {}, {}
    paths = tables.read_table(layout, vocab.PATHS)
    for task_id, (row,) in sweep["tasks"].items():
        artifacts = []
        if row["kind"] == "path_eval":
            png = tmp / f"path_{task_id}.png"
            fig = plots.plot_path(paths[paths["task_id"] == task_id], row["pair_type"],
                                  row["path_kind"], row.get("alignment"))
            png.write_bytes(plots.figure_png(fig))
            artifacts.append(png)
            path_plots[task_id] = png.name
        children[task_id] = sink.log_task(parent, row["kind"], task_id,
                                          params={"seed": row["seed"]},
                                          metrics={"duration_s": row["duration_s"]},
                                          artifacts=artifacts)
    rep = report.write_report(layout)
    sink.finish_parent(parent, metrics={"tasks_finished": len(chosen)},
                       artifacts=report.local_paths(layout, [rep.html, *rep.figures]))
    figures = {Path(p).name for p in rep.figures}
    return layout, parent, children, path_plots, figures, tmp


@pytest.fixture(scope="module")
def server(logged_sweep):
    """`mlflow server` on a port of its own choosing on 127.0.0.1 over the sweep's store; stopped afterwards."""
    layout, *_, tmp = logged_sweep
    artifacts = tracking.default_artifact_location(layout.mlflow_uri())
    command = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", layout.mlflow_uri(),
               "--default-artifact-root", artifacts, "--artifacts-destination", artifacts,
               "--host", "127.0.0.1", "--port", "0", "--workers", "1"]
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                            start_new_session=True)   # its own process group: uvicorn workers too
    base = None
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n"
                            + (tmp / "server.log").read_text()[-3000:])
            found = LISTENING.search((tmp / "server.log").read_bytes())
            base = found.group(1).decode() if found else None
            try:
                if base is None:
                    raise ConnectionError("not listening yet")
                with urllib.request.urlopen(base + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy within {SERVER_START_TIMEOUT_S} s:\n"
                            + (tmp / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
        log.close()


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
    _layout, parent_id, children, path_plots, figures, _tmp = logged_sweep
    experiment = get(server, "/api/2.0/mlflow/experiments/get-by-name",
                     experiment_name=SWEEP)["experiment"]
    assert experiment["name"] == SWEEP
    assert experiment["artifact_location"].endswith("/mlflow-artifacts")

    runs = search_runs(server, experiment["experiment_id"])
    parents = [r for r in runs if "mlflow.parentRunId" not in tags_of(r)]
    assert [r["info"]["run_id"] for r in parents] == [parent_id]
    assert parents[0]["info"]["status"] == "FINISHED"
    assert parents[0]["info"]["run_name"] == "sweep-test"

    # the children, found with a server-side filter on the parent link
    found = search_runs(server, experiment["experiment_id"],
                        f"tags.mlflow.parentRunId = '{parent_id}'")
    assert {r["info"]["run_name"]: r["info"]["run_id"] for r in found} == children
    for run in found:
        tags = tags_of(run)
        assert tags["task_id"] == run["info"]["run_name"] and tags["task_kind"]
        assert run["info"]["status"] == "FINISHED"

    # the report and every figure on the parent run, non-empty
    parent_files = artifact_names(server, parent_id)
    assert {"report.html", *figures} <= set(parent_files), parent_files
    assert all(size > 0 for name, size in parent_files.items()), parent_files
    # each path task's child run carries its path plot
    assert path_plots
    for task_id, png in path_plots.items():
        assert png in artifact_names(server, children[task_id])

    # and the report itself can be fetched from the server (what the UI's artifact view shows)
    url = f"{server}/get-artifact?" + urllib.parse.urlencode({"path": "report.html",
                                                              "run_uuid": parent_id})
    with urllib.request.urlopen(url, timeout=30) as response:
        page = response.read().decode()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
