"""Streaming feature encoders: a bundle's ``encoder.onnx`` turns each new mel frame into a feature row once.

A bundle with an encoder classifies windows of feature rows instead of mel frames: the expensive
convolutions of a model like musicnn run once per frame, not once per overlapping window (six
times at a 3 s window and 0.5 s hop). The encoder sees a level-normalised input: each frame's power
is scaled by the reference over the mean power of the frames trailing it, so the verdict does not
follow the input level. Training computes its features through this same class, so the rows a model
learns from are the rows it is served.

A row needs ``right`` frames of mel after its frame (and the mid-end ``mid`` more), so rows trail the
mel frames by ``right + mid`` frames; the stream's start and end are padded with silence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class EncoderSpec:
    """A bundle's ``encoder`` in ``meta.json``: the step graph's context and the level normalisation."""

    left: int  # mel frames of context before a new frame
    right: int  # ... and after it
    mid: int  # front-end frames each side of a finished row
    front_width: int  # front-end maps per frame (the step's state)
    width: int  # feature row width (the window model's input)
    reference_power: float  # where each frame's level is put (0: left where it is)
    level_frames: int  # frames of the trailing mean power that sets a frame's level

    @property
    def lag(self) -> int:
        """Mel frames a row waits for after its own frame."""
        return self.right + self.mid

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderSpec:
        spec = cls(**{f.name: {"int": int, "float": float}[f.type](d[f.name]) for f in fields(cls)})
        if min(spec.left, spec.right, spec.mid) < 0 or min(spec.width, spec.front_width, spec.level_frames) < 1:
            raise ValueError("encoder sizes must be non-negative and widths positive")
        return spec


class TrailingLevel:
    """Each frame's mean power over it and the ``n - 1`` frames before it (fewer at the start)."""

    def __init__(self, n: int):
        self.n = n
        self._history = np.zeros(0)

    def push(self, power: np.ndarray) -> np.ndarray:
        p = np.concatenate([self._history, np.asarray(power, np.float64)])
        c = np.concatenate([[0.0], np.cumsum(p)])
        end = np.arange(len(self._history) + 1, len(p) + 1)
        start = np.maximum(0, end - self.n)
        ref = (c[end] - c[start]) / (end - start)
        self._history = p[-(self.n - 1) :] if self.n > 1 else p[:0]
        return ref


class StreamEncoder:
    """One stream's encoder state: dB mel frames (and their levels) in, feature rows (and the same levels) out."""

    def __init__(self, spec: EncoderSpec, session, n_mels: int):
        self.spec = spec
        self._session = session
        self._level = TrailingLevel(spec.level_frames)
        self._x = np.zeros((spec.left, n_mels), np.float32)  # silence before the stream
        self._context = np.zeros((1, 2 * spec.mid, spec.front_width), np.float32)
        self._levels = np.zeros(0, np.float32)  # of frames in, not yet out as rows
        self._skip = spec.mid  # the first step's first rows are of frames before the stream
        self.frames_in = 0
        self.rows_out = 0

    def push(self, db: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows (and levels) of the frames that became complete."""
        power = np.power(10.0, np.asarray(db, np.float64) / 10.0)
        if self.spec.reference_power > 0 and len(power):
            power *= (self.spec.reference_power / np.maximum(self._level.push(power.mean(axis=1)), 1e-10))[:, None]
        x = np.log10(1.0 + 10000.0 * power).astype(np.float32)
        self.frames_in += len(x)
        return self._step(x, np.asarray(level, np.float32))

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the last frames, with silence after the stream: call once at its end."""
        missing = self.frames_in - self.rows_out
        lag = self.spec.lag
        rows, level = self._step(np.zeros((lag, self._x.shape[1]), np.float32), np.zeros(lag, np.float32))
        return rows[:missing], level[:missing]

    def whole(self, db: np.ndarray) -> np.ndarray:
        """The rows of a whole signal's frames (a new encoder's only call): what a stream of it gets."""
        return np.concatenate([self.push(db, np.zeros(len(db), np.float32))[0], self.flush()[0]])

    def _step(self, x: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.spec
        self._x = np.concatenate([self._x, x])
        self._levels = np.concatenate([self._levels, level])
        n = len(self._x) - s.left - s.right
        if n <= 0:
            return np.zeros((0, s.width), np.float32), np.zeros(0, np.float32)
        front, rows = self._session.run(None, {"x": self._x[None], "context": self._context})
        self._context = np.concatenate([self._context, front], axis=1)[:, -2 * s.mid :] if s.mid else self._context
        self._x = self._x[n:]
        rows = rows[0][self._skip :]
        self._skip = max(0, self._skip - n)
        out_level, self._levels = self._levels[: len(rows)], self._levels[len(rows) :]
        self.rows_out += len(rows)
        return rows, out_level
