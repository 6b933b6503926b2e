"""orchestrator.run.job_submission: what cluster/submit.sh refuses before submitting, and the exit status it
reads back from the job (the job itself: tests/orchestrator/run/test_job_submit.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.run import job_submission as J

SECRET = "SUPERSECRETfake7f3a"


@pytest.mark.parametrize("argument", [f"--storage=s3://AKIAFAKE:{SECRET}@bucket/runs", f"s3://AKIAFAKE:{SECRET}@b/r",
                                      f"mlflow.tracking_uri=https://u:{SECRET}@mlflow.example.com",
                                      f"data.root=https://host/data?token={SECRET}"])
def test_a_credential_in_a_jobs_arguments_is_refused_without_showing_it(argument):
    proc = subprocess.run([sys.executable, "-m", "orchestrator.run.job_submission", "check-arguments", "sweeps/x.yaml",
                           "--storage", "s3://bucket/runs", argument], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and SECRET not in proc.stderr + proc.stdout
    assert "job table" in proc.stderr and "***" in proc.stderr


def test_arguments_without_credentials_pass():
    assert J.credential_problem(["sweeps/x.yaml", "--storage", "s3://bucket/runs", "name=a", "cue~cue:spawn@2"]) is None
    assert J.main(["check-arguments", "sweeps/x.yaml", "seeds=[0,1]"]) == 0


@pytest.mark.parametrize("status, code, expected", [
    ("SUCCEEDED", 0, 0), ("FAILED", 1, 1), ("FAILED", 2, 2), ("STOPPED", 130, 130),
    ("STOPPED", None, 130),        # `ray job stop`: Ray records no exit code for the driver it stopped
    ("STOPPED", -9, 137),          # killed after RAY_JOB_STOP_WAIT_TIME_S: 128 + 9, as a shell says
    ("RUNNING", None, None), ("PENDING", None, None),
])
def test_the_exit_status_of_a_job_is_the_sweeps_own(status, code, expected):
    assert J.exit_status(status, code) == expected


@pytest.fixture
def jobs(monkeypatch):
    """A stand-in for `ray.job_submission` (no cluster): job id -> (status, driver exit code); the addresses
    asked are kept."""
    from types import ModuleType, SimpleNamespace
    table, asked = {}, []

    class Client:
        def __init__(self, address):
            asked.append(address)

        def get_job_info(self, job_id):
            status, code = table[job_id]
            return SimpleNamespace(status=SimpleNamespace(value=status), driver_exit_code=code)

    module = ModuleType("ray.job_submission")
    module.JobSubmissionClient = Client
    monkeypatch.setitem(sys.modules, "ray.job_submission", module)
    return SimpleNamespace(table=table, asked=asked)


def test_exit_status_prints_an_empty_line_while_the_job_runs_and_the_sweeps_status_once_it_ended(jobs, capsys):
    """cluster/submit.sh runs `exit "${code:-$status}"`: a job still running must print nothing (an empty line),
    never `None`, which is no exit status for the shell."""
    jobs.table.update({"running": ("RUNNING", None), "killed": ("STOPPED", -9)})
    assert J.main(["exit-status", "http://head:8265", "running"]) == 0
    assert capsys.readouterr().out == "\n"
    assert J.main(["exit-status", "http://head:8265", "killed"]) == 0
    assert capsys.readouterr().out == "137\n"
    assert jobs.asked == ["http://head:8265"] * 2


@pytest.mark.parametrize("argv", [["exit-status", "http://head:8265"], ["exit-status", "http://head:8265", "a", "b"]])
def test_exit_status_without_exactly_an_address_and_a_job_id_prints_the_usage_and_asks_no_cluster(jobs, capsys, argv):
    assert J.main(argv) == J.EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("usage: python -m orchestrator.run.job_submission ")
    assert jobs.asked == []
