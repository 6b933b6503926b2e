"""How values appear in error messages (roughly as YAML spells them, shortened, with their type), and
where messages go: every module logs to `logger(__name__)` under the `orchestrator` logger, which the CLI
shows through `ConsoleHandler` (one channel for the story of a run, progress and warnings); each record is
redacted where it is made, so that no handler, the CLI's or a Python API caller's own, sees a credential."""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

from orchestrator.uris import redact

MAX_SHOWN = 80                 # characters of a value shown in a message (tasks.plugins.SHOWN: the same)
MAX_TYPED = 300                # characters of a path a message repeats as the user typed it


def show(value: Any) -> str:
    """A value roughly as YAML spells it, at most MAX_SHOWN characters."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (bool, list, dict, tuple)) or value is None:
        try:
            text = json.dumps(value, default=str, allow_nan=True).replace('"', "'")
        except (ValueError, RecursionError):
            text = type(value).__name__
    else:
        text = repr(value)
    return cut(text, MAX_SHOWN)


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 3 characters and "..." where it is longer (`status` imports no tasks/,
    so tasks.plugins.cut is not read here)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name where it has none): what a one-line error quotes."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def as_typed(text: str) -> str:
    """A path or argument as the user typed it, at most MAX_TYPED characters; escaped (`show`) where it has a
    control character, which a terminal would otherwise act on."""
    if not text.isprintable():
        return show(text)
    return cut(text, MAX_TYPED)


def control_character(text: str) -> str | None:
    """The first control character of `text` (U+0000-U+001F, U+007F), or None: a path with one breaks every line
    that prints it, and NUL cannot be in a path at all."""
    return next((c for c in text if ord(c) < 32 or ord(c) == 127), None)


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural but for one: "1 file", "2 files" (nouns that take an -s)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def a_type(value: Any) -> str:
    """`type_name` with its article: "a list", "an integer"."""
    name = type_name(value)
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


# ----- where messages go -----------------------------------------------------------------------

LOGGER = "orchestrator"     # every module logs under it: logger(__name__)


class Redacted(logging.Filter):
    """Redacts a record's message, and the text of its traceback, on the logger that makes it (`uris.redact`),
    before any handler sees it: the CLI's `ConsoleHandler`, and the handlers of a Python API caller, which
    the record reaches as it is (a logger's filters run before its record propagates)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - arguments that do not format: the handler reports it (logging's way)
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def logger(name: str) -> logging.Logger:
    """The logger of module `name` (`logger(__name__)`), whose records are redacted where they are made."""
    log = logging.getLogger(name)
    if not any(isinstance(f, Redacted) for f in log.filters):
        log.addFilter(Redacted())
    return log


class ConsoleHandler(logging.Handler):
    """The CLI's output: INFO (the story of a run, progress lines) to stdout as it is; warnings and
    errors to stderr as `warning: ...` / `error: ...`; every message redacted (`uris.redact`: credentials
    in URIs never shown). Looks up sys.stdout/sys.stderr per message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = redact(self.format(record))
            if record.levelno >= logging.WARNING:
                stream, text = sys.stderr, ("error: " if record.levelno >= logging.ERROR else "warning: ") + text
            else:
                stream = sys.stdout
            stream.write(text + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


def to_console(only_if_unhandled: bool = False) -> None:
    """Show orchestrator's messages on the terminal (once per process). `only_if_unhandled`: only when
    no handler would take them otherwise (the Python API; the CLI always shows them)."""
    logger = logging.getLogger(LOGGER)
    if any(isinstance(h, ConsoleHandler) for h in logger.handlers):
        return
    if only_if_unhandled and logger.hasHandlers():
        return
    logger.addHandler(ConsoleHandler())
    logger.setLevel(logging.INFO)
