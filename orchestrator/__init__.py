"""mmc-sweep: sweeps for mechanistic mode connectivity research on Ray.

The Python API (see `orchestrator.api`): `run`, `load`, `open_sweep`; imported on first use.

`orchestrator.run` is both the API's `run(...)` and, once any `orchestrator.run.<module>` is imported,
the run-layer package (Python binds the package's attribute to it). The package module is then made
callable here, forwarding to `api.run`, so `mmc.run(...)` works whatever was imported first.
"""
import importlib.util
import sys
import types
from pathlib import Path

__all__ = ["load", "open_sweep", "run"]


def _bind_own_tasks() -> None:
    """Make `tasks` mmc-sweep's own package (the one installed beside this one), whatever else on sys.path
    is called `tasks`: a `tasks.py` or `tasks/` in the working directory (an invoke or Celery project's)
    would otherwise take its place, in `python -m orchestrator` and in every Ray worker, whose path starts
    with the driver's working directory."""
    own = Path(__file__).resolve().parent.parent / "tasks"
    loaded = sys.modules.get("tasks")
    if loaded is not None:
        where = getattr(loaded, "__path__", None) or [getattr(loaded, "__file__", None) or "?"]
        if Path(str(list(where)[0])).resolve() != own:
            raise ImportError(f"another module named `tasks` ({list(where)[0]}) was imported before mmc-sweep, whose "
                              f"own `tasks` package is {own}: import orchestrator first, or rename yours")
        return
    spec = importlib.util.spec_from_file_location("tasks", own / "__init__.py", submodule_search_locations=[str(own)])
    if spec is None or not (own / "__init__.py").is_file():
        return      # not installed beside this package: the usual import finds it
    module = importlib.util.module_from_spec(spec)
    sys.modules["tasks"] = module
    spec.loader.exec_module(module)


_bind_own_tasks()


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
