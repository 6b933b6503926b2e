"""Layer 3, storage: every path of a sweep directory and file access through `pyarrow.fs`
(`layout`); one driver per sweep (`lock`)."""
from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"Storage": "layout", "SweepLayout": "layout", "LayoutError": "layout", "redact": "layout", "sweep_lock": "lock"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
