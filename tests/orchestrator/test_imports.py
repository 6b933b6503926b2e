"""No import cycles among `orchestrator/` modules: no two modules import each other, directly or
through a loop. Every import counts, module-level or inside a function (a lazy import still ties the
two modules together). The graph is read from the source (AST), so the test needs no imports itself."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """The `orchestrator` modules that the file at `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "orchestrator":
                found |= {alias.name for alias in node.names if alias.name in modules}
            elif node.module.startswith("orchestrator."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:      # from . import x / from .x import y
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("orchestrator.")}
    return found & modules - {path.stem}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = {p.stem for p in package.glob("*.py")}
    return {p.stem: module_imports(p, modules) for p in sorted(package.glob("*.py"))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one loop."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def a_loop(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One import loop inside `component`, e.g. ['work', 'distributed', 'work'] (for the message)."""
    start, members = component[0], set(component)
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & members)
        back = [n for n in nxt if n == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [n for n in nxt if n not in seen] or nxt
        path.append(fresh[0])
        if fresh[0] in seen:
            return path
        seen.add(fresh[0])


def test_no_two_orchestrator_modules_import_each_other():
    graph = import_graph()
    assert "vocab" in graph and "work" in graph, sorted(graph)
    loops = [" -> ".join(a_loop(graph, c)) for c in cycles(graph)]
    assert not loops, "import cycles in orchestrator/: " + "; ".join(loops)


def test_the_vocabulary_imports_no_other_orchestrator_module():
    assert import_graph()["vocab"] == set()


@pytest.mark.parametrize("edges, loop", [
    ({"work": {"distributed"}, "distributed": {"work"}}, True),                       # directly
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, True),                          # through a loop
    ({"sweep": {"schedule", "work"}, "schedule": {"work"}, "work": {"vocab"}, "vocab": set()}, False),
])
def test_the_cycle_finder_finds_direct_and_indirect_loops(edges, loop):
    assert bool(cycles(edges)) == loop


def test_lazy_and_relative_imports_count(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from orchestrator import b\n")
    (tmp_path / "b.py").write_text("from .a import f\n")
    (tmp_path / "c.py").write_text("import orchestrator.a\nfrom orchestrator.b import x\n")
    graph = import_graph(tmp_path)
    assert graph == {"a": {"b"}, "b": {"a"}, "c": {"a", "b"}}
    assert cycles(graph) == [["a", "b"]]
