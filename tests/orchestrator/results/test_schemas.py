"""The result tables' schemas (`orchestrator.results.schemas`): which files were written under an older schema
version (compaction rewrites those). The columns a row cannot be without: test_rows.py."""
from __future__ import annotations

from orchestrator.results.schemas import SCHEMA_VERSION, SCHEMA_VERSION_KEY, written_before


def test_a_file_of_an_older_schema_version_or_of_none_was_written_before():
    """Older: a version below the current one, or no version recorded (files from before versions were)."""
    current = int(SCHEMA_VERSION)
    assert written_before(None) and written_before({}) and written_before({b"other": b"x"})
    assert all(written_before({SCHEMA_VERSION_KEY: str(v).encode()}) for v in range(current))


def test_a_file_of_the_current_or_a_later_schema_version_was_not_written_before():
    """Versions are numbers: 10 is later than 3 (compared as text, '10' < '3'), and a file a later version wrote is
    never rewritten down to this one."""
    current = int(SCHEMA_VERSION)
    for version in (current, current + 1, 10, 100, 10 * current):
        if version >= current:
            assert not written_before({SCHEMA_VERSION_KEY: str(version).encode()}), version


def test_a_version_that_is_not_a_number_is_not_older_and_is_no_error():
    for version in (b"x", b"3a", b"-1", b"\xff"):
        assert written_before({SCHEMA_VERSION_KEY: version}) is False, version

