"""The MLflow range pyproject allows (`mlflow>=3.9,<4`), tested at both ends: the installed MLflow (the newest
the install resolves) runs the whole suite; the oldest is installed here beside it (`pip install --no-deps
--target`, the other packages as installed) and runs the tracking tests: the tracker, both ways of writing
child runs (the SQL fast path uses MLflow internals) and the relocation of artifacts.

Why 3.9: MLflow 3.0-3.8 import `FallbackAsyncAdaptedQueuePool` from SQLAlchemy, which SQLAlchemy 2.1 no
longer has, so they cannot open a SQL store next to the SQLAlchemy this project installs; MLflow 2 has
no `workflowType` UI and other internals. Needs PyPI (as the install does)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import REPO, clean_env

TRACKING_TESTS = ["tests/orchestrator/run/test_tracking.py", "tests/orchestrator/run/test_scale_runner.py"]
SELECT = "not quick and not synthetic"      # the recorder and tracker tests of test_scale_runner
INSTALL_TIMEOUT_S = 600
TESTS_TIMEOUT_S = 1200


def mlflow_range() -> tuple[str, str]:
    """(oldest, first excluded) MLflow of pyproject's dependency."""
    text = (REPO / "pyproject.toml").read_text()
    found = re.search(r'"mlflow>=([0-9.]+),<([0-9.]+)"', text)
    assert found, "pyproject.toml: the mlflow dependency is not of the form mlflow>=OLDEST,<NEXT_MAJOR"
    return found.group(1), found.group(2)


def test_the_installed_mlflow_is_in_the_range():
    import mlflow

    oldest, excluded = mlflow_range()
    assert Version(oldest) <= Version(mlflow.__version__) < Version(excluded)


@pytest.mark.slow
def test_the_tracking_tests_pass_with_the_oldest_mlflow_allowed(tmp_path):
    oldest, _ = mlflow_range()
    target = tmp_path / f"mlflow-{oldest}"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              f"mlflow=={oldest}", f"mlflow-skinny=={oldest}", f"mlflow-tracing=={oldest}"],
                             capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert install.returncode == 0, f"could not install MLflow {oldest} from PyPI:\n{install.stderr[-3000:]}"
    env = clean_env(PYTHONPATH=f"{target}:{REPO}")
    version = subprocess.run([sys.executable, "-c", "import mlflow; print(mlflow.__version__)"], env=env,
                             capture_output=True, text=True, timeout=120, cwd=REPO)
    assert version.returncode == 0 and Version(version.stdout.strip()) == Version(oldest), \
        version.stdout + version.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:randomly", "-p", "no:cacheprovider",
                          *TRACKING_TESTS, "-k", SELECT], env=env, capture_output=True, text=True,
                         timeout=TESTS_TIMEOUT_S, cwd=REPO)
    assert run.returncode == 0, f"with MLflow {oldest}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert re.search(r"\b\d+ passed", run.stdout) and "failed" not in run.stdout.splitlines()[-1]
