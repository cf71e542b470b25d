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

ENCODER_BATCH = 8  # streams per encoder call: fewer calls, and larger batches cost more per stream on one core
_DB_TO_LN = np.float32(np.log(10.0) / 10.0)  # dB to the natural log of power
_LOG_GAIN = 10000.0  # musicnn's log compression: log10(1 + 10000 power)


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
    """One stream's encoder state: dB mel frames (and their levels) in, feature rows (and the same levels) out.

    Frames are stepped in multiples of ``chunk`` (the rows do not depend on how many a step takes), so a
    scheduler can step the due frames of many streams in one call (``step_together``); ``push`` steps one
    stream's alone."""

    def __init__(self, spec: EncoderSpec, session, n_mels: int, chunk: int = 1):
        self.spec = spec
        self.chunk = max(1, chunk)
        self.next_step = self.chunk  # new frames the next step takes (the first may be shorter: ``align``)
        self.session = session  # shared by every stream of the bundle (``run`` is thread-safe)
        self.batched = session.get_inputs()[0].shape[0] != 1  # an older graph takes one stream per call
        self._level = TrailingLevel(spec.level_frames)
        self._x = np.zeros((spec.left, n_mels), np.float32)  # silence before the stream
        self._context = np.zeros((1, 2 * spec.mid, spec.front_width), np.float32)
        self._levels = np.zeros(0, np.float32)  # of frames in, not yet out as rows
        self._skip = spec.mid  # the first step's first rows are of frames before the stream
        self._rows: list[np.ndarray] = []  # stepped, not yet taken
        self._row_levels: list[np.ndarray] = []
        self.frames_in = 0
        self.rows_out = 0

    @property
    def due(self) -> int:
        """New frames steps can take now (those with their right context): the next step's, then whole chunks."""
        ready = self._ready
        return 0 if ready < self.next_step else self.next_step + (ready - self.next_step) // self.chunk * self.chunk

    @property
    def wanted(self) -> int:
        """New frames still to add before a step is due (0: one is)."""
        return max(0, self.next_step - self._ready)

    @property
    def _ready(self) -> int:
        """New frames held with their right context."""
        return len(self._x) - self.spec.left - self.spec.right

    def align(self, first: int) -> None:
        """Make the first step take ``first`` new frames (then chunks), before any frame is added: chunks that end
        where a window's rows do let each window out as soon as its audio is in, not up to a chunk later."""
        if self.frames_in:
            raise RuntimeError("align before the first frames")
        self.next_step = first if 0 < first < self.chunk else self.chunk

    def add(self, db: np.ndarray, level: np.ndarray) -> None:
        """Hand over dB mel frames (and their levels); ``step`` or ``step_together`` turns them into rows."""
        x = np.multiply(np.asarray(db, np.float32), _DB_TO_LN)  # in place from here: float32 is 3 times float64's speed
        np.exp(x, out=x)  # power
        if self.spec.reference_power > 0 and len(x):
            trailing = np.maximum(self._level.push(x.mean(axis=1, dtype=np.float64)), 1e-10)
            x *= (_LOG_GAIN * self.spec.reference_power / trailing).astype(np.float32)[:, None]
        else:
            x *= np.float32(_LOG_GAIN)
        np.log10(np.add(x, 1.0, out=x), out=x)  # musicnn's log(1 + 10000 power)
        self.frames_in += len(x)
        self._x = np.concatenate([self._x, x])
        self._levels = np.concatenate([self._levels, np.asarray(level, np.float32)])

    def step(self, n: int | None = None) -> None:
        """Step this stream alone: every due chunk, a call each (the calls ``step_together`` makes, so the rows
        are the same to the bit), or ``n`` frames in one call (a whole file's long runs; the last step)."""
        if n is None:
            while self.due:
                self.step(self.next_step)
        elif n > 0:
            front, rows = self.session.run(None, self.inputs(n))
            self.absorb(n, front, rows[0])

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows (and levels) stepped since the last take."""
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, self.spec.width), np.float32)
        level = np.concatenate(self._row_levels) if self._row_levels else np.zeros(0, np.float32)
        self._rows, self._row_levels = [], []
        return rows, level

    def push(self, db: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows (and levels) of the frames that became complete, in whole chunks."""
        self.add(db, level)
        self.step()
        return self.take()

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows not yet taken and those of the last frames, with silence after the stream: call once at its
        end (the last step takes any number of frames)."""
        wanted = self.frames_in - self.rows_out + sum(len(r) for r in self._rows)
        lag = self.spec.lag
        self._x = np.concatenate([self._x, np.zeros((lag, self._x.shape[1]), np.float32)])
        self._levels = np.concatenate([self._levels, np.zeros(lag, np.float32)])
        self.step(len(self._x) - self.spec.left - self.spec.right)
        rows, level = self.take()
        return rows[:wanted], level[:wanted]

    def whole(self, db: np.ndarray, level: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows (and levels) of a whole signal's frames (a new encoder's only call) in two long calls: what a
        stream of it gets, to float rounding (another step length sums the convolutions in another order)."""
        self.add(db, np.zeros(len(db), np.float32) if level is None else level)
        self.step(self.due)
        rows, levels = self.take()
        last, last_levels = self.flush()
        return np.concatenate([rows, last]), np.concatenate([levels, last_levels])

    def inputs(self, n: int) -> dict[str, np.ndarray]:
        """The step graph's inputs for ``n`` new frames."""
        return {"x": self._x[None, : n + self.spec.left + self.spec.right], "context": self._context}

    def absorb(self, n: int, front: np.ndarray, rows: np.ndarray) -> None:
        """Take in one step's outputs for ``n`` new frames: the front maps ``front`` (1, n, width) and ``rows``."""
        mid = self.spec.mid
        self.next_step = self.chunk
        self._context = np.concatenate([self._context, front], axis=1)[:, -2 * mid :] if mid else self._context
        self._x = self._x[n:]
        rows = rows[self._skip :]
        self._skip = max(0, self._skip - n)
        self._rows.append(rows)
        self._row_levels.append(self._levels[: len(rows)])
        self._levels = self._levels[len(rows) :]
        self.rows_out += len(rows)


def step_together(encoders: list[StreamEncoder], max_batch: int = ENCODER_BATCH) -> int:
    """Step the due chunks of many streams' encoders in calls of up to ``max_batch`` streams (each its next step,
    grouped by its length so their inputs stack), until none is due; the rows are each stream's own ``step``'s.
    Returns the calls made."""
    calls = 0
    while due := [e for e in encoders if e.due]:
        groups: dict[tuple[int, int], list[StreamEncoder]] = {}
        for e in due:
            groups.setdefault((id(e.session), e.next_step if e.batched else -id(e)), []).append(e)
        for group in groups.values():
            for start in range(0, len(group), max_batch):
                part = group[start : start + max_batch]
                n = part[0].next_step
                feeds = [e.inputs(n) for e in part]
                x = np.concatenate([f["x"] for f in feeds])
                context = np.concatenate([f["context"] for f in feeds])
                front, rows = part[0].session.run(None, {"x": x, "context": context})
                for i, e in enumerate(part):
                    e.absorb(n, front[i : i + 1], rows[i])
                calls += 1
    return calls
