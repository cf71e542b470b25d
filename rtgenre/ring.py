"""Fixed-capacity FIFO ring buffer for audio samples and mel frames.

A producer that outruns its consumer overwrites the oldest unread rows; every lost row is
counted in ``overruns`` so the loss is reported, never silent. One producer and one consumer
may use it from different threads (a PortAudio callback and the pipeline): the lock is held
only for the copies.
"""

from __future__ import annotations

import threading

import numpy as np


class Ring:
    """A fixed-capacity ring of rows; writes past capacity drop the oldest and are counted, never grow memory."""

    def __init__(self, capacity: int, row_shape: tuple[int, ...] = (), dtype=np.float32):
        if capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self.capacity = capacity
        self._buf = np.zeros((capacity, *row_shape), dtype)
        self._head = 0  # total rows ever written
        self._tail = 0  # total rows ever consumed or lost
        self.overruns = 0
        self._lock = threading.Lock()

    @property
    def available(self) -> int:
        return self._head - self._tail

    @property
    def written(self) -> int:
        return self._head

    @property
    def consumed(self) -> int:
        return self._tail

    def write(self, rows: np.ndarray) -> int:
        """Append rows; returns how many unread rows were lost to make room."""
        n = len(rows)
        with self._lock:
            if n > self.capacity:
                rows, skipped = rows[-self.capacity :], n - self.capacity
            else:
                skipped = 0
            lost = max(0, self._head - self._tail + n - self.capacity)
            start = (self._head + skipped) % self.capacity
            first = min(len(rows), self.capacity - start)
            self._buf[start : start + first] = rows[:first]
            self._buf[: len(rows) - first] = rows[first:]
            self._head += n
            self._tail += lost
            self.overruns += lost
            return lost

    def peek(self, n: int) -> np.ndarray:
        """A copy of the oldest ``n`` unread rows, left unread."""
        with self._lock:
            return self._copy(n)

    def advance(self, n: int) -> None:
        with self._lock:
            self._tail += min(n, self._head - self._tail)

    def read(self, n: int) -> np.ndarray:
        """Take the oldest ``n`` unread rows (atomically, so a writer cannot slip in between)."""
        with self._lock:
            out = self._copy(n)
            self._tail += n
            return out

    def _copy(self, n: int) -> np.ndarray:
        if n > self._head - self._tail:
            raise ValueError(f"asked for {n} rows with only {self._head - self._tail} available")
        start = self._tail % self.capacity
        first = min(n, self.capacity - start)
        if first == n:
            return self._buf[start : start + n].copy()
        return np.concatenate([self._buf[start:], self._buf[: n - first]])
