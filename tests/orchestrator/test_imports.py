"""The floor plan holds: `orchestrator/` is packages by layer, and a layer imports only its own layer
and the layers below it; no module reaches into another module's private names; no import cycles.

    words    vocab, errors, messages, uris, knobs,     (shared words: import nothing of orchestrator's
             provenance, machine                        but each other)
    spec     orchestrator.spec.*                        a YAML spec -> SweepSpec
    graph    orchestrator.graph.*                       SweepSpec -> Graph of tasks
    storage  orchestrator.storage.*                     paths, files, the lock
    results  orchestrator.results.*                     tables, outputs, the plan file
    report   orchestrator.report.*                      statistics, claims, figures, report.html
    run      orchestrator.run.*                         checks, Ray, MLflow, the story of a run
    faces    cli, api, status, __init__, __main__      what users call

Every import counts, module-level or inside a function (a lazy import still ties the two modules
together). The graph is read from the source (AST), so the test needs no imports itself.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"
LAYERS = ("words", "spec", "graph", "storage", "results", "report", "run", "faces")
WORDS = ("vocab", "errors", "messages", "uris", "knobs", "provenance", "machine")
FACES = ("cli", "api", "status", "__main__", "__init__")


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `package` (packages by their __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "faces"                                   # orchestrator/__init__.py
    if len(parts) == 2 and parts[1] in WORDS:
        return "words"
    if len(parts) == 2 and parts[1] in FACES:
        return "faces"
    if parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"{module} is in no layer: put it in a layer package or name it in WORDS / FACES "
                         "(tests/orchestrator/test_imports.py)")


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest known module that `name` (a dotted import target) is or lies in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def module_imports(module: str, path: Path, modules: set[str]) -> tuple[set[str], list[str]]:
    """(the orchestrator modules `module` imports, its reaches into other modules' private names)."""
    found, private = set(), []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    bound: dict[str, str] = {}          # local name -> the orchestrator module it stands for
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[:len(up) - node.level + 1] + ([base] if base else []))
            if not (base == "orchestrator" or base.startswith("orchestrator.")):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in modules:                    # a submodule: from orchestrator.run import work
                    found.add(target)
                    bound[alias.asname or alias.name] = target
                else:
                    source = _resolve(base, modules)
                    if source:
                        found.add(source)
                        if alias.name.startswith("_") and not alias.name.startswith("__") and source != module:
                            private.append(f"{module} imports {alias.name} from {source}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("orchestrator."):
                    target = _resolve(alias.name, modules)
                    if target:
                        found.add(target)
                        if alias.asname:
                            bound[alias.asname] = target
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                and node.attr.startswith("_") and not node.attr.startswith("__") and bound[node.value.id] != module:
            private.append(f"{module} reads {bound[node.value.id]}.{node.attr}")
    return found - {module}, private


def import_graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    names = module_names(package)
    graph, private = {}, []
    for module, path in names.items():
        graph[module], reaches = module_imports(module, path, set(names))
        private += reaches
    return graph, private


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    out = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            # a package's __init__ is its own layer's front door; importing a package means its __init__
            if rank[layer_of(target)] > rank[layer_of(module)]:
                out.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    return out


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


def test_every_module_is_in_a_layer():
    graph, _ = import_graph()
    assert "orchestrator.vocab" in graph and "orchestrator.run.work" in graph, sorted(graph)
    assert {layer_of(m) for m in graph} == set(LAYERS)


def test_no_layer_imports_a_higher_one():
    graph, _ = import_graph()
    assert not upward_imports(graph), "upward imports:\n  " + "\n  ".join(upward_imports(graph))


def test_no_module_reaches_into_another_modules_private_names():
    _, private = import_graph()
    assert not private, "private names used across modules (make them public or move the code):\n  " + \
        "\n  ".join(private)


def test_no_import_cycles():
    graph, _ = import_graph()
    loops = [" <-> ".join(c) for c in cycles(graph)]
    assert not loops, "import cycles in orchestrator/: " + "; ".join(loops)


def test_the_vocabulary_imports_no_other_orchestrator_module():
    graph, _ = import_graph()
    assert graph["orchestrator.vocab"] == set()


@pytest.mark.parametrize("edges, loop", [
    ({"work": {"distributed"}, "distributed": {"work"}}, True),                       # directly
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, True),                          # through a loop
    ({"sweep": {"schedule", "work"}, "schedule": {"work"}, "work": {"vocab"}, "vocab": set()}, False),
])
def test_the_cycle_finder_finds_direct_and_indirect_loops(edges, loop):
    assert bool(cycles(edges)) == loop


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "orchestrator"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_an_upward_import_is_found_also_lazy_and_relative(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "", "vocab.py": "", "spec/__init__.py": "", "run/__init__.py": "",
        "spec/load.py": "def f():\n    from orchestrator.run import sweep\n",    # lazy, upward
        "run/sweep.py": "from ..spec import load\nfrom . import work\n",           # relative, downward
        "run/work.py": "import orchestrator.vocab\n",
        "results/__init__.py": "", "results/tables.py": "from .. import vocab\n"})
    graph, _ = import_graph(package)
    assert graph["orchestrator.spec.load"] == {"orchestrator.run.sweep"}
    assert graph["orchestrator.run.sweep"] == {"orchestrator.spec.load", "orchestrator.run.work"}
    assert graph["orchestrator.results.tables"] == {"orchestrator.vocab"}
    assert upward_imports(graph) == ["orchestrator.spec.load (spec) imports orchestrator.run.sweep (run)"]
    assert cycles(graph) == [["orchestrator.run.sweep", "orchestrator.spec.load"]]


def test_private_reaches_are_found(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "", "vocab.py": "_X = 1\n", "results/__init__.py": "",
        "results/manifest.py": "def _verified(): pass\n",
        "results/compact.py": "from orchestrator.results.manifest import _verified\n"
                              "from orchestrator.results import manifest as m\nm._verified()\n"
                              "from orchestrator import vocab\nvocab.__name__\n"})
    _, private = import_graph(package)
    assert private == ["orchestrator.results.compact imports _verified from orchestrator.results.manifest",
                       "orchestrator.results.compact reads orchestrator.results.manifest._verified"]
