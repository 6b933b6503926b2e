"""Where the CLI's messages go (orchestrator.messages.ConsoleHandler): the story of a run to stdout as it
is; warnings and errors to stderr with their prefix; credentials never shown."""
from __future__ import annotations

import logging
import math

import pytest

from orchestrator import messages
from orchestrator.messages import LOGGER, ConsoleHandler, counted, show, to_console


@pytest.mark.parametrize("level, stream, prefix", [
    (logging.INFO, "out", ""), (logging.WARNING, "err", "warning: "), (logging.ERROR, "err", "error: "),
    (logging.CRITICAL, "err", "error: "),
])
def test_each_level_goes_to_its_stream_with_its_prefix(capsys, level, stream, prefix):
    record = logging.LogRecord("orchestrator.x", level, __file__, 1, "storage s3://KEY:SECRET@bucket/runs", (), None)
    ConsoleHandler().emit(record)
    out, err = capsys.readouterr()
    written, other = (out, err) if stream == "out" else (err, out)
    assert written == f"{prefix}storage s3://***@bucket/runs\n" and other == ""


def test_values_are_shown_as_yaml_spells_them_and_shortened():
    assert (show(True), show(None), show([1, "a"]), show("x")) == ("true", "null", "[1, 'a']", "'x'")
    assert len(show("y" * 500)) == 80 and show("y" * 500).endswith("...")
    assert (counted(1, "file"), counted(0, "file"), counted(2, "file")) == ("1 file", "0 files", "2 files")


def test_each_type_is_named_as_yaml_calls_it_with_its_article():
    """`a_type`: "a list", "an integer" (the docstring's examples); the names are YAML's, not Python's
    (a dict is a mapping, a float a number, None null), and a bool is a boolean, not an integer."""
    from orchestrator.messages import a_type

    assert [a_type(v) for v in ({}, [], "x", True, 3, 1.5, None)] == [
        "a mapping", "a list", "a string", "a boolean", "an integer", "a number", "a null"]


def test_a_tuple_and_a_nan_are_shown_as_a_list_of_their_values():
    """YAML has no tuples: a tuple is shown as the list it was written as; a NaN inside still shows the
    values (not just the word `list`); a value of exactly MAX_SHOWN characters has nothing to shorten."""
    from orchestrator.messages import MAX_SHOWN

    assert show((1, "a")) == show([1, "a"]) == "[1, 'a']"
    assert show([0.5, math.nan]) == "[0.5, NaN]"
    exact = "y" * (MAX_SHOWN - 2)                    # repr adds the two quotes
    assert show(exact) == repr(exact) and len(show(exact)) == MAX_SHOWN


@pytest.fixture
def bare_loggers(monkeypatch):
    """`bare_loggers()`: the `orchestrator` logger, it and the root logger without handlers (called in the
    test itself: pytest adds its capturing handler to the root logger when the test starts); all put back after."""
    def make() -> logging.Logger:
        logger = logging.getLogger(LOGGER)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logging.getLogger(), "handlers", [])
        monkeypatch.setattr(logger, "level", logging.NOTSET)
        return logger

    return make


def test_the_console_is_added_once_and_shows_the_story_of_a_run(bare_loggers, capsys):
    """to_console: "once per process"; it shows INFO (the story of a run) on stdout, so the logger's level
    must let INFO through."""
    logger = bare_loggers()
    to_console()
    to_console()
    assert sum(isinstance(h, ConsoleHandler) for h in logger.handlers) == 1
    logging.getLogger(f"{LOGGER}.run").info("planned 9 tasks")
    assert capsys.readouterr().out == "planned 9 tasks\n"


def test_only_the_python_api_defers_to_a_handler_set_up_elsewhere(bare_loggers):
    """`only_if_unhandled` (the Python API): no console when a handler would take the messages already
    (here the root logger's); the CLI (`to_console()`) always shows them."""
    logger = bare_loggers()
    logging.getLogger().addHandler(logging.NullHandler())
    to_console(only_if_unhandled=True)
    assert not any(isinstance(h, ConsoleHandler) for h in logger.handlers)
    to_console()
    assert any(isinstance(h, ConsoleHandler) for h in logger.handlers)


def test_the_python_api_shows_messages_when_nothing_else_would(bare_loggers):
    logger = bare_loggers()
    to_console(only_if_unhandled=True)
    assert any(isinstance(h, ConsoleHandler) for h in logger.handlers)


@pytest.mark.parametrize("text, shown", [
    ("mmc-runs/default", "mmc-runs/default"), ("a" * 300, "a" * 300), ("a" * 301, "a" * 297 + "..."),
    ("/tmp/a\x1b[2Jb", "'/tmp/a\\x1b[2Jb'"), ("a\nb", "'a\\nb'"),
])
def test_a_path_is_repeated_as_typed_short_and_escaped(text, shown):
    """`as_typed`: a path as the user typed it, cut past MAX_TYPED characters, escaped (quoted) where it has a
    control character a terminal would act on."""
    assert messages.as_typed(text) == shown


def test_an_exceptions_first_line_skips_the_blank_lines_before_its_text():
    """`first_line`: what a one-line error quotes: the first line of the text (blank lines before it skipped)."""
    assert messages.first_line(ValueError("\n  boom\nTraceback ...")) == "boom"


def test_an_exception_without_text_is_named_by_its_type():
    assert messages.first_line(KeyError()) == "KeyError" and messages.first_line(OSError("  ")) == "OSError"


def test_the_last_line_of_an_exceptions_text_is_not_its_first():
    assert messages.first_line(OSError("cannot read plan.parquet\nmore detail")) == "cannot read plan.parquet"


def test_a_blank_or_a_printable_character_is_no_control_character():
    """`control_character`: U+0000-U+001F and U+007F only; a path with a blank (`/tmp/my runs`) has none."""
    assert messages.control_character("/tmp/my runs") is None
    assert messages.control_character("a\x7fb") == "\x7f" and messages.control_character("a\tb") == "\t"


def test_a_long_path_with_a_control_character_is_escaped_and_short():
    """`as_typed`: escaped through `show`, which also cuts it (a 5000-character path is never printed whole)."""
    shown = messages.as_typed("/tmp/a\n" + "b" * 5000)
    assert shown.startswith("'/tmp/a\\n") and len(shown) == messages.MAX_SHOWN and shown.endswith("...")


def test_a_value_too_deeply_nested_to_show_is_named_by_its_type():
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    assert show(nested) == "list"


def test_a_mapping_is_shown_with_yamls_words_for_true_and_null():
    """A mapping as YAML spells it: `true` and `null` inside it, not Python's `True` and `None`."""
    assert show({"a": None, "b": True}) == "{'a': null, 'b': true}"


SECRET = "wJalrXUtnFEMI-not-a-real-secret"


class _Kept(logging.Handler):
    """A Python API caller's own handler: keeps what it is handed, formatted, traceback included."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_modules_records_reach_a_callers_own_handler_redacted(bare_loggers):
    """A Python API caller with handlers of its own gets no `ConsoleHandler` (`to_console(only_if_unhandled)`):
    the records its handlers see are redacted where they are made, message, arguments and traceback."""
    bare_loggers()
    kept = _Kept()
    logging.getLogger().addHandler(kept)
    log = messages.logger(f"{LOGGER}.test_redaction")
    log.warning("tracking at %s unavailable", f"http://u:{SECRET}@127.0.0.1:9")
    try:
        raise OSError(f"cannot open s3://AKIA:{SECRET}@bucket/x")
    except OSError:
        log.exception("storage failed")
    assert len(kept.lines) == 2 and all(SECRET not in line for line in kept.lines), kept.lines
    assert "http://***@127.0.0.1:9" in kept.lines[0] and "s3://***@bucket/x" in kept.lines[1]
    assert messages.logger(f"{LOGGER}.test_redaction") is log and len(log.filters) == 1    # added once


def test_every_module_of_the_package_logs_through_a_redacting_logger():
    """Every logger named after a module of `orchestrator` (a module's `logger(__name__)`) redacts its records,
    so that a module that logs with `logging.getLogger(__name__)` instead fails here."""
    import importlib
    import pkgutil

    import orchestrator

    names = [m.name for m in pkgutil.walk_packages(orchestrator.__path__, "orchestrator.")
             if not m.ispkg and not m.name.endswith("__main__")]     # that one runs the command line
    for name in names:
        importlib.import_module(name)
    made = {name: logging.Logger.manager.loggerDict.get(name) for name in names}
    loggers = {name: log for name, log in made.items() if isinstance(log, logging.Logger)}
    assert len(loggers) >= 20, sorted(loggers)
    assert [name for name, log in loggers.items() if not any(isinstance(f, messages.Redacted) for f in log.filters)] == []
