"""`ray job submit -- python -m orchestrator run SPEC` against a local Ray head, as on a cluster.

The head gets its own ports and temp dir (so no other `ray.init()` on this machine attaches to it)
and is stopped by signalling the `ray start --block` process group this test started; `ray stop`
would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import re
from pathlib import Path

import pytest

from orchestrator import sinks
from orchestrator.graph import build_graph
from orchestrator.layout import Storage, SweepLayout
from orchestrator.spec import load_spec
from tests.conftest import REPO, write_spec

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 300
PORT_OPTIONS = ("--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
                "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
                "--node-manager-port", "--object-manager-port")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env() -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    return env


def _dashboard_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True          # it answers (e.g. 401 without the token)
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` on 127.0.0.1 with free ports; yields the dashboard URL."""
    ports = dict(zip(PORT_OPTIONS, _free_ports(len(PORT_OPTIONS))))
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")      # short: Ray's socket paths are length-limited
    log = open(Path(temp_dir) / "head.log", "w")
    cmd = [RAY, "start", "--head", "--block", "--num-cpus=2", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--temp-dir={temp_dir}",
           *[f"{k}={v}" for k, v in ports.items()]]
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    url = f"http://127.0.0.1:{ports['--dashboard-port']}"
    try:
        deadline = time.time() + HEAD_START_TIMEOUT_S
        while not _dashboard_up(url):
            assert head.poll() is None, "ray start exited:\n" + (Path(temp_dir) / "head.log").read_text()[-3000:]
            assert time.time() < deadline, "the Ray dashboard did not come up"
            time.sleep(1)
        yield url
    finally:
        _stop(head)
        log.close()


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the process group of our `ray start` (raylet, GCS, dashboard, workers)."""
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)   # let the rest of the group follow the leader


def test_job_submit_runs_a_sweep_on_the_cluster(ray_head, tmp_path):
    path = write_spec(tmp_path, "job", cue_proportions=[0.0], finetune={"methods": []}, paths={"pairs": []})
    graph = build_graph(load_spec(path))
    storage = tmp_path / "storage"
    job_id = f"mmc-test-{uuid.uuid4().hex[:8]}"
    submit = subprocess.run(
        [RAY, "job", "submit", "--address", ray_head, "--submission-id", job_id, "--working-dir", str(REPO),
         "--no-wait", "--", "python", "-m", "orchestrator", "run", str(path), "--storage", str(storage)],
        capture_output=True, text=True, env=_env(), timeout=120)
    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]

    deadline, status = time.time() + JOB_TIMEOUT_S, None
    while time.time() < deadline:
        out = subprocess.run([RAY, "job", "status", "--address", ray_head, job_id],
                             capture_output=True, text=True, env=_env(), timeout=60)
        found = re.search(r"Job '[^']+' (succeeded|failed|was stopped|stopped)", out.stdout + out.stderr)
        if found:             # e.g. "Job 'mmc-test-1a2b3c4d' succeeded"
            status = found.group(1).split()[-1]
            break
        time.sleep(2)
    logs = subprocess.run([RAY, "job", "logs", "--address", ray_head, job_id],
                          capture_output=True, text=True, env=_env(), timeout=60).stdout
    assert status == "succeeded", f"job ended {status}:\n{out.stdout[-1000:]}\n{logs[-4000:]}"

    layout = SweepLayout(Storage(str(storage)), "job")
    tasks = sinks.read_table(layout, "tasks")
    assert sorted(tasks["task_id"]) == sorted(graph.tasks) and set(tasks["status"]) == {"finished"}
    assert set(sinks.read_table(layout, "evaluations")["task_id"]) == set(graph.tasks)
    assert len(sinks.read_table(layout, "train_curves")) == len(graph) * 1     # 1 epoch each
    assert "finished in" in logs and "done 1" in logs
