"""Models and datasets that users bring: named by import path (`mypkg.nets:build`) or by an entry
point of the groups `mmc_sweep.models` / `mmc_sweep.datasets` (declared in the user's package).

A plugin is code the user runs on purpose, like their own training script; its *data* still goes
through the restricted loaders (nothing is unpickled). Its identity in task ids is its name plus a
version: the installed distribution's version when the module belongs to one, else a hash of the
module's source file, so editing a local plugin gives new task ids instead of stale cached results.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import re
from functools import lru_cache
from typing import Any, Callable

MODEL_GROUP = "mmc_sweep.models"
DATASET_GROUP = "mmc_sweep.datasets"
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class PluginError(ValueError):
    """A plugin that cannot be found or imported; the message says which and how to fix it."""


SHOWN = 80   # characters of a name or value shown in a message (as orchestrator.messages.MAX_SHOWN)


def shown(name: Any) -> str:
    """`repr(name)`, at most SHOWN characters: a message quotes a name, however long the spec wrote it."""
    return cut(repr(name), SHOWN)


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 3 characters and "..." where it is longer."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_import_path(name: str) -> bool:
    return isinstance(name, str) and bool(_IMPORT_PATH.match(name))


def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}


def plugin_names(group: str) -> tuple[str, ...]:
    """Entry-point names installed for `group`."""
    return tuple(sorted(_entry_points(group)))


def name_problem(name: str, builtins, group: str, what: str, example: str) -> str | None:
    """Why `name` names no `what` (a built-in, an import path, or an entry point of `group`), or None."""
    if name in builtins:
        return None
    if not is_import_path(name) and name not in plugin_names(group):
        return (f"{shown(name)} is not a {what}; allowed: {', '.join(builtins)}, an import path `{example}`, or an entry "
                f"point of group {group}")
    try:
        resolve(name, group)
    except PluginError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=None)
def resolve(name: str, group: str) -> Callable:
    """The object named `name`: `module:attr`, or an entry point of `group`."""
    if is_import_path(name):
        module_name, attr = name.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(f"cannot import {shown(module_name)} for {shown(name)}: {cut(str(exc), 2 * SHOWN)}; make sure it is on the "
                              "Python path of the driver and of every Ray worker (e.g. install your package, or "
                              "run from the directory that holds it)") from None
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the module's own code failed (or exited) on import
            raise PluginError(f"importing {shown(module_name)} for {shown(name)} failed: {type(exc).__name__}: "
                              f"{cut(str(exc), 2 * SHOWN)}; fix the module (it must import without errors, "
                              "and without calling sys.exit)") from None
        if not hasattr(module, attr):
            raise PluginError(f"{shown(module_name)} has no attribute {shown(attr)} (from {shown(name)})")
        return getattr(module, attr)
    points = _entry_points(group)
    if name in points:
        try:
            return points[name].load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the entry point's module failed on import
            raise PluginError(f"loading the entry point {shown(name)} of group {group!r} failed: {type(exc).__name__}: "
                              f"{cut(str(exc), 2 * SHOWN)}") from None
    raise PluginError(f"{shown(name)} is neither `package.module:function` nor an entry point of group {group!r}")


@lru_cache(maxsize=None)
def version(name: str, group: str) -> str:
    """The plugin's version: `<distribution>==<version>` for installed code, else `src:<sha256[:12]>`
    of its module's source."""
    obj = resolve(name, group)
    module = inspect.getmodule(obj)
    top = (module.__name__ if module else "").split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        source = inspect.getsource(module) if module else repr(obj)
    except (OSError, TypeError):
        source = repr(obj)
    return "src:" + hashlib.sha256(source.encode()).hexdigest()[:12]
