"""`ray job submit -- python -m orchestrator run SPEC` against a local Ray head, as on a cluster.

The head is a Ray started in a helper process of its own (`ray.init` with a dashboard, in a fresh
temp dir): every port is chosen by Ray itself and the dashboard's address is read back, so no port
is picked and released by the test for another process to take first (`ray start --head` cannot
do that: its client-server port must be fixed). The helper is stopped by closing its stdin, then
its process group is killed; `ray stop` would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from orchestrator import tables, vocab
from orchestrator.graph import build_graph
from orchestrator.spec import load_spec
from orchestrator.layout import Storage, SweepLayout
from tests.conftest import REPO, clean_env, write_spec

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_START_TIMEOUT_S = 300
JOB_TIMEOUT_S = 600
HEAD = """
import sys, ray
ctx = ray.init(num_cpus=2, num_gpus=0, include_dashboard=True, dashboard_host="127.0.0.1",
               _temp_dir=sys.argv[1], log_to_driver=False)
print("DASHBOARD http://" + ctx.dashboard_url, flush=True)
sys.stdin.read()          # until the test closes our stdin
ray.shutdown()
"""


def _env() -> dict:
    return clean_env(RAY_AUTH_MODE="token")


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head with a dashboard on ports Ray chose; yields the dashboard URL."""
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")      # short: Ray's socket paths are length-limited
    log = open(Path(temp_dir) / "head.log", "w")
    head = subprocess.Popen([sys.executable, "-c", HEAD, temp_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=log, env=_env(), text=True, start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while not line.startswith("DASHBOARD "):
            line = head.stdout.readline()
            assert line or head.poll() is None, "the Ray head exited:\n" + (Path(temp_dir) / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not start"
        url = line.split()[1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        yield url
    finally:
        _stop(head)
        log.close()


def _stop(head: subprocess.Popen) -> None:
    """Close the helper's stdin (it shuts Ray down), then SIGKILL whatever is left of its group."""
    try:
        head.stdin.close()
        head.wait(timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait(timeout=30)


def test_job_submit_runs_a_sweep_on_the_cluster(ray_head, tmp_path):
    path = write_spec(tmp_path, "job", cue_proportions=[0.0], finetune={"methods": []},
                      paths={"pairs": ["nocue~nocue:self"]})
    graph = build_graph(load_spec(path))
    storage = tmp_path / "storage"
    job_id = f"mmc-test-{uuid.uuid4().hex[:8]}"
    submit = subprocess.run(
        [RAY, "job", "submit", "--address", ray_head, "--submission-id", job_id, "--working-dir", str(REPO),
         "--no-wait", "--", "python", "-m", "orchestrator", "run", str(path), "--storage", str(storage)],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]

    deadline, status, out = time.monotonic() + JOB_TIMEOUT_S, None, None
    while time.monotonic() < deadline:
        out = subprocess.run([RAY, "job", "status", "--address", ray_head, job_id],
                             capture_output=True, text=True, env=_env(), timeout=120)
        found = re.search(r"Job '[^']+' (succeeded|failed|was stopped|stopped)", out.stdout + out.stderr)
        if found:             # e.g. "Job 'mmc-test-1a2b3c4d' succeeded"
            status = found.group(1).split()[-1]
            break
        time.sleep(2)         # polling the job's status; each poll is itself a subprocess of seconds
    logs = subprocess.run([RAY, "job", "logs", "--address", ray_head, job_id],
                          capture_output=True, text=True, env=_env(), timeout=120).stdout
    assert status == "succeeded", f"job ended {status}:\n{out.stdout[-1000:] if out else ''}\n{logs[-4000:]}"

    layout = SweepLayout(Storage(str(storage)), "job")
    rows = tables.read_table(layout, vocab.TASKS)
    assert sorted(rows["task_id"]) == sorted(graph.tasks) and set(rows["status"]) == {vocab.FINISHED}
    pretrains = {t for t, task in graph.tasks.items() if task.kind == "pretrain"}
    assert set(tables.read_table(layout, vocab.EVALUATIONS)["task_id"]) == pretrains
    assert len(tables.read_table(layout, vocab.TRAIN_CURVES)) == len(pretrains) * 1     # 1 epoch each
    assert "finished in" in logs and f"done {len(graph)}" in logs
