"""`plan --resolved --explain`: the resolved spec, each key with the layer that set it (`spec.layers`)."""
from __future__ import annotations

from typing import Any

from orchestrator.spec.sweep_spec import SweepSpec


def explain_spec(spec: SweepSpec) -> str:
    """The resolved spec (as `dump_spec`, loadable again), each key with the layer that set it.
    Credentials in URIs are redacted."""
    from orchestrator.uris import redact

    layers = redact(" < ".join(spec.provenance.layers))
    found: list[tuple[str, str]] = []
    _explain(spec.resolved, (), spec.provenance.keys, found)
    lines = [(redact(text), redact(why)) for text, why in found]
    width = min(max(len(text) for text, _ in lines), 48)
    head = (f"# The resolved spec of `{spec.name}`: every key, with the layer that set it (later layers win):\n"
            f"#   {layers}\n")
    return head + "".join(f"{text.ljust(width)}  # {why}\n" if why else f"{text}\n" for text, why in lines)


def _explain(tree: dict, path: tuple, keys: dict, lines: list) -> None:
    indent = "  " * len(path)
    for key, value in tree.items():
        where = (*path, key)
        if isinstance(value, dict) and value:
            lines.append((f"{indent}{_flow(key)}:", ""))
            _explain(value, where, keys, lines)
        else:
            lines.append((f"{indent}{_flow(key)}: {_flow(value)}", keys.get(".".join(map(str, where)), "")))


def _flow(value: Any) -> str:
    """`value` as one line of YAML."""
    from orchestrator.spec.yaml_io import dump_yaml

    return dump_yaml([value], default_flow_style=True, width=10 ** 9).strip()[1:-1]
