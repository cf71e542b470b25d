"""A real `rtgenre serve` under load, as a user runs it: N looping file streams at real time, the daemon pinned
to one core with ``taskset``, a subscriber and a status poller on the other cores.

What one run reports: windows published per second against what real time asks (one per stream per hop),
latency p50/p99 (the message's ``wall`` minus its ``captured``), the slowest ``rtgenre status`` answer, the
windows the daemon said it skipped, and its resident set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from rtgenre.errors import RtgenreError
from rtgenre.feed import decode, request

FEED, CONTROL = "tcp://127.0.0.1:5611", "tcp://127.0.0.1:5612"
HOP_S = 0.5
STATUS_EVERY_S = 1.0


@dataclass
class Load:
    streams: int
    windows_per_s: float
    asked_per_s: float
    latency_p50_s: float
    latency_p99_s: float
    status_max_s: float  # the slowest status answer (inf: one went unanswered)
    skipped: int  # windows the daemon says it skipped, all streams
    rss_mb: float

    @property
    def fed(self) -> float:
        return self.windows_per_s / self.asked_per_s

    def sustained(self) -> bool:
        """The issue's bar: ≥ 95 % of the windows real time asks, latency p50 ≤ 2 s, status within 2 s."""
        return self.fed >= 0.95 and self.latency_p50_s <= 2.0 and self.status_max_s <= 2.0


def rss_mb(pid: int) -> float:
    """A process's resident set in MB (the benchmarks' memory figure)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def run(n: int, files: list[Path], model: str, seconds: float = 20.0, warm_s: float = 8.0, core: int = 0,
        settings: dict | None = None) -> Load:  # fmt: skip
    """``n`` streams through one ``serve`` for ``warm_s`` + ``seconds``; figures over the last ``seconds``."""
    tmp = Path(tempfile.mkdtemp())
    streams = [{"id": f"s{i}", "source": "file", "path": str(files[i % len(files)]), "loop": True, "hop": HOP_S}
               for i in range(n)]  # fmt: skip
    cfg = {"feed": {"endpoint": FEED, "hwm": 100_000}, "control": {"endpoint": CONTROL}, "metrics": {"port": 0},
           "web": {"port": 0}, "provider": "cpu", "threads": 1, "model": model, "streams": streams,
           **(settings or {})}  # fmt: skip
    (tmp / "config.yaml").write_text(json.dumps(cfg))
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "rtgenre", "serve", "--config", str(tmp / "config.yaml")]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(FEED)
    windows: list[tuple[float, float]] = []  # (received, wall - captured)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            if sub.poll(100):
                _, msg = decode(sub.recv())
                if msg["type"] == "window":
                    windows.append((time.monotonic(), msg["wall"] - msg["captured"]))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        start = time.monotonic()
        status_s, last = [], {}
        while time.monotonic() - start < warm_s + seconds:
            t0 = time.monotonic()
            try:
                last = request(CONTROL, {"cmd": "status"}, 10.0)
                took = time.monotonic() - t0
            except RtgenreError:
                took = float("inf")
            if t0 - start >= warm_s:
                status_s.append(took)
            time.sleep(max(0.0, STATUS_EVERY_S - (time.monotonic() - t0)))
        end = time.monotonic()
        rss = rss_mb(proc.pid)
    finally:
        stop.set()
        listener.join(2)
        sub.close(0)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # a stalled daemon: its figures are already in
            proc.kill()
            proc.wait()
    measured = [lat for t, lat in windows if t >= end - seconds]
    lat = np.array(measured) if measured else np.array([np.inf])
    skipped = sum(s.get("skipped_windows", 0) for s in last.get("streams", {}).values())
    return Load(n, len(measured) / seconds, n / HOP_S, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)),
                max(status_s, default=float("inf")), skipped, rss)  # fmt: skip


def sustained(files: list[Path], model: str, lo: int, hi: int, step: int = 20, **kw) -> tuple[int, list[Load]]:
    """The most streams in [lo, hi] (a multiple of ``step``) one core sustains, by bisection; every run made."""
    runs = []
    lo, hi = lo // step, hi // step
    while lo < hi:
        mid = (lo + hi + 1) // 2
        runs.append(run(mid * step, files, model, **kw))
        lo, hi = (mid, hi) if runs[-1].sustained() else (lo, mid - 1)
    return lo * step, runs
