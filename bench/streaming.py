"""What the stream benchmarks share (no torch): N streams through the daemon's scheduling path.

Each step hands every stream one hop of real audio, runs the streaming mel of each on the CPU, steps every
stream's encoder in batched calls, classifies all due windows in batched calls, smooths and publishes them on
a real socket, as `serve`'s scheduler does (without its source threads: ``serving.py`` runs a real `serve`).
N streams are sustained in real time when a step takes less than the hop it represents.
"""

from __future__ import annotations

import time

import numpy as np

from rtgenre.encoder import ENCODER_BATCH
from rtgenre.feed import Publisher
from rtgenre.pipeline import StreamPipeline, StreamSettings, classify_due, due_windows

HOP_S = 0.5


def step_times(bundle, clf, pub: Publisher, audio: list[np.ndarray], n: int, steps: int = 20,
               encoder_batch: int = ENCODER_BATCH) -> np.ndarray:  # fmt: skip
    """Seconds of each of ``steps`` hops of all ``n`` streams (after the first windows fill), through the daemon's
    own driver functions: ``due_windows`` (every stream's encoder chunk stepped ``encoder_batch`` streams a call,
    on the classifier's provider) then ``classify_due``."""
    rate = bundle.meta.frontend.sample_rate
    pipes = [StreamPipeline(bundle, StreamSettings(id=f"s{i}", hop=HOP_S), pub, clf.provider) for i in range(n)]
    hop = int(HOP_S * rate)
    warm = int(bundle.meta.window_s / HOP_S) + 3  # the window, and the encoder's lag
    times = []
    for k in range(warm + steps):
        t0 = time.perf_counter()
        for i, p in enumerate(pipes):
            y = audio[i % len(audio)]
            start = (k * hop + i * 997) % (len(y) - hop)
            p.feed(y[start : start + hop])
        classify_due(clf, due_windows(pipes, encoder_batch))
        if k >= warm:
            times.append(time.perf_counter() - t0)
    return np.array(times)


def sustained(measure, lo: int, hi: int) -> int:
    """Largest n in [lo, hi] whose step fits in one hop (binary search on a monotone cost)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if measure(mid) < HOP_S else (lo, mid - 1)
    return lo
