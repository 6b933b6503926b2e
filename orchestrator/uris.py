"""URIs as users write them, defined once: the scheme, the local path a URI names, credentials hidden.

Spec checks, storage, the cluster checks and every message use these; no other module parses a
scheme or redacts a secret.
"""
from __future__ import annotations

import os
import re

from orchestrator.errors import MmcError
from orchestrator.vocab import PAIRS, SPAWN

SCHEME_PATTERN = r"[A-Za-z][A-Za-z0-9+.-]+:"   # `s3:`; one letter before ':' is a Windows drive (`C:/x`)
_SCHEME = re.compile(f"^({SCHEME_PATTERN[:-1]}):")
# A word that may hold credentials: one with an @ (`_END`, a blank, ends a word; a quote or an angle bracket does
# not: `'` is a legal character of a password, and `"<>` are typed into one too, so a word cut there would show
# the part of a password before them).
_END = r"\s"
_WORD_WITH_AT = re.compile(rf"(?<![^{_END}])[^{_END}@]*@[^{_END}]*")
# Where the userinfo of a word starts: after a scheme and its slashes (`s3://`, `s3:/`, `http:/`; kept), else at
# a user name (none: `:pw@`) and its colon, at the word's start or after one of `/@([{,;=` and backticks
# (`s3:AK:pw@`, `//u:pw@`, `--address=u:pw@`; hidden).
_SCHEME_SLASHES = re.compile(r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:/+")
_USER_AFTER = _END + r"'\"<>`/@(\[{,;="
_USER = re.compile(rf"(?<![^{_USER_AFTER}])[^{_USER_AFTER}:]*:")
# A query parameter whose name says it is a secret; names of at most 64 characters on either side of the word
# that says so (unbounded, a long run of such words without `=` took time quadratic in its length).
_QUERY_SECRET = re.compile(r"(?i)([?&;][a-z0-9_.-]{0,64}(?:token|secret|passw|pwd|pw|pass|auth|signature|sig|credential|key)"
                           r"[a-z0-9_.-]{0,64}=)[^&;\s'\"<>#]+")
_SECRETS: tuple[str, ...] = ()  # userinfo seen whole (`remember_secrets`), longest first: hidden wherever shown


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
    `https://host/x?token=abc` -> `https://host/x?token=***`, and a `user:password@` without a well-formed
    `scheme://` before it: `s3:AK:SECRET@bucket/x` -> `***@bucket/x`, `//u:SECRET@h` -> `//***@h` (errs on the
    side of hiding more; `bob@example.com`, `host:5000`, `12:30:01` and `cue~cue:spawn@2` stay as they are)."""
    text = str(text)
    for secret in _SECRETS:      # longest first: one that holds another is replaced whole
        text = text.replace(secret, "***")
    if "@" in text:   # most lines have none: one scan
        text = _WORD_WITH_AT.sub(_hide_userinfo, text)
    return _QUERY_SECRET.sub(r"\1***", text)


def remember_secrets(value: object) -> None:
    """Hide from every later message (`redact`) the userinfo of a URI known whole: a spec's value or a command-line
    argument, where it runs from the scheme's slashes to the last @ whatever it holds (a blank, a quote), which a
    message, where words and quotes cut it, cannot tell. Its password alone too, where it is long enough not to be
    an ordinary word."""
    global _SECRETS
    if not isinstance(value, str) or "@" not in value:
        return
    at = _last_at(value)
    start = _SCHEME_SLASHES.search(value, 0, at) if at >= 0 else None
    userinfo = value[start.end():at] if start else ""
    found = {userinfo} if ":" in userinfo else set()
    password = userinfo.partition(":")[2]
    if len(password) >= 6:
        found.add(password)
    if found - set(_SECRETS):
        _SECRETS = tuple(sorted(set(_SECRETS) | found, key=len, reverse=True))


def remember_arguments(argv: list[str]) -> None:
    """`remember_secrets` for every argument of a command line and the URIs of its environment."""
    for value in [*argv, *(os.environ.get(name, "") for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI"))]:
        remember_secrets(value)


def _hide_userinfo(word: re.Match) -> str:
    """The word with its userinfo, up to its last @ (a secret may hold '/' or '@'), as `***`: after a scheme and
    its slashes, and a user and password before that scheme too. Linear in the word, whatever it holds."""
    text = word.group()
    at = _last_at(text)
    kept = _SCHEME_SLASHES.search(text, 0, at) if at >= 0 else None
    if kept is None:
        return _hide_user(text)
    return f"{_hide_user(text[:kept.start()])}{kept.group()}***{text[at:]}"


def _hide_user(text: str) -> str:
    """`text` (no scheme in it) with a `user:password` before its last @ as `***`."""
    at = _last_at(text)
    user = _USER.search(text, 0, at) if at >= 0 else None
    return text if user is None else f"{text[:user.start()]}***{text[at:]}"


def _last_at(text: str) -> int:
    """Where the last @ of `text` that may end a userinfo is (-1: none); a pair type's `:spawn@K`
    (orchestrator.vocab) ends none, nor does an @ after a pair and any design (`cue~nocue:same-init@3`, a
    spelling a spec may get wrong: its error shows it)."""
    at = text.rfind("@")
    while at >= 0 and (text.endswith(f":{SPAWN}", 0, at)
                       or _PAIR_BEFORE_AT.search(text, max(0, at - _PAIR_LOOKBACK), at)):
        at = text.rfind("@", 0, at)
    return at


_PAIR_BEFORE_AT = re.compile("(?:" + "|".join(map(re.escape, PAIRS)) + r"):[a-z-]{1,24}\Z")
_PAIR_LOOKBACK = 48          # characters looked back from an @ (a pair and design are shorter): linear in the text


def redacted_credentials(value: str) -> bool:
    """Whether `value` holds credentials `redact` replaced (`s3://***@bucket`): a resolved spec given back, whose
    `***` would be sent as the user name."""
    return "***@" in value or bool(re.search(r"[?&;][^=&;]*=\*\*\*(?:[&;#]|$)", value))


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
