"""mmc-sweep: sweeps for mechanistic mode connectivity research on Ray.

The Python API (see `orchestrator.api`): `run`, `load`, `open_sweep`; imported on first use.

`orchestrator.run` is both the API's `run(...)` and, once any `orchestrator.run.<module>` is imported,
the run-layer package (Python binds the package's attribute to it). The package module is then made
callable here, forwarding to `api.run`, so `mmc.run(...)` works whatever was imported first.
"""
import sys
import types

__all__ = ["load", "open_sweep", "run"]


def __getattr__(name: str):
    if name in __all__:
        from orchestrator import api
        return getattr(api, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


class _RunPackage(types.ModuleType):
    """The run-layer package, callable as the API's `run`."""

    def __call__(self, *args, **kwargs):
        from orchestrator import api
        return api.run(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name == "run" and type(value) is types.ModuleType:    # the import system binding the package
            value.__class__ = _RunPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
