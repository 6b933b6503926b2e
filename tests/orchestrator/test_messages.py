"""Where the CLI's messages go (orchestrator.messages.ConsoleHandler): the story of a run to stdout as it
is; warnings and errors to stderr with their prefix; credentials never shown."""
from __future__ import annotations

import logging

import pytest

from orchestrator.messages import ConsoleHandler, counted, show


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
