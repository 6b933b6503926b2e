"""A clock a test moves by hand, for code that reads a monotonic clock and sleeps."""
from __future__ import annotations


class FakeClock:
    """Calling it (or `monotonic()`) reads the time; `sleep` moves it and records the wait. `max_waits`:
    a loop that sleeps more often than that fails instead of running away."""

    def __init__(self, max_waits: int | None = None):
        self.now, self.slept, self.max_waits = 0.0, [], max_waits

    def __call__(self) -> float:
        return self.now

    monotonic = __call__

    def sleep(self, seconds: float) -> None:
        assert self.max_waits is None or len(self.slept) < self.max_waits, f"still waiting after {self.max_waits} waits"
        self.slept.append(seconds)
        self.now += seconds
