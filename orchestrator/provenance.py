"""Where the code that runs a sweep came from, and what it ran with: `source_revision()` (the git commit
of the checkout a sweep was run or submitted from, and whether it had uncommitted changes) and
`software_versions()` (Python and the libraries that compute and record the results).

The revision comes from, in order:
1. `MMC_SOURCE_REVISION` (`SOURCE_REVISION_ENV_VAR`), set where a sweep is *submitted*:
   `cluster/submit.sh` runs `python -m orchestrator.provenance` in the checkout and hands the job
   `MMC_SOURCE_REVISION=<commit>[+dirty.<diff sha256>]`, because the job's working directory is a copy
   without `.git` (`cluster/runtime_env.yaml` excludes it);
2. git, when the running package is itself a git checkout (`mmc-sweep run` from a clone);
3. unknown (None): an installed wheel, or a job submitted some other way.
"Dirty" means `git diff HEAD` is not empty (untracked files do not count); the diff's sha256 tells
two dirty states apart, and a run from a dirty checkout keeps the diff itself in the sweep directory,
`provenance/<label>.diff` (`SweepLayout.source_diff_file`; credentials in it redacted), so that its code can be
rebuilt: `git checkout <commit> && git apply <that file>`. A submitted job has no `.git` to read it from:
cluster/submit.sh writes it into the checkout it ships (`SUBMITTED_DIFF`, `python -m orchestrator.provenance
--diff-file`), and the job takes it where its sha256 is the one MMC_SOURCE_REVISION names. The `tasks` table,
the report and MLflow show `SourceRevision.label`: `1a2b3c4d5e6f` or `1a2b3c4d5e6f+dirty.0badc0de`.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator import knobs
from orchestrator.errors import SweepError

SOURCE_REVISION_ENV_VAR = knobs.SOURCE_REVISION.name   # the revision of the submitting checkout
GIT_TIMEOUT_S = 10
_REVISION = re.compile(r"^(?P<commit>[0-9a-f]{7,64})(?:\+dirty\.(?P<diff>[0-9a-f]{8,64}))?$")
SUBMITTED_DIFF = ".mmc-source.diff"   # a submitted checkout's `git diff HEAD`, beside its packages in the job
PACKAGES = ("mmc-sweep", "torch", "numpy", "ray", "mlflow", "pyarrow", "pandas", "safetensors", "matplotlib")


@dataclass(frozen=True)
class SourceRevision:
    commit: str                      # the full commit id (hex)
    dirty: bool = False              # `git diff HEAD` was not empty
    diff_sha256: str | None = None   # sha256 of that diff (hex), when dirty
    diff: bytes | None = field(default=None, compare=False, repr=False)   # the diff itself, where it could be read

    @property
    def label(self) -> str:
        """What tables and the report show: 12 hex digits of the commit, `+dirty.<8 hex of the diff>`."""
        return self.commit[:12] + (f"+dirty.{(self.diff_sha256 or '')[:8]}" if self.dirty else "")

    def to_env(self) -> str:
        """The value of MMC_SOURCE_REVISION that carries this revision (full commit and diff hash)."""
        return self.commit + (f"+dirty.{self.diff_sha256}" if self.dirty else "")

    @classmethod
    def parse(cls, text: str) -> SourceRevision:
        match = _REVISION.match(text.strip())
        if not match:
            raise SweepError(f"`{SOURCE_REVISION_ENV_VAR}`: {text!r} is not a git revision; give `<commit>` or "
                             f"`<commit>+dirty.<sha256 of git diff HEAD>` in hex (cluster/submit.sh sets it), or "
                             "unset it")
        return cls(match["commit"], match["diff"] is not None, match["diff"])


def source_revision(environ=None) -> SourceRevision | None:
    """The revision of the code that runs (see the module's docstring); None when unknown. A malformed
    MMC_SOURCE_REVISION is a KnobError (exit 2)."""
    given = knobs.given(knobs.SOURCE_REVISION, environ)
    if given:
        return with_submitted_diff(SourceRevision.parse(given), Path(__file__).resolve().parent.parent)
    return git_revision(Path(__file__).resolve().parent)


def with_submitted_diff(revision: SourceRevision, root: Path) -> SourceRevision:
    """A submitted dirty revision with its diff, from `SUBMITTED_DIFF` in `root` (the job's copy of the
    checkout) where that file's sha256 is the revision's; else as it is."""
    if not revision.dirty or not revision.diff_sha256:
        return revision
    try:
        data = (root / SUBMITTED_DIFF).read_bytes()
    except OSError:
        return revision
    return replace(revision, diff=data) if hashlib.sha256(data).hexdigest().startswith(revision.diff_sha256) \
        else revision


def git_revision(package_dir: Path) -> SourceRevision | None:
    """The revision of the git checkout `package_dir` is the top-level package of; None when it is not
    one (e.g. an installed package, even inside some other repository) or git is missing."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True, timeout=GIT_TIMEOUT_S,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode or Path(top.stdout.decode().strip()).resolve() != package_dir.parent.resolve():
            return None
        head = git("rev-parse", "HEAD")
        diff = git("diff", "--no-ext-diff", "--no-color", "--binary", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.decode().strip()
    if head.returncode or not _REVISION.match(commit) or diff.returncode:
        return None
    return SourceRevision(commit, bool(diff.stdout), hashlib.sha256(diff.stdout).hexdigest() if diff.stdout else None,
                          diff.stdout or None)


def revision_label(revision: SourceRevision | None = None) -> str | None:
    """`source_revision().label`, or None when unknown."""
    revision = source_revision() if revision is None else revision
    return revision.label if revision is not None else None


def keep_source_diff(layout, revision: SourceRevision | None) -> None:
    """A run from a dirty checkout keeps its `git diff HEAD` (credentials redacted) in `layout`'s sweep
    directory (`SweepLayout.source_diff_file`), once per revision."""
    from orchestrator.uris import redact

    if revision is not None and revision.diff and not layout.storage.exists(layout.source_diff_file(revision.label)):
        layout.storage.write_text(layout.source_diff_file(revision.label), redact(revision.diff.decode("utf-8", "replace")))


def software_versions() -> dict[str, str]:
    """Python and the installed versions of the libraries that compute, record and render results."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


def torch_version() -> str:
    """The installed torch's version, from its distribution (`software_versions`: the driver, which runs no
    task, never imports torch); torch's own `__version__` where torch is not an installed distribution."""
    version = software_versions().get("torch")
    if version is None:
        import torch

        version = torch.__version__
    return version


def format_versions(versions: dict[str, str]) -> str:
    """`python 3.11.7, torch 2.13.0, ...` (the `versions` column of the `tasks` table)."""
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def main(argv: list[str] | None = None) -> int:
    """`python -m orchestrator.provenance [--diff-file PATH]`: print the MMC_SOURCE_REVISION value of the
    checkout this package is in (an empty line outside a git checkout); with `--diff-file`, write its `git diff
    HEAD` there when it is dirty (else remove that file). cluster/submit.sh calls it."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and (len(argv) != 2 or argv[0] != "--diff-file"):
        print("usage: python -m orchestrator.provenance [--diff-file PATH]", file=sys.stderr)
        return 2
    revision = git_revision(Path(__file__).resolve().parent)
    if argv:
        target = Path(argv[1])
        if revision is not None and revision.diff:
            target.write_bytes(revision.diff)
        else:
            target.unlink(missing_ok=True)
    print(revision.to_env() if revision is not None else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
