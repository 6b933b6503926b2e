"""The error of bad input found before any work (the CLI exits 2 and writes nothing)."""
from __future__ import annotations


class SweepError(RuntimeError):
    """A problem found before any task ran: storage, data, lock, cluster, endpoints, a changed spec."""
