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


def _commit_all(root: Path) -> None:
    """`root` made a git repository whose one commit holds every file in it."""
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", "one")):
        _git(root, *args)


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
    _commit_all(root)
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
    for package in ("mmc-sweep", "numpy", "pandas", "pyarrow"):    # mmc-sweep: a wheel install has no git revision
        assert versions[package] == metadata.version(package)
    assert set(versions) <= {"python", *provenance.PACKAGES}
    assert provenance.torch_version() == metadata.version("torch")
    assert provenance.format_versions({"python": "3.11.7", "torch": "2.13.0"}) == "python 3.11.7, torch 2.13.0"


def test_without_a_submitted_revision_the_revision_is_that_of_the_checkout_the_package_runs_from(monkeypatch):
    """Source 2 of the module docstring: git, asked about the running package's own directory (the one
    holding orchestrator/__init__.py, whose parent must be the checkout's top level)."""
    import orchestrator

    asked = []
    monkeypatch.setattr(provenance, "git_revision", lambda package_dir: asked.append(package_dir) or None)
    assert provenance.source_revision({}) is None
    assert asked == [Path(orchestrator.__file__).resolve().parent]


def test_a_revision_label_is_that_of_the_revision_given_else_of_the_source(monkeypatch):
    """`revision_label(r)` is `r.label`; only without one does it ask `source_revision()`; unknown is None."""
    given = provenance.SourceRevision(COMMIT, True, "cd" * 32)
    monkeypatch.setattr(provenance, "source_revision", lambda: provenance.SourceRevision("f" * 40))
    assert provenance.revision_label(given) == f"{COMMIT[:12]}+dirty.cdcdcdcd"
    assert provenance.revision_label() == "f" * 12
    monkeypatch.setattr(provenance, "source_revision", lambda: None)
    assert provenance.revision_label() is None


def test_a_sha256_repository_s_64_digit_commit_is_a_revision():
    """Git's SHA-256 object format names commits by 64 hex digits; the variable and the parser take them."""
    commit = "0123456789abcdef" * 4
    revision = provenance.source_revision({provenance.SOURCE_REVISION_ENV_VAR: f"{commit}+dirty.{'ab' * 32}"})
    assert revision.commit == commit and revision.label == f"{commit[:12]}+dirty.abababab"


def test_a_package_that_is_not_installed_leaves_out_only_itself(monkeypatch):
    """software_versions lists every installed package of PACKAGES: one missing (the driver of a cluster
    may lack torch) is left out, and the packages after it are still listed."""
    from importlib import metadata

    real = metadata.version

    def version(name: str) -> str:
        if name == provenance.PACKAGES[0]:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    versions = provenance.software_versions()
    assert provenance.PACKAGES[0] not in versions
    assert versions["numpy"] == real("numpy") and versions["pandas"] == real("pandas")


def test_two_different_changes_to_a_binary_file_are_two_dirty_states(tmp_path):
    """"the diff's sha256 tells two dirty states apart": that holds for binary files only when the diff
    carries their bytes (`git diff --binary`), not just "Binary files differ"."""
    root = tmp_path / "checkout"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "weights.bin").write_bytes(b"\x00\x01\x02" * 10)
    _commit_all(root)
    (root / "pkg" / "weights.bin").write_bytes(b"\x00\xff\x02" * 10)
    first = provenance.git_revision(root / "pkg")
    (root / "pkg" / "weights.bin").write_bytes(b"\x00\xfe\x02" * 10)
    second = provenance.git_revision(root / "pkg")
    assert first.dirty and second.dirty and first.diff_sha256 != second.diff_sha256
    # "dirty" is `git diff HEAD`: a change already staged (`git add`) is still not the commit
    _git(root, "add", "-A")
    assert provenance.git_revision(root / "pkg") == second


def test_the_libraries_that_compute_record_and_render_results_are_recorded():
    """The module docstring: Python and "the libraries that compute and record the results"; the report's
    figures are drawn by matplotlib, so its version is recorded with the rest."""
    from importlib import metadata

    versions = provenance.software_versions()
    for package in ("torch", "numpy", "pyarrow", "pandas", "matplotlib"):
        assert versions[package] == metadata.version(package), package


def test_a_run_from_a_dirty_checkout_keeps_the_diff_that_rebuilds_its_code(tmp_path):
    """The label holds 8 hex digits of the diff's hash, which cannot rebuild anything: the run keeps the diff
    itself in the sweep directory (once; credentials redacted), and it applies to the commit it names."""
    from orchestrator.storage.layout import Storage, SweepLayout
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "orchestrator", root / "orchestrator", ignore=shutil.ignore_patterns("__pycache__"))
    _commit_all(root)
    vocab_file = root / "orchestrator" / "vocab.py"
    vocab_file.write_text(vocab_file.read_text() + "# s3://AKIAFAKE:SUPERSECRETfake7f3a@bucket/x\nCHANGED = 1\n")
    dirty = provenance.git_revision(root / "orchestrator")
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "sw")
    provenance.keep_source_diff(layout, dirty)
    kept = Path(layout.source_diff_file(dirty.label))
    assert kept.name == f"{dirty.label}.diff" and "CHANGED = 1" in kept.read_text()
    assert "SUPERSECRET" not in kept.read_text() and "s3://***@bucket/x" in kept.read_text()
    _git(root, "checkout", "--", ".")                                      # back to the commit the label names
    vocab_file.write_text(vocab_file.read_text())
    applied = subprocess.run(["git", "-C", str(root), "apply", "--check", str(kept)], capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    provenance.keep_source_diff(layout, provenance.git_revision(tmp_path / "nowhere") or provenance.SourceRevision("ab" * 20))
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]      # a clean or unknown revision: nothing


def test_a_submitted_dirty_revision_takes_the_diff_shipped_with_its_checkout(tmp_path):
    """cluster/submit.sh writes the checkout's diff beside its packages (`--diff-file`); the job, which has no
    `.git`, takes it where its sha256 is the one MMC_SOURCE_REVISION names, and so keeps it in the sweep
    directory like a run from the checkout. A clean checkout writes no file (and removes a stale one)."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "orchestrator", root / "orchestrator", ignore=shutil.ignore_patterns("__pycache__"))
    _commit_all(root)
    shipped = root / provenance.SUBMITTED_DIFF

    def submit() -> str:   # what cluster/submit.sh runs in the checkout
        return subprocess.run([sys.executable, "-m", "orchestrator.provenance", "--diff-file", provenance.SUBMITTED_DIFF],
                              cwd=root, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
                              check=True).stdout.strip()

    shipped.write_text("stale")
    assert provenance.SourceRevision.parse(submit()) == provenance.git_revision(root / "orchestrator")
    assert not shipped.exists()
    (root / "orchestrator" / "vocab.py").write_text("CHANGED = 1\n")
    env = submit()
    revision = provenance.with_submitted_diff(provenance.SourceRevision.parse(env), root)
    assert revision.dirty and revision.diff == provenance.git_revision(root / "orchestrator").diff
    assert b"+CHANGED = 1" in revision.diff
    shipped.write_bytes(revision.diff + b"+tampered\n")                   # not the diff the revision names
    assert provenance.with_submitted_diff(provenance.SourceRevision.parse(env), root).diff is None
    shipped.unlink()
    assert provenance.with_submitted_diff(provenance.SourceRevision.parse(env), root).diff is None
    bad = subprocess.run([sys.executable, "-m", "orchestrator.provenance", "--diff"], cwd=root, capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "usage: python -m orchestrator.provenance [--diff-file PATH]" in bad.stderr


def test_a_short_commit_is_a_revision():
    """`MMC_SOURCE_REVISION` takes a commit of 7 hex digits or more (git's short form)."""
    assert provenance.source_revision({provenance.SOURCE_REVISION_ENV_VAR: "1a2b3c4"}).commit == "1a2b3c4"


def test_a_revisions_label_is_a_revision_that_parses_back_to_it():
    """A diff hash of 8 hex digits or more: a revision's label (`1a2b3c4d5e6f+dirty.0badc0de`, what the tables
    show) is itself a revision that parses back to it."""
    label = provenance.SourceRevision(COMMIT, True, "0badc0de" * 8).label
    assert provenance.SourceRevision.parse(label).label == label


@pytest.mark.parametrize("package", ["ray", "mlflow", "safetensors"])
def test_the_libraries_that_run_and_record_a_sweep_are_recorded(package):
    """PACKAGES: Ray runs the tasks, MLflow records them, safetensors holds the checkpoints."""
    from importlib import metadata

    assert provenance.software_versions()[package] == metadata.version(package)


def test_a_checkout_whose_diff_cannot_be_read_has_no_revision(tmp_path, monkeypatch):
    """`git diff HEAD` failing (a damaged index, ...): the revision is unknown (None), never a clean one."""
    real = subprocess.run

    def run(args, **kwargs):
        if "diff" in args:
            return subprocess.CompletedProcess(args, 128, b"", b"fatal: unable to read index")
        return real(args, **kwargs)

    root = tmp_path / "checkout"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "m.py").write_text("x = 1\n")
    _commit_all(root)
    monkeypatch.setattr(provenance.subprocess, "run", run)
    assert provenance.git_revision(root / "pkg") is None


def test_the_dirty_hash_is_the_sha256_of_git_diff_head(tmp_path):
    """The module docstring: `+dirty.<diff sha256>`, the sha256 of `git diff HEAD` (with `--binary`), which a user
    can compute from the checkout to check a label."""
    import hashlib

    root = tmp_path / "checkout"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "m.py").write_text("x = 1\n")
    _commit_all(root)
    (root / "pkg" / "m.py").write_text("x = 2\n")
    diff = subprocess.run(["git", "-C", str(root), "diff", "--no-ext-diff", "--no-color", "--binary", "HEAD"],
                          check=True, capture_output=True, timeout=60).stdout
    assert provenance.git_revision(root / "pkg").diff_sha256 == hashlib.sha256(diff).hexdigest()


def test_torchs_version_is_read_without_importing_torch(monkeypatch):
    """`torch_version`: from torch's distribution (the driver, which runs no task, never imports torch)."""
    import sys
    from importlib import metadata

    monkeypatch.setitem(sys.modules, "torch", None)          # `import torch` raises ImportError
    assert provenance.torch_version() == metadata.version("torch")


def test_a_submitted_diff_is_taken_where_the_revision_names_its_hash_by_a_prefix(tmp_path):
    """`MMC_SOURCE_REVISION` may name the diff by the first 8 or more hex digits of its sha256 (a label, as the
    tables show it): the shipped diff whose sha256 begins with them is the revision's; one whose sha256 only
    ends with them is not."""
    import hashlib

    diff = b"diff --git a/x b/x\n+changed\n"
    (tmp_path / provenance.SUBMITTED_DIFF).write_bytes(diff)
    digest = hashlib.sha256(diff).hexdigest()
    for given in (digest, digest[:8], digest[:20]):
        revision = provenance.with_submitted_diff(provenance.SourceRevision.parse(f"{COMMIT}+dirty.{given}"), tmp_path)
        assert revision.diff == diff, given
    tail = provenance.SourceRevision.parse(f"{COMMIT}+dirty.{digest[-8:]}")
    if not digest.startswith(digest[-8:]):
        assert provenance.with_submitted_diff(tail, tmp_path).diff is None


def test_a_submitted_revision_takes_the_diff_shipped_at_the_root_of_the_jobs_checkout(tmp_path, monkeypatch):
    """In a submitted job, `source_revision()` reads `SUBMITTED_DIFF` from the root of the job's copy of the
    checkout (beside its packages, where cluster/submit.sh writes it), not from inside the package."""
    import hashlib

    (tmp_path / "orchestrator").mkdir()
    monkeypatch.setattr(provenance, "__file__", str(tmp_path / "orchestrator" / "provenance.py"))
    diff = b"diff --git a/x b/x\n+changed\n"
    (tmp_path / provenance.SUBMITTED_DIFF).write_bytes(diff)
    given = f"{COMMIT}+dirty.{hashlib.sha256(diff).hexdigest()}"
    revision = provenance.source_revision({provenance.SOURCE_REVISION_ENV_VAR: given})
    assert revision.dirty and revision.diff == diff
