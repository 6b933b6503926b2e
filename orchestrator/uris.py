"""URIs as users write them, defined once: the scheme, the local path a URI names, credentials hidden.

Spec checks, storage, the cluster checks and every message use these; no other module parses a
scheme or redacts a secret.
"""
from __future__ import annotations

import re

from orchestrator.errors import MmcError

SCHEME_PATTERN = r"[A-Za-z][A-Za-z0-9+.-]+:"   # `s3:`; one letter before ':' is a Windows drive (`C:/x`)
_SCHEME = re.compile(f"^({SCHEME_PATTERN[:-1]}):")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s'\"<>]*@")   # up to the last @: secrets may hold '/'
_QUERY_SECRET = re.compile(r"(?i)([?&;][a-z0-9_.-]*(?:token|secret|passw|pwd|signature|sig|credential|key)"
                           r"[a-z0-9_.-]*=)[^&;\s'\"<>#]+")


class UriError(MmcError, ValueError):
    """A URI that names no usable location (e.g. `file://host/x`, a file URI on another host)."""


def scheme(value: str) -> str | None:
    """The URI scheme of `value`, lower case (`s3`, `file`, `sqlite`, `http`), or None for a plain path.
    One letter before ':' is a Windows drive (`C:/x`), not a scheme."""
    match = _SCHEME.match(value) if isinstance(value, str) else None
    return match.group(1).lower() if match and len(match.group(1)) > 1 else None


def after_scheme(value: str) -> str:
    """What follows `<scheme>:` (the whole value for a plain path)."""
    return value[len(scheme(value) or "") + 1:] if scheme(value) else value


def is_remote(value: str) -> bool:
    """A URI of another system than the local file system (s3://, gs://, http://, ...)."""
    return scheme(value) not in (None, "file")


def local_path_of(uri: str) -> str | None:
    """The local path a storage URI names (`./runs`, `/abs`, `file:///abs`, `file://localhost/abs`,
    `file:/abs`), or None for a remote URI (s3://, gs://, ...). Raises UriError for a file URI that
    names no local absolute path."""
    kind = scheme(uri)
    if kind is None:
        return uri
    if kind != "file":
        return None
    rest = after_scheme(uri)
    if not rest.startswith("//"):            # file:/abs/path
        if rest.startswith("/"):
            return rest
    else:
        rest = rest[2:]                      # after "file://"
        if rest.startswith("localhost/"):
            return rest[len("localhost"):]
        if rest.startswith("/"):
            return rest
    raise UriError(f"{redact(uri)!r} is not a local file URI; use file:///absolute/path")


def redact(text: object) -> str:
    """Credentials in URIs never printed: `s3://KEY:SECRET@bucket/x` -> `s3://***@bucket/x`,
    `https://host/x?token=abc` -> `https://host/x?token=***` (errs on the side of hiding more)."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(r"\1***@", str(text)))


def redacting(write):
    """`write` (e.g. `print`) that redacts every message first: the one door a driver's lines go out by."""
    def write_redacted(text: object = "", *args, **kwargs):
        return write(redact(text), *args, **kwargs)
    return write_redacted


def redact_warnings() -> None:
    """Show every Python warning of this process redacted (the command line installs it once: warnings
    from pyarrow, MLflow, the report or the tables may quote a URI)."""
    import warnings

    show = warnings.showwarning
    if getattr(show, "redacts", False):
        return

    def show_redacted(message, category, filename, lineno, file=None, line=None):
        show(redact(message), category, filename, lineno, file, line)

    show_redacted.redacts = True
    warnings.showwarning = show_redacted
