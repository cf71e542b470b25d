"""How long to wait before reopening a source that failed: longer after each failure in a row, capped.

One schedule object for both places that reopen things: a configured stream's source (``runner.py``) and
a capture device (``capture.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays after the 1st, 2nd, ... failure in a row; the last one repeats. ``total`` counts every failure
    (what status reports), ``failures`` only those since the last success (what sets the delay)."""

    schedule: tuple[float, ...]
    failures: int = 0
    total: int = 0

    def next_delay(self) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        self.total += 1
        return self.schedule[min(self.failures, len(self.schedule)) - 1]

    def reset(self) -> None:
        """An attempt succeeded: the next failure starts the schedule again."""
        self.failures = 0
