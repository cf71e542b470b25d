"""Every file stream of a daemon paced from one thread.

A file stream at real time is a loop of "decode a block, hand it over, sleep until the next is due".
On a thread per stream, hundreds of streams meant thousands of wake-ups a second, each taking the
GIL from the scheduler. Here one thread wakes every ``PASS_S`` and delivers every block of every file
stream that fell due meanwhile: a wake-up for each block (800 a second at 200 streams of 0.25 s blocks)
cost the daemon 15 % more CPU (`bench/README.md`), and a block reaches its stream at most ``PASS_S``
after its audio's time. A stream's runner still owns its source (open, loop, retry with backoff) and
sleeps in ``run`` until its blocks end; a block is due once the audio before it has played (``due_at``,
the rule ``pipeline.paced`` follows too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

PASS_S = 0.05  # between the pacer's passes: a block, or a stream registered meanwhile, waits no longer


def due_at(start: float, delivered: int, sample_rate: int, speed: float) -> float:
    """When a stream's next block is due: once the ``delivered`` samples before it have played at ``speed``."""
    return start + delivered / (sample_rate * speed)


@dataclass(eq=False)
class _Job:
    blocks: Iterator[np.ndarray]
    feed: Callable[[np.ndarray], None]
    sample_rate: int
    speed: float
    start: float = field(default_factory=time.monotonic)
    delivered: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def due_at(self) -> float:
        return due_at(self.start, self.delivered, self.sample_rate, self.speed)


class Pacer:
    """Delivers the blocks of every registered stream when due, from one thread (started on first use)."""

    def __init__(self):
        self._jobs: list[_Job] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run(self, blocks: Iterable[np.ndarray], feed: Callable[[np.ndarray], None], sample_rate: int,
            speed: float) -> None:  # fmt: skip
        """Hand ``blocks`` (at ``sample_rate``) to ``feed`` at ``speed`` × real time; returns when they end (a source
        told to ``stop`` ends at its next block) and raises what iterating them raised, in the caller's thread."""
        job = _Job(iter(blocks), feed, sample_rate, speed)
        with self._lock:
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="file-pacer", daemon=True)
                self._thread.start()
        job.done.wait()  # no polling: hundreds of runners wait here without waking
        if job.error is not None:
            raise job.error

    def _loop(self) -> None:
        while True:
            start = time.monotonic()
            with self._lock:
                jobs = list(self._jobs)
            for job in jobs:
                self._deliver(job)
            time.sleep(max(0.0, start + PASS_S - time.monotonic()))

    def _deliver(self, job: _Job) -> None:
        """Every block of ``job`` due now."""
        while job.due_at <= time.monotonic():
            try:
                block = next(job.blocks)
            except StopIteration:
                self._finish(job)
                return
            except BaseException as e:  # noqa: BLE001 - raised again in the stream's own thread, which reports it
                job.error = e
                self._finish(job)
                return
            job.feed(block)
            job.delivered += len(block)

    def _finish(self, job: _Job) -> None:
        with self._lock:
            self._jobs.remove(job)
        job.done.set()
