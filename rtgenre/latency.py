"""Hop-to-publish latency of a stream: recent values for percentiles, cumulative buckets for Prometheus."""

from __future__ import annotations

import numpy as np

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Recent:
    """The last ``size`` values in an array allocated once: percentiles over a recent window, and
    memory that does not grow however long a stream runs."""

    def __init__(self, size: int = 2048):
        self._values = np.zeros(size)
        self._n = 0
        self._percentiles: tuple[int, tuple, list] = (0, (), [])  # (values seen, qs, percentiles) last computed

    def add(self, x: float) -> None:
        self._values[self._n % len(self._values)] = x
        self._n += 1

    def values(self) -> np.ndarray:
        return self._values[: min(self._n, len(self._values))]

    def percentiles_ms(self, *qs: float) -> list[float | None]:
        """Percentiles in ms, computed again only after new values: a stream that falls behind sends a heartbeat
        with them every second and few windows, and sorting its values for each cost an overloaded daemon a third
        of its scheduler's time."""
        if self._percentiles[:2] != (self._n, qs):
            self._percentiles = (self._n, qs, [percentile_ms(self.values(), q) for q in qs])
        return self._percentiles[2]


class Histogram:
    """Cumulative counts of latencies per bucket since the stream began, as Prometheus histograms count."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S):
        self.bounds = bounds
        self.counts = np.zeros(len(bounds) + 1, np.int64)  # the last bucket is +Inf
        self.sum = 0.0

    def add(self, x: float) -> None:
        self.counts[np.searchsorted(self.bounds, x)] += 1
        self.sum += x

    def to_json(self) -> dict:
        cumulative = np.cumsum(self.counts).tolist()
        return {"le": [*self.bounds, "+Inf"], "counts": cumulative, "sum": round(self.sum, 6)}


def percentile_ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values * 1e3, q)), 3) if len(values) else None
