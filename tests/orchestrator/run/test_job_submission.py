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
