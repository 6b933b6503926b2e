"""The vocabulary is defined once, in `orchestrator/vocab.py`.

A task kind, path kind, pair type, pair design or status word spelled as a string literal anywhere
else in `orchestrator/` is a second definition that can drift (adding a task kind or renaming a
status would miss it). The scan reads every module's AST and reports such literals where they are
*values*: compared with, returned, listed, passed or assigned. Docstrings and comments are not
code; dictionary keys, subscripts and `get`-style lookups are names of config or settings sections
(`config["pretrain"]` is the parent pretrain's id, `settings_values("finetune", ...)` the settings
section), not uses of the vocabulary. `ALLOWED` lists the few remaining literals that name
something else and say what.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from orchestrator import vocab
PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"
MODULES = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "vocab.py")

WORDS = {
    **{w: "task kind" for w in vocab.TASK_KINDS},
    **{w: "path kind" for w in vocab.PATH_KINDS},
    **{w: "pair type" for w in vocab.PAIRS},
    **{w: "pair design" for designs in vocab.PAIR_DESIGNS.values() for w in designs},
    **{w: "run status" for w in vocab.RUN_STATUSES},
    **{w: "table status" for w in vocab.TABLE_STATUSES},
    **{w: "MLflow status" for w in vocab.MLFLOW_STATUSES},
}
# Calls whose string arguments name a key or a settings section, not a vocabulary word.
KEY_CALLS = {"get", "pop", "setdefault", "settings_values", "getattr", "hasattr"}
# (module, enclosing function, word): literals that spell a vocabulary word but mean something else.
# At module level the scope is `<module>:NAME`, NAME the variable being assigned.
ALLOWED = {
    ("report/progress.py", "task_provenance", "cached"): "the name of the `tasks.cached` column",
    ("results/schemas.py", "<module>:SCHEMAS", "cached"): "the name of the `tasks.cached` column",
    ("run/work.py", "_distance", "running"): "BatchNorm's running statistics (`running_mean`)",
}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _as_keys(tree: ast.AST) -> set[int]:
    """Constants used as dictionary keys, subscripts or key arguments of KEY_CALLS."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            out |= {id(k) for k in node.keys if k is not None}
        elif isinstance(node, ast.Subscript):
            out.add(id(node.slice))
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in KEY_CALLS:
                out |= {id(a) for a in node.args}
    return out


def vocabulary_literals(source: str, module: str) -> list[tuple[int, str, str, str]]:
    """(line, enclosing function, word, what it is) of each vocabulary word spelled as a value."""
    tree = ast.parse(source)
    skip = _docstrings(tree) | _as_keys(tree)
    found = []

    def walk(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and function.startswith(
                "<module>") or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        elif function == "<module>" and isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            function = f"<module>:{names[0]}" if names else function
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                and node.value in WORDS and (module, function, node.value) not in ALLOWED:
            found.append((node.lineno, function, node.value, WORDS[node.value]))
        for child in ast.iter_child_nodes(node):
            walk(child, function)

    walk(tree, "<module>")
    return sorted(found)


@pytest.mark.parametrize("module", MODULES)
def test_no_vocabulary_word_is_spelled_as_a_literal_outside_vocab(module):
    literals = vocabulary_literals((PACKAGE / module).read_text(), module)
    assert not literals, f"orchestrator/{module} spells vocabulary words instead of importing them from " \
        "orchestrator.vocab:\n" + "\n".join(f"  line {line} (in {fn}): {word!r} ({what})"
                                            for line, fn, word, what in literals)


def test_allowed_literals_still_exist():
    """An exception that no longer matches anything is removed from ALLOWED (it would hide a new one)."""
    for module, function, word in ALLOWED:
        tree = ast.parse((PACKAGE / module).read_text())
        if function.startswith("<module>:"):
            scopes = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and function[9:] in
                      [t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)]]
        else:
            scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.name == function]
        assert any(isinstance(n, ast.Constant) and n.value == word for s in scopes for n in ast.walk(s)), \
            (module, function, word)


@pytest.mark.parametrize("source, expected", [
    ('if task.kind == "pretrain": pass', [(1, "<module>", "pretrain", "task kind")]),
    ('ORDER = ("linear", "quadratic")', [(1, "<module>:ORDER", "linear", "path kind"),
                                          (1, "<module>:ORDER", "quadratic", "path kind")]),
    ('def f(s="FINISHED"):\n    return s', [(1, "f", "FINISHED", "MLflow status")]),
    ('class C:\n    def g(self):\n        return "skipped"', [(3, "g", "skipped", "table status")]),
    ('def f(x):\n    return x == "cue~nocue"', [(2, "f", "cue~nocue", "pair type")]),
    ('def f():\n    """A pretrain task; failed or skipped."""\n    # "finetune"\n', []),
    ('c = cfg["pretrain"]\nd = {"finetune": 1}\ne = cfg.get("align")\ns = settings_values("midpoint", x)', []),
    ('x = f"{kind}-pretrain"\ny = "pretrained~ft:" + m', []),
])
def test_the_scan_flags_values_and_leaves_docs_and_keys_alone(source, expected):
    assert vocabulary_literals(source, "example.py") == expected


def test_every_word_has_one_meaning_and_the_lists_are_consistent():
    for name in ("TASK_KINDS", "PATH_KINDS", "PAIRS", "RUN_STATUSES", "TABLE_STATUSES", "MLFLOW_STATUSES",
                 "TABLES", "METRICS", "DEFINITIONS"):
        values = getattr(vocab, name)
        assert len(values) == len(set(values)), name
    assert set(vocab.TRAINING_KINDS) | set(vocab.BUNDLE_KINDS) == set(vocab.TASK_KINDS)
    assert not set(vocab.TRAINING_KINDS) & set(vocab.BUNDLE_KINDS)
    assert set(vocab.STATUS_IN_TABLE.values()) == set(vocab.TABLE_STATUSES)
    assert set(vocab.STATUS_IN_MLFLOW.values()) == set(vocab.MLFLOW_STATUSES)
    assert set(vocab.STATUS_IN_TABLE) == set(vocab.STATUS_IN_MLFLOW) == set(vocab.RUN_STATUSES) - {
        vocab.PENDING, vocab.RUNNING}
    assert set(vocab.PAIR_DESIGNS) == set(vocab.PAIRS) and set(vocab.DESIGN_MEANING) == {
        d for designs in vocab.PAIR_DESIGNS.values() for d in designs}


@pytest.mark.parametrize("text, parsed, name", [
    ("cue~nocue", ("cue~nocue", "independent", None), "cue~nocue"),
    ("cue~nocue:same-init", ("cue~nocue", "same-init", None), "cue~nocue:same-init"),
    ("cue~cue:spawn@2", ("cue~cue", "spawn", 2), "cue~cue:spawn@2"),
    ("nocue~nocue:self", ("nocue~nocue", "self", None), "nocue~nocue:self"),
    ("nocue~nocue:independent", ("nocue~nocue", "independent", None), "nocue~nocue"),
])
def test_pair_types_parse_and_name_back(text, parsed, name):
    assert vocab.parse_pair_type(text) == parsed
    assert vocab.pair_type_name(*parsed) == name


@pytest.mark.parametrize("text, message", [
    ("cue~dog", "is not a pair type"), ("cue~cue:spawn", "spawn@K"), ("cue~nocue:self", "has no design"),
    ("pretrained~ft:fine-tuned", "has no design"), (3, "is not a pair type"),
    # an epoch on a design without one: the design as written, and spawn@K only for a pair that has it
    ("cue~nocue:same-init@3", r"only a spawn design takes an epoch \(`@K`\): write `cue~nocue:same-init`\Z"),
    ("cue~cue:resubset@2", r"write `cue~cue:resubset`; `cue~cue:spawn@K` shares K epochs\Z"),
    ("cue~cue:spawn@01", "without leading zeros: `cue~cue:spawn@1`"),        # else spawn@1 listed twice, merged
    # one spelling per pair type: a trailing newline or another script's digit is none (it was cue~nocue twice)
    ("cue~nocue\n", "is not a pair type"), ("cue~cue:spawn@\u0661", "is not a pair type"),
    ("cue~cue:spawn@1\n", "is not a pair type"),
])
def test_bad_pair_types_name_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        vocab.parse_pair_type(text)


def test_an_unknown_pair_type_lists_every_spelling_that_parses():
    """The list after "allowed:" is whole (no "..."), and each entry parses (spawn's with an epoch for K)."""
    with pytest.raises(ValueError) as err:
        vocab.parse_pair_type("cue~dog")
    allowed = str(err.value).split("allowed: ")[1].split(", ")
    assert len(allowed) == sum(len(designs) for designs in vocab.PAIR_DESIGNS.values()) and "..." not in allowed
    for spelling in allowed:
        vocab.parse_pair_type(spelling.replace("@K", "@2"))


def test_a_spawn_pair_may_share_more_than_99_epochs():
    """`X~X:spawn@K` shares K pretraining epochs; the paper's CIFAR runs pretrain for 100 epochs, so K may
    have three digits (and more)."""
    assert vocab.parse_pair_type("cue~cue:spawn@100") == (vocab.CUE_CUE, vocab.SPAWN, 100)
    assert vocab.parse_pair_type("nocue~nocue:spawn@123456") == (vocab.NOCUE_NOCUE, vocab.SPAWN, 123456)
    assert vocab.pair_type_name(vocab.CUE_CUE, vocab.SPAWN, 100) == "cue~cue:spawn@100"


@pytest.mark.parametrize("error, name", [
    ("DivergenceError: loss is nan at epoch 3", "DivergenceError"),
    ("\n  SettingsError: `lr` must be > 0\n", "SettingsError"),
    ("RuntimeError: CUDA out of memory: tried to allocate", "RuntimeError"),
    ("loss is nan", None),                      # no exception name before a colon
    ("the trial crashed: worker died", None),   # words, not an identifier
    ("", None), (None, None),
])
def test_the_error_type_is_the_exception_name_that_heads_a_tasks_error(error, name):
    """vocab.error_type: the name before the first colon, when it is an identifier (surrounding blank
    space is no part of it); any other text names no exception."""
    assert vocab.error_type(error) == name


def test_the_errors_a_rerun_repeats_include_divergence_and_bad_settings_or_data():
    """docs/FAILURES.md: a loss that becomes NaN/inf (`DivergenceError`), bad settings and bad data fail
    the same way on every rerun (training is seeded): the advice after failures says so."""
    assert {"DivergenceError", "SettingsError", "DataError"} <= set(vocab.DETERMINISTIC_ERRORS)
    assert "RuntimeError" not in vocab.DETERMINISTIC_ERRORS


def test_a_spawn_pair_at_epoch_zero_parses_and_names_back_with_its_epoch():
    """`X~X:spawn@0` (children of one initialisation, nothing else shared) is the main same-data control: `0` is
    no leading zero, and its name keeps `@0` (else it would read as the refused `cue~cue:spawn`)."""
    assert vocab.parse_pair_type("cue~cue:spawn@0") == (vocab.CUE_CUE, vocab.SPAWN, 0)
    assert vocab.pair_type_name(vocab.CUE_CUE, vocab.SPAWN, 0) == "cue~cue:spawn@0"
    assert vocab.pair_type_name(vocab.NOCUE_NOCUE, vocab.SPAWN, 0) == "nocue~nocue:spawn@0"


@pytest.mark.parametrize("text", ["cue~nocue", "cue~nocue:same-init", "cue~cue:spawn@0", "cue~cue:spawn@12",
                                  "cue~cue:resubset", "nocue~nocue:self", "pretrained~ft", "cue~cue:spawn@01",
                                  "cue~cue:spawn@007", "pretrained~ft:fine-tuned", "cue~nocue:self", "cue~cue:spawn",
                                  "cue~cue:independent", "nocue~nocue:spawn@3"])
def test_the_json_schema_pattern_accepts_exactly_the_pair_types_that_parse(text):
    """An editor validating with the JSON schema agrees with the spec's own check: no leading zeros on a
    spawn epoch, no design on `pretrained~ft`."""
    import re

    try:
        vocab.parse_pair_type(text)
        parses = True
    except ValueError:
        parses = False
    assert bool(re.match(vocab.pair_type_pattern(), text)) == parses


@pytest.mark.parametrize("pair_type, only_the_start", [
    ("cue~cue:spawn@0", True), ("nocue~nocue:spawn@0", True), ("cue~cue:resubset", True),
    ("cue~cue:spawn@1", False), ("nocue~nocue:spawn@5", False), ("nocue~nocue:self", False), ("cue~cue", False),
    ("cue~nocue:same-init", False)])
def test_only_spawn_at_zero_and_resubset_share_only_their_start(pair_type, only_the_start):
    """A spawn@K child with K > 0 shares K epochs too: not a control of a shared initialisation alone."""
    assert vocab.shares_only_the_start(pair_type) is only_the_start


def test_the_proportions_a_pair_type_is_planned_at():
    """nocue~nocue only at 0.0 (and nowhere without it); cue~nocue needs 0.0 as its partner; resubset only
    where some samples go uncued (not at 1.0, nor at a proportion that cues every sample)."""
    pp = vocab.pair_proportions
    assert pp(vocab.NOCUE_NOCUE, vocab.INDEPENDENT, (0.0, 0.8)) == (0.0,)
    assert pp(vocab.NOCUE_NOCUE, vocab.INDEPENDENT, (0.5, 0.8)) == ()
    assert pp(vocab.CUE_NOCUE, vocab.INDEPENDENT, (0.5, 0.8)) == ()
    assert pp(vocab.CUE_NOCUE, vocab.INDEPENDENT, (0.0, 0.5, 0.8)) == (0.5, 0.8)
    assert pp(vocab.CUE_CUE, vocab.INDEPENDENT, (0.0, 0.5, 1.0)) == (0.5, 1.0)
    assert pp(vocab.CUE_CUE, vocab.RESUBSET, (0.0, 0.5, 0.8, 1.0)) == (0.5, 0.8)
    assert pp(vocab.CUE_CUE, vocab.RESUBSET, (0.0, 0.5, 0.8, 1.0), all_cued=(0.8,)) == (0.5,)


def test_claim_b_s_reference_prefers_two_cue_models_then_two_no_cue_models_then_one_of_each():
    """FT_REFERENCES: the pair types (independent initialisations) claim (b) compares a fine-tuned model's
    barrier with, the first a sweep has: cue~cue, then nocue~nocue, then cue~nocue."""
    assert vocab.FT_REFERENCES == (vocab.CUE_CUE, vocab.NOCUE_NOCUE, vocab.CUE_NOCUE)
