"""`orchestrator/__init__.py`: the package binds `tasks` to mmc-sweep's own, so a `tasks.py` or `tasks/` in
the working directory (an invoke or Celery project's; Ray puts the driver's working directory first on its
workers' path) does not take its place."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

OWN = Path(__file__).resolve().parents[2] / "tasks"
SMOKE = Path(__file__).resolve().parents[2] / "sweeps" / "smoke.yaml"


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("shadow", ["module", "package"])
def test_a_tasks_module_in_the_working_directory_does_not_take_the_place_of_mmc_sweeps_own(tmp_path, shadow):
    if shadow == "module":
        (tmp_path / "tasks.py").write_text("raise SystemExit('the user tasks.py was imported')\n")
    else:
        (tmp_path / "tasks").mkdir()
        (tmp_path / "tasks" / "__init__.py").write_text("raise SystemExit('the user tasks/ was imported')\n")
    got = _python(tmp_path, "-c", "import orchestrator.run.work, tasks.settings.data, tasks; print(tasks.__path__[0])")
    assert got.returncode == 0, got.stderr[-2000:]
    assert Path(got.stdout.strip()).resolve() == OWN
    plan = _python(tmp_path, "-m", "orchestrator", "plan", str(SMOKE))     # `python -m` puts the cwd first
    assert plan.returncode == 0 and "pretrain" in plan.stdout, plan.stderr[-2000:]


def test_another_tasks_imported_before_mmc_sweep_is_named_not_silently_replaced(tmp_path):
    (tmp_path / "tasks.py").write_text("X = 1\n")
    got = _python(tmp_path, "-c", "import tasks; import orchestrator")
    assert got.returncode != 0
    assert "another module named `tasks`" in got.stderr and str(tmp_path / "tasks.py") in got.stderr
    assert "import orchestrator first, or rename yours" in got.stderr
