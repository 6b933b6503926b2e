"""Layer 5, the report: intervals and summaries (`stats`), the claims against their controls
(`claims`), figures (`plots`, `figures`), the HTML page (`html`, `templates/`) and the report
directory (`build`)."""
from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"write_report": "build", "print_claims": "build"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
