"""mmc-sweep: sweeps for mechanistic mode connectivity research on Ray.

The Python API (see `orchestrator.api`): `run`, `load`, `open_sweep`; imported on first use.
"""

__all__ = ["load", "open_sweep", "run"]


def __getattr__(name: str):
    if name in __all__:
        from orchestrator import api
        return getattr(api, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
