"""Where a sweep lives, as a spec names it: storage URIs, the data root, MLflow tracking URIs; their
checks (messages name the key, redacted) and `redact` for every message that shows one."""
from __future__ import annotations

import re
from typing import Any

from orchestrator.messages import show

STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def check_storage(value: str, problems: list[str]) -> None:
    match = _SCHEME.match(value)
    if not value.strip():
        problems.append("`storage`: '' is not allowed; give a local directory or a URI such as s3://bucket/runs")
    elif match and len(match.group(1)) > 1:   # "C:" would be a Windows drive, not a scheme
        scheme = match.group(1).lower()
        if scheme not in STORAGE_SCHEMES:
            problems.append(f"`storage`: {show(redact(value))} has an unknown URI scheme {scheme!r}; allowed: a "
                            f"local path or {', '.join(s + '://' for s in STORAGE_SCHEMES)}")
        elif not value[match.end():].strip("/"):
            problems.append(f"`storage`: {show(redact(value))} names no location after the scheme")
        elif scheme == "file":
            from orchestrator.layout import LayoutError, local_path_of

            try:
                local_path_of(value)
            except LayoutError as e:
                problems.append(f"`storage`: {e}")


def check_root(value: Any, problems: list[str]) -> str | None:
    """An existing local directory (returned absolute; `file://` URIs are local paths); None passes.
    Other URIs are refused: the dataset loaders read local files only."""
    from pathlib import Path

    from orchestrator.layout import LayoutError, local_path_of

    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append(f"`data.root`: {show(value)} is not allowed; give the directory holding the dataset files")
        return None
    if _SCHEME.match(value) and len(_SCHEME.match(value).group(1)) > 1:
        try:
            local = local_path_of(value)
        except LayoutError:
            local = None
        if local is None:
            problems.append(f"`data.root`: {show(redact(value))} is not a local directory; the datasets are read from "
                            "local files (on a cluster: a directory every node mounts), so copy them there and give "
                            "its path")
            return None
        value = local
    path = Path(value).expanduser()
    if not path.is_dir():
        problems.append(f"`data.root`: {show(value)} is not an existing directory; download a dataset with "
                        f"`mmc-sweep data download NAME --root {value}`")
        return None
    return str(path.resolve())


TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")


def check_tracking_uri(value: str, problems: list[str]) -> None:
    """An MLflow tracking URI: a server (http/https with a host), a database URI, or a local path."""
    import urllib.parse

    fix = ("give a tracking server (http://host:5000), a database URI (sqlite:////abs/mlflow.db, "
           "postgresql://host/db) or leave it out for the SQLite file in the sweep directory")
    if not value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} is not allowed; {fix}")
        return
    match = _SCHEME.match(value)
    if not match or len(match.group(1)) == 1:
        return   # a local path (MLflow's file store)
    scheme = match.group(1).lower().split("+", 1)[0]
    if scheme not in TRACKING_SCHEMES:
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} has the scheme {scheme!r}, which MLflow does "
                        f"not track to; {fix}")
        return
    if scheme in ("http", "https"):
        try:
            parsed = urllib.parse.urlsplit(value)
            ok = bool(parsed.hostname) and (parsed.port or 1) > 0
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} names no valid host[:port]; {fix}")


def redact(text: str) -> str:
    """Credentials in URIs (`s3://KEY:SECRET@bucket` -> `s3://***@bucket`, `?token=...` -> `?token=***`)."""
    from orchestrator.layout import redact as layout_redact

    return layout_redact(text)
