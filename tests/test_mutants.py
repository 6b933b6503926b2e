"""The mutant registry (scripts/mutants.py) stays runnable as the code moves on: every mutant's line is
still in its file and the mutant changes it, every test named to catch it exists, ids are unique, and
docs/MUTANTS.md has a row for each. The mutants themselves run outside the suite (`python
scripts/mutants.py`, about a minute per ten): this keeps a stale one from waiting for that run."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _registry() -> list:
    spec = importlib.util.spec_from_file_location("mmc_sweep_mutants", REPO / "scripts" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module        # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.MUTANTS


MUTANTS = _registry()


def test_mutant_ids_are_unique_and_numbered():
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"M\d{2,}", i) for i in ids)


def test_every_mutants_line_is_still_in_its_file_and_the_mutant_changes_it():
    stale = [f"{m.id} ({m.path})" for m in MUTANTS
             if (REPO / m.path).read_text().count(m.find) <= m.occurrence or m.find == m.replace]
    assert not stale, f"mutants whose line is no longer in their file (update them in scripts/mutants.py): {stale}"


def test_every_mutants_line_occurs_as_often_as_when_it_was_written():
    """A line that comes to occur once more earlier in its file turns the mutant onto another line, which the
    mutant's tests need not catch (M495 and M496 once mutated the power line, not the check they were for):
    `find` occurs `copies` times (default `occurrence` + 1)."""
    moved = [f"{m.id} ({m.path}: {n} times, not {m.copies or m.occurrence + 1})" for m in MUTANTS
             if (n := (REPO / m.path).read_text().count(m.find)) != (m.copies or m.occurrence + 1)]
    assert not moved, f"mutants whose line now occurs another number of times (make `find` unique again, or set " \
                      f"`occurrence` and `copies` in scripts/mutants.py): {moved}"


def test_every_test_named_to_catch_a_mutant_exists():
    missing = []
    for m in MUTANTS:
        for node in m.tests:
            path, _, name = node.partition("::")
            function = name.split("[")[0].split("::")[-1]
            file = REPO / path
            if not file.is_file() or name and not re.search(rf"^\s*(async )?def {re.escape(function)}\(",
                                                             file.read_text(), re.M):
                missing.append(f"{m.id}: {node}")
    assert not missing, missing


def test_docs_mutants_md_has_a_row_for_every_mutant():
    rows = set(re.findall(r"^\| (M\d+) \|", (REPO / "docs" / "MUTANTS.md").read_text(), re.M))
    assert not [m.id for m in MUTANTS if m.id not in rows], "run `python scripts/mutants.py --only ... --write`"


def test_a_bug_text_with_a_pipe_stays_one_cell_of_its_row():
    """`status DIR | head` in a mutant's bug text: escaped in the row, so the row keeps its columns and the
    summary counts its verdict, not a piece of the text."""
    module = sys.modules["mmc_sweep_mutants"]
    line = f"| M1 | {module._cell('`status DIR | head` fails')} | `x.py` | **killed** | `t.py::t` | 1 | r |"
    assert module._cells(line)[1:5] == ["M1", "`status DIR \\| head` fails", "`x.py`", "**killed**"]
    rows = [line for line in (REPO / "docs" / "MUTANTS.md").read_text().splitlines() if line.startswith("| M")]
    assert all(re.fullmatch(r"\*\*[a-z][a-z ()0-9-]*\*\*", module._cells(line)[4]) for line in rows)   # a verdict
