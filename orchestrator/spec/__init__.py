"""Layer 1, the sweep spec: reading YAML (`yaml_io`), the declaration of every key (`schema`; `columns`),
reading a spec through it (`validation`), the layers default < profile < extends < file < overrides and
which one set each key (`layers`), the `SweepSpec` (`sweep_spec`), swept axes (`axes`), rules across
sections (`rules`), locations (`locations`), the JSON schema (`jsonschema`); the built-in sweep
(`sweeps/`) and dataset profiles (`profiles/`)."""
from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"load_spec": "sweep_spec", "parse_spec": "sweep_spec", "dump_spec": "sweep_spec", "spec_hash": "sweep_spec", "SweepSpec": "sweep_spec", "Variant": "sweep_spec", "spec_json_schema": "sweep_spec", "explain_spec": "explain",
            "SpecError": "schema", "TopLevel": "schema"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
