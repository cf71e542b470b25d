"""One stream's audio in, classifier windows out: audio ring -> streaming mel (-> streaming encoder) ->
frame ring -> windows.

A window carries what its message will need (times, level, silence, padding, arrival), so the
classifier can batch windows of many streams and each stream still publishes its own.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .encoder import StreamEncoder
from .frontend import MelFrontend, fit_window
from .ring import Ring

MIN_INPUT_S = 0.5  # shorter input gets no genre: one looped 0.1 s is not evidence of anything


@dataclass
class Window:
    """One window ready for the classifier, with the times and level its message will carry."""

    t0: float  # audio seconds since the stream began
    t1: float
    mel: np.ndarray  # (frames, n_mels), or (frames, row width) of an encoder's feature rows
    level_dbfs: float
    silent: bool  # below the silence gate: no genre is claimed
    padded: bool  # shorter than a window, looped to fill it
    arrived: float  # time.monotonic() when its last sample was handed to the pipeline
    captured: float  # wall-clock time its last sample was captured (handed over, for files)


class Windower:
    """Samples at the model rate -> complete windows every hop.

    Audio waits in a ring until the scheduler asks for windows, so a capture thread only ever copies
    samples; the frame ring holds one window and one hop of mel rows (each row's last value is the
    frame's level, which the silence gate reads). With an ``encoder`` the rows are its feature rows, which
    trail the audio by the encoder's lag."""

    def __init__(self, frontend: MelFrontend, window_s: float, hop_s: float, silence_dbfs: float,
                 audio_buffer_s: float, encoder: StreamEncoder | None = None,
                 backlog_s: float | None = None, whole: bool = False):  # fmt: skip
        p = frontend.params
        self.sample_rate = p.sample_rate
        self.silence_dbfs = silence_dbfs
        self._win = p.frames(window_s)
        self._hop = p.frames(hop_s)
        self._frame_rate = p.frame_rate
        self._samples_per_frame = p.hop_length
        self._mel = frontend.stream()
        self._encoder = encoder
        if encoder is not None and encoder.chunk == self._hop:  # a window's last row ends a chunk: out at once
            encoder.align((self._win + encoder.spec.mid) % encoder.chunk)
        self.audio = Ring(int(audio_buffer_s * p.sample_rate))
        self._n_mels = p.n_mels
        self.frames = Ring(self._win + self._hop, ((encoder.spec.width if encoder else p.n_mels) + 1,))
        self.emitted = 0  # windows returned so far
        self._whole = whole  # a whole file handed over in long blocks: the encoder steps them in long calls
        self._backlog = None if backlog_s is None else int(backlog_s * p.sample_rate)
        self._hop_samples = self._hop * p.hop_length
        self._wait_samples = self._hop_samples if backlog_s is None else min(self._hop_samples, self._backlog // 2)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # mel frames (no encoder) not yet in the ring
        self.skipped_samples = 0  # audio dropped unheard because the scheduler fell behind (``backlog_s``)
        self._fed = 0
        self._fed_wall = 0.0
        self._handed: deque[tuple[int, float]] = deque()  # (samples fed so far, time.monotonic()) of each block

    def feed(self, block: np.ndarray, newest_sample_time: float | None = None) -> None:
        """Hand over mono samples; ``newest_sample_time`` is the wall-clock capture time of the
        block's last sample (now, if not given)."""
        self.audio.write(block)
        self._fed += len(block)
        self._fed_wall = time.time() if newest_sample_time is None else newest_sample_time
        self._handed.append((self._fed, time.monotonic()))

    @property
    def audio_time(self) -> float:
        return (self._mel.samples + self.skipped_samples + self.audio.available) / self.sample_rate

    @property
    def skipped_windows(self) -> int:
        """Hops of audio skipped unheard (whole hops are dropped): the windows a stream did not get."""
        return self.skipped_samples // self._hop_samples

    @property
    def too_short(self) -> bool:
        """The stream gave no window and less than ``MIN_INPUT_S`` of audio: too little to judge."""
        return self.emitted == 0 and self._fed < MIN_INPUT_S * self.sample_rate

    def prepare(self, force: bool = False) -> None:
        """Turn buffered audio into mel frames, handed to the encoder (``StreamEncoder.add``) when there is one,
        so that a scheduler can step many streams' encoders together before taking their ``windows``. With a
        ``backlog_s`` bound, audio older than that is dropped unheard (counted): a scheduler that falls behind
        then does bounded work per stream instead of a growing backlog. Audio waits in the ring until it
        completes the next rows or a hop of it waits (half the backlog at most, so that waiting is never taken
        for falling behind; ``force``: it goes now), so a stream's front end runs about once a window, not once
        a block: the same frames, ready when the rows that need them are, for about a tenth less of a daemon's CPU."""
        available = self.audio.available
        if self._backlog is not None and available > self._backlog:
            drop = (available - self._backlog) // self._hop_samples * self._hop_samples + self._hop_samples
            self.audio.read(drop)
            self.skipped_samples += drop
            available -= drop
        if available and (force or available >= self._wait_samples
                          or self._mel.frames_after(available) >= self._frames_wanted()):  # fmt: skip
            self._hand(*self._mel.push(self.audio.read(available)))

    def _frames_wanted(self) -> int:
        """Mel frames still to come before new rows can: the encoder's next step, else the next window."""
        if self._encoder is not None:
            return self._encoder.wanted
        return self._win - self.frames.available - sum(len(mel) for mel, _ in self._pending)

    def windows(self, final: bool = False, prepare: bool = True) -> list[Window]:
        """The windows the buffered audio completed (``prepare`` first, unless a scheduler just did: audio that
        came since then waits for its next pass, so that every encoder step is one of its batched ones).
        ``final``: the stream has ended, so the last frames are flushed and input shorter than a window is
        looped into one."""
        if prepare or final:
            self.prepare(force=final)
        if final:
            self._hand(*self._mel.flush())
        now = time.monotonic()
        out = self._frames_in(*self._rows(), now)
        if final:
            if self._encoder is not None:
                out += self._frames_in(*self._encoder.flush(), now)
            long_enough = self._fed >= MIN_INPUT_S * self.sample_rate
            if self.emitted == 0 and not out and self.frames.available and long_enough:
                out.append(self._window(self.frames.peek(self.frames.available), now, padded=True))
        self.emitted += len(out)
        return out

    @property
    def encoder(self) -> StreamEncoder | None:
        return self._encoder

    def _hand(self, mel: np.ndarray, level: np.ndarray) -> None:
        if self._encoder is None:
            self._pending.append((mel, level))
        else:
            self._encoder.add(mel, level)

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows ready for the frame ring: mel frames, or the encoder's rows of its due chunks."""
        if self._encoder is not None:
            # a stream: what a scheduler's ``step_together`` left (nothing), else this stream's chunks alone;
            # a whole file: every due frame in one call (the same rows to float rounding, in far fewer calls)
            self._encoder.step(self._encoder.due if self._whole else None)
            return self._encoder.take()
        mel, level = zip(*self._pending, strict=True) if self._pending else ((), ())
        self._pending = []
        return (np.concatenate(mel) if mel else np.zeros((0, self._n_mels), np.float32),
                np.concatenate(level) if level else np.zeros(0, np.float32))  # fmt: skip

    def _frames_in(self, mel: np.ndarray, level: np.ndarray, now: float) -> list[Window]:
        """The windows the new rows complete, as views of one array of the ring's rows and the new ones (copied
        once, when the classifier stacks its batch; a whole file's 55 windows a track overlap six times)."""
        out: list[Window] = []
        if not len(mel):
            return out
        rows = np.concatenate([mel, level[:, None]], axis=1)
        first = self.frames.consumed
        held = np.concatenate([self.frames.peek(self.frames.available), rows])
        for start in range(0, len(rows), self._hop):
            self.frames.write(rows[start : start + self._hop])
            while self.frames.available >= self._win:
                at = self.frames.consumed - first
                out.append(self._window(held[at : at + self._win], now, padded=False))
                self.frames.advance(self._hop)
        return out

    def _window(self, rows: np.ndarray, now: float, padded: bool) -> Window:
        t0 = (self.frames.consumed + self.skipped_samples / self._samples_per_frame) / self._frame_rate
        t1 = min(t0 + len(rows) / self._frame_rate, self._fed / self.sample_rate)
        level = float(10 * np.log10(np.mean(10 ** (rows[:, -1].astype(np.float64) / 10))))
        return Window(
            t0=round(t0, 3),
            t1=round(t1, 3),
            mel=fit_window(rows[:, :-1], self._win),
            level_dbfs=level,
            silent=level < self.silence_dbfs,
            padded=padded,
            arrived=self._arrival(round(t1 * self.sample_rate), now),
            captured=self._fed_wall - (self._fed / self.sample_rate - t1),
        )

    def _arrival(self, sample: int, now: float) -> float:
        """When the block holding ``sample`` was handed over: an encoder's rows trail their audio, and a
        scheduler may take a while to come round, so a window's latency counts from its audio."""
        while len(self._handed) > 1 and self._handed[0][0] < sample:
            self._handed.popleft()
        return self._handed[0][1] if self._handed and self._handed[0][0] >= sample else now
