"""A wheel install is the same program as an editable one: the wheel holds every file the package
reads at run time (the profiles, the shipped sweeps, the report's templates), and a built-in profile
missing from an install is an error, never `{}` (which ran the digits with the paper's CIFAR settings).

The wheel is built from a copy of the package sources (a stale `build/` of the checkout cannot leak
in), installed into a fresh venv that sees this environment's site-packages only through a `.pth`
line (so the dependencies are there, but not the editable install's finder), and run from a directory
outside the repository without PYTHONPATH: what runs is the installed package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.errors import SweepError
from orchestrator.spec import layers, sweep_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.conftest import REPO, clean_env
from tests.support.report_data import synthetic_sweep, write_sweep

SHIPPED = REPO / "sweeps" / "cbft_lambda.yaml"    # digits, swept axes: the profile decides most keys
PACKAGE_DATA = ("orchestrator/spec/sweeps/default.yaml", "orchestrator/report/templates/report.html",
                *[f"orchestrator/spec/profiles/{p.name}" for p in (REPO / "orchestrator/spec/profiles").glob("*.yaml")])


def test_a_missing_builtin_profile_is_an_error_not_empty(monkeypatch, capsys):
    real = layers.resource_text
    monkeypatch.setattr(layers, "resource_text", lambda name: None if name.startswith("profiles/") else real(name))
    with pytest.raises(SweepError, match=r"built-in profile of dataset `digits`.*reinstall"):
        sweep_spec.load_spec(None)
    assert cli.main(["plan", "--resolved"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert layers.profile_for("examples.custom_dataset:load") == {}    # a dataset of your own has none


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("orchestrator", "tasks"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(src)], check=True, env=clean_env(PYTHONPATH=""), timeout=600)
    return next(out.glob("mmc_sweep-*.whl"))


def _venv_with_wheel(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this environment's packages (torch, ray, ...) after the venv's own; its .pth files (the editable
    # install's finder) are not processed for a directory added this way
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_mmc_test_deps.pth").write_text("".join(f"{p}\n" for p in paths))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, env=clean_env(PYTHONPATH=""), timeout=600)
    return venv


def _env() -> dict:
    env = clean_env()
    env.pop("PYTHONPATH")
    return env


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_a_wheel_install_plans_and_reports_like_the_editable_one(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [p for p in PACKAGE_DATA if p not in names], sorted(n for n in names if not n.endswith(".py"))
    venv = _venv_with_wheel(tmp_path, wheel)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    installed, editable = [str(venv / "bin" / "mmc-sweep")], [sys.executable, "-m", "orchestrator"]

    where = _run([str(venv / "bin" / "python"), "-c", "import orchestrator, tasks; print(orchestrator.__file__, "
                  "tasks.__file__)"], outside, _env())
    assert all(p.startswith(str(venv)) for p in where.split()), where   # not the checkout
    for args in (["plan", "--resolved"], ["plan", "--resolved", str(SHIPPED)], ["plan", str(SHIPPED)]):
        got = _run(installed + args, outside, _env())
        want = _run(editable + args, outside, clean_env())
        drop = "(planned in"   # the planning time differs
        assert [x for x in got.splitlines() if drop not in x] == [x for x in want.splitlines() if drop not in x], args

    runs = outside / "mmc-runs"
    write_sweep(SweepLayout(Storage(runs), "tiny"), synthetic_sweep(seeds=(0, 1), pair_types=("cue~nocue",)))
    out = _run(installed + ["report", str(runs / "tiny")], outside, _env())
    assert "report:" in out
    page = (runs / "tiny" / "report" / "report.html").read_text()
    css = (REPO / "orchestrator" / "report" / "templates" / "report.css").read_text().strip().splitlines()[0]
    assert css in page and "<img" in page                   # the template, its stylesheet and the figures
    assert os.path.isfile(runs / "tiny" / "report" / "summary.parquet")
