"""The log-mel front end shared by training and runtime.

One implementation serves both sides so train and serve cannot drift. The offline form equals
``librosa.feature.melspectrogram`` (centred frames, zero padding, periodic Hann, power 2) followed
by a fixed compression: ``power_to_db`` with a reference of 1.0 and no ``top_db`` clipping (``db``,
rtgenre's own models) or musicnn's ``log10(1 + 10000·power)`` (``log1p``). Neither depends on the
window's neighbours. The streaming form emits exactly the offline frames of the
concatenated signal, whatever the block sizes. The filterbank is an input (it comes from librosa
at training time and travels in the model bundle); this module never imports librosa.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LOG_COMPRESSIONS = ("db", "log1p")


@dataclass(frozen=True)
class MelParams:
    """A model's front end: it travels in the bundle so training and runtime compute the same features."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float = 11025.0
    amin: float = 1e-10  # power floor before dB: silence reads as -100 dB
    log: str = "db"  # compression: "db" (10·log10, fixed reference 1.0) or "log1p" (log10(1 + 10000·power))

    def __post_init__(self) -> None:
        if self.log not in LOG_COMPRESSIONS:
            raise ValueError(f"log compression must be one of {', '.join(LOG_COMPRESSIONS)}, not {self.log!r}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def frames(self, seconds: float) -> int:
        """Number of mel frames that span ``seconds`` of audio."""
        return max(1, round(seconds * self.frame_rate))

    def complete_frames(self, samples: int) -> int:
        """Number of whole FFT frames in ``samples`` of (already padded) signal."""
        return 0 if samples < self.n_fft else 1 + (samples - self.n_fft) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MelParams:
        return cls(**d)


_CHUNK_SAMPLES = 65536  # samples per FFT batch in MelFrontend.frames_of: its temporaries stay in L2


def periodic_hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def fit_window(frames: np.ndarray, n: int) -> np.ndarray:
    """Tile ``frames`` (time first) cyclically to exactly ``n`` rows.

    Inputs shorter than one window (a 2 s clip, a 3 s window) are classified by looping them:
    training pads its short clips the same way, so the model has seen such windows.
    """
    if len(frames) == 0:
        raise ValueError("cannot fit an empty frame sequence")
    reps = -(-n // len(frames))
    return np.concatenate([frames] * reps)[:n] if reps > 1 else frames[:n]


class MelFrontend:
    """Log-mel spectrogram, frames as rows: shape (time, n_mels), float32, compressed as ``params.log`` says."""

    def __init__(self, params: MelParams, filterbank: np.ndarray):
        if filterbank.shape != (params.n_mels, params.n_bins):
            raise ValueError(
                f"filterbank shape {filterbank.shape} does not match "
                f"(n_mels={params.n_mels}, n_fft//2+1={params.n_bins})"
            )
        self.params = params
        self._window = periodic_hann(params.n_fft)
        self._level_scale = 1.0 / (params.n_fft * float(np.sum(self._window.astype(np.float64) ** 2)))
        self._fb_t = np.ascontiguousarray(filterbank.T, dtype=np.float32)

    def frames_of(self, padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel and level (dBFS) of every complete frame of an already padded signal.

        The level is the frame's mean square from the power spectrum (Parseval), computed here
        because the spectrum is at hand; the silence gate uses it. Frames go through in chunks
        so the temporaries stay in cache (a pass over a 30 s track is about 1.5x faster).
        """
        p = self.params
        n = p.complete_frames(len(padded))
        mel = np.empty((n, p.n_mels), np.float32)
        level = np.empty(n, np.float32)
        if n:
            view = sliding_window_view(padded, p.n_fft)[:: p.hop_length]
            chunk = max(1, _CHUNK_SAMPLES // p.n_fft)  # 32 frames of 2048, 128 of musicnn's 512
            for i in range(0, n, chunk):
                spec = np.fft.rfft(view[i : i + chunk] * self._window, axis=1)
                power = np.square(spec.real) + np.square(spec.imag)
                two_sided = 2.0 * power.sum(axis=1) - power[:, 0] - power[:, -1]
                level[i : i + chunk] = 10.0 * np.log10(np.maximum(two_sided * self._level_scale, p.amin))
                mel[i : i + chunk] = power.astype(np.float32) @ self._fb_t
        if p.log == "log1p":
            return np.log10(np.multiply(mel, 10000.0, out=mel) + 1.0, out=mel), level
        return 10.0 * np.log10(np.maximum(mel, p.amin, out=mel), out=mel), level

    def mel(self, y: np.ndarray) -> np.ndarray:
        """Offline log-mel of a whole signal (centred frames, zero padding)."""
        half = self.params.n_fft // 2
        return self.frames_of(np.pad(np.asarray(y, np.float32), half))[0]

    def stream(self) -> StreamingMel:
        return StreamingMel(self)


class StreamingMel:
    """Incremental log-mel: each push returns only the frames that became complete."""

    def __init__(self, frontend: MelFrontend):
        self._fe = frontend
        p = frontend.params
        self._pending = np.zeros(p.n_fft // 2, np.float32)  # the left centring pad
        self.samples = 0
        self.frames = 0

    def push(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log-mel, level) of the frames this block completed."""
        self.samples += len(block)
        self._pending = np.concatenate([self._pending, np.asarray(block, np.float32)])
        mel, level = self._fe.frames_of(self._pending)
        self._pending = self._pending[len(mel) * self._fe.params.hop_length :]
        self.frames += len(mel)
        return mel, level

    def frames_after(self, samples: int) -> int:
        """The frames a push of ``samples`` more would complete."""
        return self._fe.params.complete_frames(len(self._pending) + samples)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The frames that need the right centring pad: call once at end of stream."""
        p = self._fe.params
        mel, level = self._fe.frames_of(np.concatenate([self._pending, np.zeros(p.n_fft // 2, np.float32)]))
        keep = max(0, 1 + self.samples // p.hop_length - self.frames)
        self.frames += min(keep, len(mel))
        self._pending = np.zeros(0, np.float32)
        return mel[:keep], level[:keep]
