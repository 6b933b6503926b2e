"""scripts/install.sh picks the right Python environment (scripts/env.sh), with stub interpreters: nothing real
is installed. The stub is a bash script standing in for `python`: it logs every call, makes a fake venv for
`-m venv`, records `pip install` in marker files inside its environment, and answers the import checks from
those markers. One that finds EXTERNALLY-MANAGED next to itself refuses `pip install` the way PEP 668 does."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("env.sh", "install.sh", "python", "run-default.sh")

STUB = r"""#!/usr/bin/env bash
echo "$0 $*" >> "$STUB_LOG"
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(dirname "$here")
if [ "$1" = -m ]; then
  case $2 in
    venv)
      dir=${@: -1}
      mkdir -p "$dir/bin"
      if [ -f "$here/NO-ENSUREPIP" ]; then echo "Error: ensurepip is not available (apt install python3-venv)" >&2; exit 1; fi
      cp "$0" "$dir/bin/python"; ln -s python "$dir/bin/python3"; echo "home = $here" > "$dir/pyvenv.cfg"; exit 0 ;;
    pip)
      [ "$3" = --version ] && { echo "pip 23.0.1"; exit 0; }
      if [ -f "$here/EXTERNALLY-MANAGED" ]; then echo "error: externally-managed-environment" >&2; exit 1; fi
      for f in ${STUB_PIP_FAIL:-}; do case " $* " in *"$f"*) echo "stub pip: no $f" >&2; exit 1 ;; esac; done
      for a in "${@:4}"; do
        case $a in
          torch*) touch "$prefix/installed-torch" ;;
          -e) for m in ray mlflow pyarrow pytest orchestrator; do touch "$prefix/installed-$m"; done ;;
        esac
      done
      exit 0 ;;
    *) exit 0 ;;
  esac
fi
if [ "$1" = -c ]; then
  case $2 in
    *version_info*) echo "${STUB_VERSION:-3.11.2}"; [ ! -f "$here/TOO-OLD" ]; exit ;;
    *find_spec*) for m in "${@:4}"; do [ -f "$prefix/installed-$m" ] || exit 1; done; exit 0 ;;
    *__version__*) echo "mmc-sweep: installed: stub"; exit 0 ;;
  esac
  exit 0
fi
echo "stub python ran: $*"
"""


def make_python(bindir: Path, *markers: str) -> Path:
    """A stub interpreter at bindir/python3 (and bindir/python), with marker files (EXTERNALLY-MANAGED, ...)."""
    bindir.mkdir(parents=True, exist_ok=True)
    py = bindir / "python3"
    py.write_text(STUB)
    py.chmod(0o755)
    (bindir / "python").unlink(missing_ok=True)
    (bindir / "python").symlink_to("python3")
    for marker in markers:
        (bindir / marker).touch()
    return py


class Checkout:
    """A copy of scripts/ and pyproject.toml in tmp_path/repo; the base python3 on PATH is a stub in tmp_path/base."""

    def __init__(self, tmp_path: Path, *base_markers: str):
        self.tmp = tmp_path
        self.root = tmp_path / "repo"
        (self.root / "scripts").mkdir(parents=True)
        for name in SCRIPTS:
            shutil.copy2(REPO / "scripts" / name, self.root / "scripts" / name)
        shutil.copy2(REPO / "pyproject.toml", self.root / "pyproject.toml")
        self.base = make_python(tmp_path / "base", *base_markers)
        self.log = tmp_path / "python-calls.log"
        self.log.touch()

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": f"{self.base.parent}:/usr/bin:/bin", "HOME": str(self.tmp), "LANG": "C.UTF-8",
               "STUB_LOG": str(self.log)}
        env.update(extra)
        return env

    def run(self, script: str = "scripts/install.sh", *args: str, dry: bool = False, check: bool = True,
            **env: str) -> subprocess.CompletedProcess:
        if dry:
            env["MMC_INSTALL_DRY_RUN"] = "1"
        proc = subprocess.run(["bash", script, *args], cwd=self.root, env=self.env(**env), capture_output=True,
                              text=True, timeout=60)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def pip_installs(self) -> list[str]:
        return [c for c in self.calls() if " -m pip install" in c]


def dry_run_fields(out: str) -> dict[str, str]:
    line = next(line for line in out.splitlines() if line.startswith("mmc-sweep (dry run):"))
    return dict(part.split("=", 1) for part in line.split(": ", 1)[1].split())


@pytest.fixture
def checkout(tmp_path):
    return Checkout(tmp_path)


def test_active_venv_is_used(checkout):
    venv = checkout.tmp / "myvenv"
    py = make_python(venv / "bin")
    fields = dry_run_fields(checkout.run(dry=True, VIRTUAL_ENV=str(venv)).stdout)
    assert fields == {"env": "venv", "dir": str(venv), "python": str(venv / "bin" / "python"), "base": "-",
                      "action": "install"}
    assert checkout.pip_installs() == [] and not (checkout.root / ".venv").exists()   # a dry run changes nothing

    out = checkout.run(VIRTUAL_ENV=str(venv)).stdout
    assert f"installing into the active virtual environment {venv}" in out
    installs = checkout.pip_installs()
    assert installs and all(c.startswith(str(venv / "bin" / "python") + " ") for c in installs)
    assert any("torch==2.13.0" in c for c in installs) and any("-e .[test]" in c for c in installs)
    assert not (checkout.root / ".venv").exists()
    assert py.exists()


def test_active_conda_env_is_used(checkout):
    conda = checkout.tmp / "miniconda" / "envs" / "research"
    make_python(conda / "bin")
    out = checkout.run(dry=True, CONDA_PREFIX=str(conda), CONDA_DEFAULT_ENV="research").stdout
    assert dry_run_fields(out)["env"] == "conda" and dry_run_fields(out)["python"] == str(conda / "bin" / "python")
    assert "the active conda env research" in out

    checkout.run(CONDA_PREFIX=str(conda), CONDA_DEFAULT_ENV="research")
    assert all(c.startswith(str(conda / "bin" / "python") + " ") for c in checkout.pip_installs())
    assert not (checkout.root / ".venv").exists()


def test_venv_wins_over_conda_and_a_stale_venv_is_ignored(checkout):
    venv, conda = checkout.tmp / "v", checkout.tmp / "conda"
    make_python(venv / "bin")
    make_python(conda / "bin")
    assert dry_run_fields(checkout.run(dry=True, VIRTUAL_ENV=str(venv), CONDA_PREFIX=str(conda)).stdout)["env"] == "venv"
    proc = checkout.run(dry=True, VIRTUAL_ENV=str(checkout.tmp / "gone"))
    assert dry_run_fields(proc.stdout)["env"] == "project-venv" and "stale" in proc.stderr


def test_no_env_creates_dot_venv_then_reuses_it(checkout):
    fields = dry_run_fields(checkout.run(dry=True).stdout)
    assert fields == {"env": "project-venv", "dir": str(checkout.root / ".venv"),
                      "python": str(checkout.root / ".venv" / "bin" / "python"), "base": str(checkout.base),
                      "action": "create-venv,install"}
    assert not (checkout.root / ".venv").exists()
    assert all(" -c " in c for c in checkout.calls())   # a dry run only asks the base python its version

    out = checkout.run().stdout
    venv_py = checkout.root / ".venv" / "bin" / "python"
    assert "installing into a new ./.venv" in out and str(checkout.base) in out
    assert (checkout.root / ".venv" / "installed-orchestrator").exists()
    assert f"{checkout.base} -m venv {checkout.root / '.venv'}" in checkout.calls()
    assert all(c.startswith(f"{venv_py} ") for c in checkout.pip_installs())
    n_calls = len(checkout.calls())

    # second run: reuses .venv, no venv creation, no pip at all
    out = checkout.run().stdout
    assert "already installed" in out and "./.venv" in out
    again = checkout.calls()[n_calls:]
    assert not any(" -m venv " in c or " -m pip " in c for c in again), again
    assert dry_run_fields(checkout.run(dry=True).stdout)["action"] == "none"

    # pyproject.toml changes (or TORCH_SPEC, or a package disappears): pip runs again, in the same .venv
    for change in ("pyproject", "torch_spec", "uninstalled"):
        n_calls = len(checkout.calls())
        extra = {}
        if change == "pyproject":
            with open(checkout.root / "pyproject.toml", "a") as f:
                f.write("\n# changed\n")
        elif change == "torch_spec":
            extra = {"TORCH_SPEC": "torch==2.4.1"}
        else:
            (checkout.root / ".venv" / "installed-mlflow").unlink()
        checkout.run(**extra)
        again = checkout.calls()[n_calls:]
        assert not any(" -m venv " in c for c in again)
        assert any(c.startswith(f"{venv_py} -m pip install -q -e .[test]") for c in again), (change, again)
        if change == "torch_spec":
            assert any(c.startswith(f"{venv_py} -m pip install -q torch==2.4.1") for c in again)


@pytest.mark.parametrize("unavailable, source", [
    ("", "--no-index --no-deps torch==2.13.0"),                          # a local wheelhouse: no network
    ("--no-index", "torch --index-url https://download.pytorch.org/whl/cpu"),   # PyTorch's CPU index
    ("--no-index download.pytorch.org", "torch==2.13.0"),               # last resort, pinned, with a warning
])
def test_torch_comes_from_the_cpu_sources_first(checkout, unavailable, source):
    proc = checkout.run(STUB_PIP_FAIL=unavailable)
    torch_calls = [c.split(" -m pip install -q ", 1)[1] for c in checkout.pip_installs() if " -e " not in c]
    assert torch_calls[-1].endswith(source), torch_calls
    assert len(torch_calls) == len(unavailable.split()) + 1
    assert ("CPU index" in proc.stderr) == (source == "torch==2.13.0")
    for call in torch_calls:   # never an unpinned torch from a default index (PyPI's Linux torch is the CUDA build)
        assert "==" in call or "download.pytorch.org/whl/cpu" in call, call


def test_externally_managed_python_is_never_installed_into(tmp_path):
    checkout = Checkout(tmp_path, "EXTERNALLY-MANAGED")
    checkout.run()   # would fail if anything ran `pip install` with the base (externally managed) python
    assert (checkout.root / ".venv" / "installed-torch").exists()
    assert not any(c.startswith(str(checkout.base)) for c in checkout.pip_installs())
    assert not any("--break-system-packages" in c or "--user" in c.split() for c in checkout.calls())
    for name in ("env.sh", "install.sh"):
        text = (REPO / "scripts" / name).read_text()
        assert "--break-system-packages" not in text.replace("no --break-system-packages", "")
        assert "sudo pip" not in text


def test_missing_venv_module_says_what_to_install_and_leaves_no_half_venv(tmp_path):
    checkout = Checkout(tmp_path, "NO-ENSUREPIP")
    proc = checkout.run(check=False)
    assert proc.returncode != 0 and "python3-venv" in proc.stderr
    assert not (checkout.root / ".venv").exists()
    assert checkout.pip_installs() == []


def test_too_old_python_is_refused(tmp_path):
    checkout = Checkout(tmp_path, "TOO-OLD")
    proc = checkout.run(check=False, STUB_VERSION="3.8.10")
    assert proc.returncode != 0 and "3.8.10" in proc.stderr and ">= 3.10" in proc.stderr
    assert not (checkout.root / ".venv").exists()


def test_scripts_python_runs_the_chosen_env(checkout):
    proc = checkout.run("scripts/python", "-V", check=False)
    assert proc.returncode != 0 and "bash scripts/install.sh" in proc.stderr
    checkout.run()
    out = checkout.run("scripts/python", "hello").stdout
    assert out.strip() == "stub python ran: hello"
    assert checkout.calls()[-1] == f"{checkout.root / '.venv' / 'bin' / 'python'} hello"
    venv = checkout.tmp / "active"
    make_python(venv / "bin")
    checkout.run("scripts/python", "hi", VIRTUAL_ENV=str(venv))
    assert checkout.calls()[-1] == f"{venv / 'bin' / 'python'} hi"


def test_run_default_installs_then_runs_the_sweep_with_the_env_python(checkout):
    out = checkout.run("scripts/run-default.sh", "--max-concurrent", "1").stdout
    venv_py = checkout.root / ".venv" / "bin" / "python"
    assert checkout.calls()[-1] == f"{venv_py} -m orchestrator run --max-concurrent 1"
    assert ". .venv/bin/activate" in out


def test_readme_shows_the_test_command_ci_runs():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    command = lines[-1].strip()
    assert lines[-2].startswith("# The test command") and command.startswith("scripts/python ")
    assert command in (REPO / "README.md").read_text()
