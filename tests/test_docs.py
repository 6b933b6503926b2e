"""The docs point at things that exist: every test a doc names (`tests/….py::test_name`, or a
`::test_name` continuing the last file named), every file path in backticks, every shipped sweep."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "BENCHMARKS.md", REPO / "sweeps" / "README.md"]
_REF = re.compile(r"`((?:tests/)?[\w/]*test_\w+\.py)?::(test_\w+)(?:\[[^\]]*\])?`")
_PATH = re.compile(r"`((?:orchestrator|tasks|tests|bench|scripts|sweeps|examples|cluster|docs)/[\w./-]+\.(?:py|yaml|md|sh))`")


def _test_names(path: Path) -> set[str]:
    return set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))


def _resolve(name: str, last: Path | None) -> Path | None:
    if name.startswith("tests/"):
        return REPO / name
    found = list((REPO / "tests").rglob(Path(name).name))
    return found[0] if len(found) == 1 else last


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_test_a_doc_names_exists(doc):
    missing, last = [], None
    for line in doc.read_text().splitlines():
        for file, test in _REF.findall(line):
            path = _resolve(file, last) if file else last
            if path is None or not path.is_file():
                missing.append(f"{file}::{test} (no such file)")
                continue
            last = path
            if test not in _test_names(path):
                missing.append(f"{path.relative_to(REPO)}::{test}")
    assert not missing, f"{doc.name} names tests that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_file_a_doc_names_exists(doc):
    missing = [p for p in _PATH.findall(doc.read_text()) if not (REPO / p).exists() and "<" not in p]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


def test_the_map_names_every_module():
    """docs/MAP.md names every module of `orchestrator/` (as its path inside the package, e.g.
    `run/work.py`) and of `tasks/`, so the map cannot fall behind the code."""
    text = (REPO / "docs" / "MAP.md").read_text()
    named = set(re.findall(r"`([\w/]+\.py)`", text))
    missing = []
    for package in ("orchestrator", "tasks"):
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO / package).as_posix()
            if path.name == "__init__.py" or relative in named:
                continue
            missing.append(f"{package}/{relative}")
    assert not missing, f"docs/MAP.md does not name: {missing}"
