"""The source revision a sweep records (`orchestrator.provenance`): the submitting checkout's, carried by
MMC_SOURCE_REVISION, else this package's own git checkout, else unknown; never the revision of some other
repository that merely contains the installed package. (The cluster path end to end:
tests/orchestrator/run/test_job_submit.py.)"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import cli, provenance
from orchestrator.errors import MmcError
from tests.conftest import REPO

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                          check=True, capture_output=True, text=True, timeout=60).stdout


def test_the_submitted_revision_wins_and_a_malformed_one_is_refused(monkeypatch):
    clean = provenance.source_revision({provenance.SOURCE_REVISION_ENV_VAR: COMMIT})
    assert (clean.commit, clean.dirty, clean.label) == (COMMIT, False, COMMIT[:12])
    dirty = provenance.source_revision({provenance.SOURCE_REVISION_ENV_VAR: f"{COMMIT}+dirty.{'ab' * 32}"})
    assert dirty.dirty and dirty.label == f"{COMMIT[:12]}+dirty.abababab"
    assert provenance.SourceRevision.parse(dirty.to_env()) == dirty
    with pytest.raises(MmcError, match="MMC_SOURCE_REVISION.*not a git revision"):
        provenance.source_revision({provenance.SOURCE_REVISION_ENV_VAR: "v1.0; rm -rf /"})


def test_a_malformed_revision_stops_a_run_before_anything_is_written(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(provenance.SOURCE_REVISION_ENV_VAR, "main")
    assert cli.main(["run", str(REPO / "sweeps" / "smoke.yaml"), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `MMC_SOURCE_REVISION`='main' is not a git revision") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_checkout_gives_its_commit_and_a_hash_of_its_diff(tmp_path):
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "orchestrator", root / "orchestrator", ignore=shutil.ignore_patterns("__pycache__"))
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    head = _git(root, "rev-parse", "HEAD").strip()
    assert provenance.git_revision(root / "orchestrator") == provenance.SourceRevision(head)
    (root / "orchestrator" / "vocab.py").write_text("# changed\n")
    dirty = provenance.git_revision(root / "orchestrator")
    assert dirty.commit == head and dirty.dirty and dirty.label.startswith(head[:12] + "+dirty.")
    (root / "orchestrator" / "vocab.py").write_text("# changed otherwise\n")
    assert provenance.git_revision(root / "orchestrator").diff_sha256 != dirty.diff_sha256
    out = subprocess.run([sys.executable, "-m", "orchestrator.provenance"], cwd=root, capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"}).stdout.strip()   # what cluster/submit.sh runs
    assert provenance.SourceRevision.parse(out) == provenance.git_revision(root / "orchestrator")


def test_an_installed_package_inside_another_repository_has_no_revision(tmp_path):
    """A wheel installed into `.venv/` of some clone: that clone's commit is not the code's."""
    repo = tmp_path / "clone"
    site = repo / ".venv" / "lib" / "site-packages"
    shutil.copytree(REPO / "orchestrator", site / "orchestrator", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "README").write_text("x\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "README")
    _git(repo, "commit", "-q", "-m", "one")
    assert provenance.git_revision(site / "orchestrator") is None
    assert provenance.git_revision(tmp_path) is None                         # not a checkout at all


def test_software_versions_are_the_installed_distributions():
    """`software_versions`: Python's version and each installed package's own distribution version, as the
    `versions` column writes them (`name version, ...`); torch's is its distribution's."""
    import platform
    from importlib import metadata

    versions = provenance.software_versions()
    assert versions["python"] == platform.python_version()
    for package in ("numpy", "pandas", "pyarrow"):
        assert versions[package] == metadata.version(package)
    assert set(versions) <= {"python", *provenance.PACKAGES}
    assert provenance.torch_version() == metadata.version("torch")
    assert provenance.format_versions({"python": "3.11.7", "torch": "2.13.0"}) == "python 3.11.7, torch 2.13.0"
