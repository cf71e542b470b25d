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

    def add(self, x: float) -> None:
        self._values[self._n % len(self._values)] = x
        self._n += 1

    def values(self) -> np.ndarray:
        return self._values[: min(self._n, len(self._values))]


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
