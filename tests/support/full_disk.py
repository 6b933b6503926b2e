"""A disk that fills: a pyarrow file system wrapper for the tests of writes that must leave nothing half done."""
from __future__ import annotations


class FullDisk:
    """A pyarrow file system whose writes to paths containing `where` stop with ENOSPC after half of
    the data; records the (temporary) paths it was asked to write."""

    def __init__(self, fs, where: str = ""):
        self._fs, self._where, self.opened = fs, where, []

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def open_output_stream(self, path):
        real = self._fs.open_output_stream(path)
        if self._where not in path:
            return real
        self.opened.append(path)

        class Stream:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                real.close()

            def write(self, data):
                real.write(data[: len(data) // 2])
                raise OSError(28, "No space left on device", path)

        return Stream()
