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


def _column_dictionary() -> dict[str, dict[str, str]]:
    """docs/ANALYSIS.md's column dictionary: column -> {tables, type, ...} (the cells of its row)."""
    text = (REPO / "docs" / "ANALYSIS.md").read_text()
    block = text[text.index("#### Column dictionary"):]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    header = ["column", "tables", "type", "meaning", "units", "example"]
    out = {}
    for line in rows:
        cells = [c.strip() for c in line.strip()[1:-1].split("|")]
        assert len(cells) == len(header), f"docs/ANALYSIS.md: a dictionary row without {len(header)} cells: {line}"
        row = dict(zip(header, cells))
        assert row["meaning"], f"docs/ANALYSIS.md: {row['column']} has no meaning"
        out[row["column"].strip("`")] = row
    return out


def test_the_column_dictionary_matches_the_schemas():
    """Every column of every result table (orchestrator/results/schemas.py) is in docs/ANALYSIS.md's
    column dictionary with the tables that hold it and its type, and the dictionary names no column
    the schemas lack; a column of a closed set of values names each; the `<section>.<field>` settings
    columns are described once, as a pattern."""
    import pyarrow as pa

    from orchestrator import vocab
    from orchestrator.results.schemas import ALLOWED_VALUES, SCHEMAS, SETTINGS_COLUMNS
    from tasks.data import EVAL_SETS
    from orchestrator.spec.schema import SETTINGS_CLASSES

    type_names = {pa.string(): "string", pa.float64(): "float64", pa.int64(): "int64", pa.bool_(): "bool",
                  pa.list_(pa.string()): "list<string>", pa.timestamp("us", tz="UTC"): "timestamp[us, UTC]"}
    documented = _column_dictionary()
    pattern = documented.pop("<section>.<field>", None)
    assert pattern is not None and pattern["tables"] == "all"
    sections = {c.split(".", 1)[0] for c in SETTINGS_COLUMNS}
    assert set(SETTINGS_CLASSES) <= sections and all(f"`{section}`" in pattern["meaning"] for section in sections)
    problems = []
    held: dict[str, dict[str, str]] = {}
    for table, schema in SCHEMAS.items():
        for field in schema:
            if field.name not in SETTINGS_COLUMNS:
                held.setdefault(field.name, {})[table] = type_names.get(field.type, str(field.type))
    for column, types in held.items():
        row = documented.get(column)
        if row is None:
            problems.append(f"{column} ({', '.join(types)}) is not documented")
            continue
        tables = set(vocab.TABLES) if row["tables"] == "all" else {t.strip() for t in row["tables"].split(",")}
        if tables != set(types):
            problems.append(f"{column}: documented in {sorted(tables)}, held by {sorted(types)}")
        if {row["type"]} != set(types.values()):
            problems.append(f"{column}: documented as {row['type']}, the schemas say {sorted(set(types.values()))}")
    problems += [f"{column} is documented but no table has it" for column in documented if column not in held]
    closed = {column: values for (_, column), values in ALLOWED_VALUES.items()} | {"eval_set": EVAL_SETS}
    problems += [f"{column}: the meaning does not name `{value}`" for column, values in closed.items()
                 for value in values if f"`{value}`" not in documented.get(column, {}).get("meaning", "")]
    assert not problems, "docs/ANALYSIS.md's column dictionary and the schemas disagree:\n" + "\n".join(problems)
