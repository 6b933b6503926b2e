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


class _OwnTasks:
    """Finds `tasks` as mmc-sweep's own package (the one installed beside this one), whatever else on sys.path
    is called `tasks`: a `tasks.py` or `tasks/` in the working directory (an invoke or Celery project's) would
    otherwise take its place, in `python -m orchestrator` and in every Ray worker, whose path starts with the
    driver's working directory. First on `sys.meta_path`; it imports nothing until `tasks` is imported."""

    def __init__(self, own: Path):
        self.own = own

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != "tasks":
            return None     # its submodules are found in its own directory, through its __path__
        return importlib.util.spec_from_file_location("tasks", self.own / "__init__.py",
                                                      submodule_search_locations=[str(self.own)])


def _find_own_tasks() -> None:
    own = Path(__file__).resolve().parent.parent / "tasks"
    if not (own / "__init__.py").is_file():
        return      # not installed beside this package: the usual import finds it
    loaded = sys.modules.get("tasks")
    if loaded is not None:
        where = list(getattr(loaded, "__path__", None) or [getattr(loaded, "__file__", None) or "?"])[0]
        if Path(str(where)).resolve() != own:
            raise ImportError(f"another module named `tasks` ({where}) was imported before mmc-sweep, whose own "
                              f"`tasks` package is {own}: import orchestrator first, or rename yours")
    if not any(isinstance(finder, _OwnTasks) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OwnTasks(own))


_find_own_tasks()


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
