"""Where a sweep lives, as a spec names it: storage URIs, the data root, MLflow tracking URIs; their
checks (messages name the key, redacted through `orchestrator.uris.redact`)."""
from __future__ import annotations

from typing import Any

from orchestrator.messages import control_character, show
from orchestrator.uris import (SCHEME_PATTERN, UriError, after_scheme, local_path_of, redact, redacted_credentials,
                               scheme)

STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
# the schemes MLflow tracks to; MLflow's file store (a local directory, file://) is not one: MLflow 3 refuses it
# ("maintenance mode") and the run would go on without MLflow
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")
TRACKING_NAMES = ("databricks", "databricks-uc", "uc")   # MLflow's names of a (Databricks) workspace, no scheme


# ----- the same checks, as far as a JSON schema can say them (for editors) -----

def _any_case(words: tuple[str, ...]) -> str:
    return "(?:" + "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w)
                            for w in words) + ")"


NO_SCHEME = f"(?!{SCHEME_PATTERN})"
END = r"(?![\s\S])"   # the end of the text (`$` would allow a newline before it)
# a local path with some text, or a known scheme with something after it but slashes
# (a file URI names a local absolute path: file:/x, file:///x, file://localhost/x), and a local one without
# ? or # (a URI made from it would end there); no control characters anywhere
_FILE = _any_case(("file",))
STORAGE_JSON = {"pattern": rf"^(?![\s\S]*[\x00-\x1f\x7f])(?!(?:{NO_SCHEME}|{_FILE}:)[^?#%]*[?#%])"
                           rf"(?:{NO_SCHEME}[\s\S]*\S|{_FILE}:(?://localhost/|///[\s\S]*[^/]|/(?!/)[\s\S]*[^/])|"
                           rf"{_any_case(tuple(s for s in STORAGE_SCHEMES if s != 'file'))}:[\s\S]*[^/])"}
ROOT_JSON = {"minLength": 1, "pattern": rf"^(?:{NO_SCHEME}|{_FILE}:)"}
# a Databricks name or a scheme MLflow tracks to (`postgresql+psycopg2:`; http(s) with a host; sqlite with an
# absolute path: four slashes and a name), without spaces or control characters
_HTTP, _TEXT, _PLUS = ("http", "https"), r"[^\s\x00-\x1f]", r"(?:\+[A-Za-z0-9+.-]*)?"
TRACKING_JSON = {"pattern": rf"^(?:{'|'.join(TRACKING_NAMES)}|{_any_case(_HTTP)}{_PLUS}://[^/?#\s\x00-\x1f]{_TEXT}*|"
                            rf"{_any_case(('sqlite',))}{_PLUS}:/{{4,}}[^/\s\x00-\x1f]{_TEXT}*|"
                            rf"{_any_case(tuple(s for s in TRACKING_SCHEMES if s not in (*_HTTP, 'sqlite')))}{_PLUS}:"
                            rf"{_TEXT}*){END}"}


def check_storage(value: str, problems: list[str]) -> None:
    kind = scheme(value)
    control = control_character(value)
    if not value.strip():
        problems.append("`storage`: '' is not allowed; give a local directory or a URI such as s3://bucket/runs")
    elif control is not None:   # NUL cannot be in a path at all; a newline or escape breaks every line that prints it
        problems.append(f"`storage`: {show(redact(value))} has the control character U+{ord(control):04X}; give a "
                        "local directory or a URI without control characters")
    elif kind is not None:
        if kind not in STORAGE_SCHEMES:
            problems.append(f"`storage`: {show(redact(value))} has an unknown URI scheme {kind!r}; allowed: a "
                            f"local path or {', '.join(s + '://' for s in STORAGE_SCHEMES)}")
        elif not after_scheme(value).strip("/"):
            problems.append(f"`storage`: {show(redact(value))} names no location after the scheme")
        elif kind == "file":
            try:
                local_path_of(value)
            except UriError as e:
                problems.append(f"`storage`: {e}")
    if (kind is None or kind == "file") and any(c in value for c in "?#%"):
        problems.append(f"`storage`: {show(redact(value))} has a '?', '#' or '%': URIs made from a local path "
                        "(MLflow's sqlite:/// store, file://) end its path at '?' or '#' and decode '%41' as 'A'; "
                        "choose a directory without them")


def check_root(value: Any, problems: list[str]) -> str | None:
    """An existing local directory (returned absolute; `file://` URIs are local paths); None passes.
    Other URIs are refused: the dataset loaders read local files only."""
    from pathlib import Path

    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append(f"`data.root`: {show(value)} is not allowed; give the directory holding the dataset files")
        return None
    if scheme(value) is not None:
        try:
            local = local_path_of(value)
        except UriError:
            local = None
        if local is None:
            problems.append(f"`data.root`: {show(redact(value))} is not a local directory; the datasets are read from "
                            "local files (on a cluster: a directory every node mounts), so copy them there and give "
                            "its path")
            return None
        value = local
    path = Path(value).expanduser()
    try:
        is_dir = path.is_dir()
    except OSError as e:   # a name too long for a path (pathlib raises ENAMETOOLONG)
        problems.append(f"`data.root`: {show(value)} is not allowed: {e.strerror or e}; give the directory holding "
                        "the dataset files")
        return None
    if not is_dir:
        hint = f" with `mmc-sweep data download NAME --root {value}`" if value.isprintable() else ""
        problems.append(f"`data.root`: {show(value)} is not an existing directory; download a dataset{hint}")
        return None
    return str(path.resolve())



def redacted_problems(storage: str, tracking_uri: str | None) -> list[str]:
    """A spec the user gives to run (a resolved spec given back: `plan --resolved`, a sweep's spec.yaml) holds
    `***` where credentials were: sent as they are, the store would refuse them with a puzzling error. (A sweep's
    own spec.yaml, read as a record, keeps them redacted: only `load_spec` asks.)"""
    return [f"`{key}`: {show(redact(value))} holds credentials that were redacted (`***`) where it was printed or "
            "written; give the real ones, or none in the URI (the store's environment variables)"
            for key, value in (("storage", storage), ("mlflow.tracking_uri", tracking_uri))
            if value and redacted_credentials(value)]


def check_tracking_uri(value: str, problems: list[str]) -> None:
    """An MLflow tracking URI: a server (http/https with a host), a database URI (SQLite at an absolute path) or
    Databricks. A local directory (a path, file://) is MLflow's file store, which MLflow 3 refuses: the run would
    go on without MLflow; sqlite:///x.db (three slashes) is x.db under whichever directory the run starts in."""
    import urllib.parse

    fix = ("give a tracking server (http://host:5000), a database URI (sqlite:////abs/mlflow.db, "
           "postgresql://host/db) or leave it out for the SQLite file in the sweep directory")
    if not value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} is not allowed; {fix}")
        return
    if value in TRACKING_NAMES:
        return
    kind = (scheme(value) or "file").split("+", 1)[0]   # no scheme, or one letter (`C:`, `u:pw@h`): a path
    if kind == "file":
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} is a local directory to MLflow (its file "
                        f"store, which MLflow 3 refuses: the run would go on without MLflow); {fix}")
    elif kind not in TRACKING_SCHEMES:
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} has the scheme {kind!r}, which MLflow does "
                        f"not track to; {fix}")
    elif kind == "sqlite" and not (after_scheme(value).startswith("////") and after_scheme(value).strip("/")):
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} names no absolute database file (three "
                        f"slashes: a path under the working directory, two: a database in memory); {fix}")
    elif kind in ("http", "https"):
        try:
            parsed = urllib.parse.urlsplit(value)
            ok = bool(parsed.hostname) and parsed.port != 0   # None: the scheme's port
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} names no valid host[:port]; {fix}")
