"""Temporal smoothing of window probabilities and the silence gate.

An exponential moving average with a time constant in seconds (independent of the hop), and
hysteresis on the reported genre so it does not flicker between two close candidates. Silent
windows claim no genre; a long silence resets the average so the next song starts fresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .limits import limits
from .messages import GENRE, SILENCE, UNCERTAIN, SmoothedState


@dataclass(frozen=True)
class SmoothingConfig:
    """The smoother's settings, as a stream's `smoothing:` in the config names them: time constant, hysteresis
    margin, confidence floor and the silence gate."""

    time_constant: float = field(default=3.0, metadata=limits(0.01, 600))  # s, the EMA's time constant
    switch_margin: float = field(default=0.1, metadata=limits(0.0, 1.0))  # a challenger must lead by this much
    min_confidence: float = field(default=0.4, metadata=limits(0.0, 1.0))  # below this the state is "uncertain"
    silence_dbfs: float = field(default=-60.0, metadata=limits(-120.0, 0.0))  # windows quieter are silence
    silence_reset: float = field(default=3.0, metadata=limits(0.0, 3600))  # s of silence that forget the average


@dataclass(frozen=True)
class Smoothed:
    """The smoothed state a message carries: probabilities, reported genre, its confidence and the state name."""

    probs: np.ndarray | None
    top: int | None
    confidence: float
    state: SmoothedState


class Smoother:
    """Per-stream EMA with hysteresis on the reported genre and a silence gate that can reset it."""

    def __init__(self, n_labels: int, config: SmoothingConfig = SmoothingConfig()):
        self.config = config
        self._n = n_labels
        self._avg: np.ndarray | None = None
        self._top: int | None = None
        self._silent_for = 0.0

    def reset(self) -> None:
        """Forget the average, as after a long silence."""
        self._avg, self._top = None, None

    def update(self, probs: np.ndarray | None, dt: float) -> Smoothed:
        """Fold in one window's probabilities (``None`` for a silent window) ``dt`` s after the last."""
        c = self.config
        if probs is None:
            self._silent_for += dt
            if self._silent_for >= c.silence_reset:
                self.reset()
            return Smoothed(self._avg, None, 0.0, SILENCE)
        self._silent_for = 0.0
        if self._avg is None:
            self._avg = probs.astype(np.float64)
        else:
            alpha = 1.0 - math.exp(-dt / c.time_constant)
            self._avg = (1.0 - alpha) * self._avg + alpha * probs
        best = int(np.argmax(self._avg))
        if self._top is None or self._avg[best] >= self._avg[self._top] + c.switch_margin:
            self._top = best
        conf = float(self._avg[self._top])
        return Smoothed(self._avg, self._top, conf, GENRE if conf >= c.min_confidence else UNCERTAIN)

    def current(self) -> Smoothed:
        """The state now, for heartbeats to late-joining subscribers."""
        if self._avg is None:
            return Smoothed(None, None, 0.0, SILENCE if self._silent_for else UNCERTAIN)
        conf = float(self._avg[self._top])
        state = SILENCE if self._silent_for else GENRE if conf >= self.config.min_confidence else UNCERTAIN
        return Smoothed(self._avg, None if self._silent_for else self._top, conf, state)
