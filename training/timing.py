"""What a graph costs: ONNX Runtime on one CPU thread, as the runtime runs each stream's work."""

from __future__ import annotations

import time
from pathlib import Path

import onnxruntime as ort


def cpu_session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ms_per_run(session: ort.InferenceSession, feed: dict, seconds: float = 2.0) -> float:
    """Milliseconds per ``session.run`` on ``feed`` after one warm-up, timed over at least ``seconds`` and three
    runs: a fixed count took 10 s for musicnn and 30 ms for a small CNN."""
    session.run(None, feed)
    runs, t0 = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - t0 < seconds:
        session.run(None, feed)
        runs += 1
    return (time.perf_counter() - t0) / runs * 1e3
