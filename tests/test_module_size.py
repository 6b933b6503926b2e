"""A module of `orchestrator/` or `tasks/` over ~400 lines says at its top why it is one module."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400
REASON = "Why one module:"
MODULES = sorted(p for package in ("orchestrator", "tasks") for p in (REPO / package).rglob("*.py"))


def test_there_are_modules_to_check():
    assert len(MODULES) > 50


@pytest.mark.parametrize("path", [p for p in MODULES if len(p.read_text().splitlines()) > MAX_LINES],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_a_long_module_says_why_it_is_one(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert REASON in doc, (f"{path.relative_to(REPO)} has {len(path.read_text().splitlines())} lines (over "
                           f"{MAX_LINES}); split it, or say at the top of its docstring why it is one module "
                           f"('{REASON} ...')")
