"""`cluster/submit.sh SPEC` (`ray job submit ... -- python -m orchestrator run SPEC`) against a local Ray
head, as on a cluster, from a git checkout: the job records the checkout's revision; and `ray job stop`,
which SIGTERMs the driver: it stops as for Ctrl-C (finished tasks recorded, exit 130).

The head gets its own temp dir (so no other `ray.init()` on this machine attaches to it) and is
stopped by signalling the `ray start --block` process group this test started; `ray stop` would
stop every Ray on the machine. Ports: the GCS, node manager, object manager, runtime-env agent and
workers take ports Ray allocates itself (0 / unset); Ray 2.60 refuses 0 for the dashboard, its
agent's HTTP port and the client server, so those are chosen free just before the start, and a
head that could not bind them (another process took one in between) is started again on new ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

import mlflow

from orchestrator import provenance, vocab
from orchestrator.results import tables
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from tests.conftest import REPO, clean_env, write_spec
from tests.support import runners

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_START_TIMEOUT_S = 300
HEAD_ATTEMPTS = 3
JOB_TIMEOUT_S = 600
CHOSEN_PORTS = ("--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
                "--dashboard-agent-grpc-port", "--metrics-export-port")
RAY_PORTS = ("--port=0", "--runtime-env-agent-port=0")     # allocated by Ray itself
# the grace a stopped job's driver gets before Ray kills it, as the shipped runtime environments set it
SHIPPED_STOP_WAIT_S = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())["env_vars"][
    "RAY_JOB_STOP_WAIT_TIME_S"]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env(**extra: str) -> dict:
    """The test's python first on PATH: `ray`, the job's `python` and cluster/submit.sh's are this one."""
    return clean_env(RAY_AUTH_MODE="token", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                     **extra)


def _dashboard_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True          # it answers (e.g. 401 without the token)
    except OSError:
        return False


def _agent_failed(temp_dir: str) -> bool:
    logs = Path(temp_dir, "session_latest", "logs")
    return any("address already in use" in p.read_text(errors="replace") for p in logs.glob("dashboard_agent*"))


def _start_head():
    """`ray start --head --block`; returns (process, dashboard URL, log) or None when a port was taken."""
    ports = dict(zip(CHOSEN_PORTS, _free_ports(len(CHOSEN_PORTS))))
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")      # short: Ray's socket paths are length-limited
    log = open(Path(temp_dir) / "head.log", "w")
    cmd = [RAY, "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--temp-dir={temp_dir}", *RAY_PORTS,
           *[f"{k}={v}" for k, v in ports.items()]]
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    url = f"http://127.0.0.1:{ports['--dashboard-port']}"
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while not _dashboard_up(url):
        if head.poll() is not None or _agent_failed(temp_dir) or time.monotonic() > deadline:
            _stop(head)
            text = (Path(temp_dir) / "head.log").read_text()
            log.close()
            if "already in use" in text or _agent_failed(temp_dir):
                return None
            pytest.fail("the Ray head did not come up:\n" + text[-3000:])
        time.sleep(0.5)
    return head, url, log


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray head with a dashboard; yields the dashboard URL."""
    for _ in range(HEAD_ATTEMPTS):
        started = _start_head()
        if started is not None:
            break
    else:
        pytest.fail(f"the Ray head could not bind its ports in {HEAD_ATTEMPTS} attempts")
    head, url, log = started
    try:
        yield url
    finally:
        _stop(head)
        log.close()


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the process group of our `ray start` (raylet, GCS, dashboard, workers)."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def _submit(ray_head: str, job_id: str, command: list[str], env_vars: dict | None = None) -> None:
    runtime_env = ["--runtime-env-json", json.dumps({"env_vars": env_vars})] if env_vars else []
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while True:   # the head's job agent registers a little after the dashboard answers
        submit = subprocess.run(
            [RAY, "job", "submit", "--address", ray_head, "--submission-id", job_id, "--working-dir", str(REPO),
             *runtime_env, "--no-wait", "--", *command], capture_output=True, text=True, env=_env(), timeout=300)
        if submit.returncode == 0 or "No available agent" not in submit.stderr or time.monotonic() > deadline:
            break
    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]


def _wait_for_end(ray_head: str, job_id: str) -> tuple[str | None, str, str]:
    """(how the job ended: succeeded | failed | stopped, the last status output, the job's logs)."""
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
    return status, (out.stdout[-1000:] if out else ""), logs


def _checkout(tmp_path: Path) -> Path:
    """A git checkout of the project (its packages, cluster/, pyproject.toml, .gitignore) with one commit and
    one uncommitted change: what a user submits from."""
    root = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("orchestrator", "tasks", "cluster"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    for name in ("pyproject.toml", ".gitignore"):
        shutil.copy2(REPO / name, root / name)
    git = ["git", "-C", str(root), "-c", "user.name=mmc-test", "-c", "user.email=mmc-test@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the submitted checkout"]):
        subprocess.run([*git, *args], check=True, capture_output=True, timeout=120)
    with open(root / "tasks" / "__init__.py", "a") as f:
        f.write("# an uncommitted change\n")
    return root


def test_job_submit_runs_a_sweep_on_the_cluster(ray_head, tmp_path):
    """cluster/submit.sh, from a git checkout with uncommitted changes: the job runs the sweep in a copy of
    the checkout without `.git`, and the `tasks` table and the report record the checkout's revision
    (`+dirty.` with the hash of its diff); the job carries the sweep's name and the revision in its
    submission id and metadata."""
    checkout = _checkout(tmp_path)
    revision = provenance.git_revision(checkout / "orchestrator")
    assert revision is not None and revision.dirty
    path = write_spec(tmp_path, "job", cue_proportions=[0.0], finetune={"methods": []},
                      paths={"pairs": ["nocue~nocue:self"]})
    graph = build_graph(load_spec(path))
    storage = tmp_path / "storage"
    job_id = f"mmc-test-{uuid.uuid4().hex[:8]}"
    env = _env(RAY_ADDRESS=ray_head, MMC_SUBMISSION_ID=job_id, PYTHON=sys.executable)
    env.pop("PYTHONPATH")                 # the checkout's own code, on both sides
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while True:   # the head's job agent registers a little after the dashboard answers
        submit = subprocess.run(["bash", str(checkout / "cluster" / "submit.sh"), str(path), "--storage", str(storage)],
                                cwd=tmp_path, capture_output=True, text=True, env=env, timeout=JOB_TIMEOUT_S)
        if submit.returncode == 0 or "No available agent" not in submit.stderr or time.monotonic() > deadline:
            break
    logs = submit.stdout + submit.stderr
    assert submit.returncode == 0, logs[-4000:]

    layout = SweepLayout(Storage(str(storage)), "job")
    rows = tables.read_table(layout, vocab.TASKS)
    assert sorted(rows["task_id"]) == sorted(graph.tasks) and set(rows["status"]) == {vocab.FINISHED}
    pretrains = {t for t, task in graph.tasks.items() if task.kind == "pretrain"}
    assert set(tables.read_table(layout, vocab.EVALUATIONS)["task_id"]) == pretrains
    assert len(tables.read_table(layout, vocab.TRAIN_CURVES)) == len(pretrains) * 1     # 1 epoch each
    assert "finished in" in logs and f"done {len(graph)}" in logs

    assert set(rows["git_rev"]) == {revision.label}, (set(rows["git_rev"]), revision)   # not this repository's
    kept = storage / "job" / "provenance" / f"{revision.label}.diff"      # the diff, shipped with the job's copy
    assert "+# an uncommitted change" in kept.read_text() and not (checkout / provenance.SUBMITTED_DIFF).exists()
    assert rows["versions"].str.contains("torch ").all()
    page = (storage / "job" / "report" / "report.html").read_text()
    assert revision.label in page and "software (run)" in page
    listed = subprocess.run([RAY, "job", "list", "--address", ray_head], capture_output=True, text=True, env=_env(),
                            timeout=120).stdout
    assert job_id in listed and "mmc-sweep job" in listed and revision.to_env() in listed


def test_submit_exits_with_the_sweeps_own_status_under_a_unique_submission_id(ray_head, tmp_path):
    """cluster/submit.sh with a spec the driver refuses: the job fails, and the script exits 2 (the sweep's
    status for bad input, read from the job), not `ray job submit`'s 1; the error is in its output. Two
    submissions of one spec in the same second get two submission ids (a random suffix after the time)."""
    path = write_spec(tmp_path, "refused", paths={"num_alphas": 2})
    env = _env(RAY_ADDRESS=ray_head, PYTHON=sys.executable)
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while True:   # the head's job agent registers a little after the dashboard answers
        submit = subprocess.run(["bash", str(REPO / "cluster" / "submit.sh"), str(path), "nonsense_key=1"],
                                cwd=tmp_path, capture_output=True, text=True, env=env, timeout=JOB_TIMEOUT_S)
        if "No available agent" not in submit.stderr or time.monotonic() > deadline:
            break
    logs = submit.stdout + submit.stderr
    assert submit.returncode == 2, (submit.returncode, logs[-4000:])
    assert "`nonsense_key`: unknown key" in logs and "Traceback" not in logs, logs[-4000:]
    ids = re.findall(r"Job '(mmc-refused-\d{8}-\d{6}-[0-9a-f]{6})' submitted successfully", logs)
    assert len(ids) == 1, logs[-4000:]
    listed = subprocess.run([RAY, "job", "list", "--address", ray_head], capture_output=True, text=True, env=_env(),
                            timeout=120).stdout
    assert ids[0] in listed


@pytest.mark.slow
def test_ray_job_stop_ends_the_sweep_like_ctrl_c(ray_head, tmp_path):
    """`ray job stop` SIGTERMs the driver while a task runs (the `sleep` test runner blocks the second
    pretraining): the job's log says so, the finished pretraining's row is written, the MLflow parent
    run is KILLED. Ray SIGKILLs a job that has not ended RAY_JOB_STOP_WAIT_TIME_S (3 by default) after
    the SIGTERM; the job raises it for its driver through its runtime environment."""
    path = write_spec(tmp_path, "stopjob", finetune={"methods": []}, max_concurrent=1,
                      paths={"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2})
    graph = build_graph(load_spec(path))
    first, blocked = [t for t, task in graph.tasks.items() if task.kind == "pretrain"]
    storage, events = tmp_path / "storage", tmp_path / "events"
    job_id = f"mmc-test-{uuid.uuid4().hex[:8]}"
    _submit(ray_head, job_id, ["python", "-m", "orchestrator", "run", str(path), "--storage", str(storage),
                               "--runner", runners.name("sleep")],
            env_vars={"RAY_JOB_STOP_WAIT_TIME_S": SHIPPED_STOP_WAIT_S, "MMC_COMPACT_MIN_FRAGMENTS": "1",
                      **runners.hook_env(events, **{runners.SLEEP_ENV: "0.1", runners.BLOCK_ENV: blocked})})
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (events / f"blocked-{blocked}").exists():
        assert time.monotonic() < deadline, "the job never reached the blocked task"
        time.sleep(1)
    stop = subprocess.run([RAY, "job", "stop", "--address", ray_head, job_id], capture_output=True, text=True,
                          env=_env(), timeout=JOB_TIMEOUT_S)
    assert stop.returncode == 0, stop.stdout[-2000:] + stop.stderr[-2000:]
    status, out, logs = _wait_for_end(ray_head, job_id)
    assert status == "stopped", f"job ended {status}:\n{out}\n{logs[-4000:]}"
    assert "warning: SIGTERM received: stopping as for Ctrl-C" in logs, logs[-4000:]
    assert "interrupted: finished tasks are kept" in logs and "Traceback" not in logs, logs[-4000:]
    layout = SweepLayout(Storage(str(storage)), "stopjob")
    rows = tables.read_table(layout, vocab.TASKS)
    assert list(rows["task_id"]) == [first] and list(rows["status"]) == [vocab.FINISHED]
    client = mlflow.MlflowClient(layout.mlflow_uri())
    runs = client.search_runs([client.get_experiment_by_name("stopjob").experiment_id])
    assert [r.info.status for r in runs if "mlflow.parentRunId" not in r.data.tags] == [vocab.MLFLOW_KILLED]
