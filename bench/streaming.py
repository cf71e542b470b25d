"""What the stream benchmarks share (no torch): N streams through the daemon's scheduling path.

Each step hands every stream one hop of real audio, runs the streaming mel of each on the CPU, classifies
all due windows in one batched call, smooths and publishes them on a real socket, as `serve` does.
N streams are sustained in real time when a step takes less than the hop it represents.
"""

from __future__ import annotations

import time

import numpy as np

from rtgenre.feed import Publisher
from rtgenre.pipeline import StreamPipeline, StreamSettings

HOP_S = 0.5


def step_times(bundle, clf, pub: Publisher, audio: list[np.ndarray], n: int, steps: int = 20) -> np.ndarray:
    """Seconds of each of ``steps`` hops of all ``n`` streams (after the first windows fill)."""
    rate = bundle.meta.frontend.sample_rate
    pipes = [StreamPipeline(bundle, StreamSettings(id=f"s{i}", hop=HOP_S), pub) for i in range(n)]
    hop = int(HOP_S * rate)
    warm = int(bundle.meta.window_s / HOP_S) + 1
    times = []
    for k in range(warm + steps):
        t0 = time.perf_counter()
        due = []
        for i, p in enumerate(pipes):
            y = audio[i % len(audio)]
            start = (k * hop + i * 997) % (len(y) - hop)
            p.feed(y[start : start + hop])
            due += [(p, w) for w in p.windows()]
        if due:
            probs = clf.predict(np.stack([w.mel for _, w in due]))
            for (p, w), pr in zip(due, probs, strict=True):
                p.emit([w], pr[None])
        if k >= warm:
            times.append(time.perf_counter() - t0)
    return np.array(times)


def sustained(measure, lo: int, hi: int) -> int:
    """Largest n in [lo, hi] whose step fits in one hop (binary search on a monotone cost)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if measure(mid) < HOP_S else (lo, mid - 1)
    return lo
