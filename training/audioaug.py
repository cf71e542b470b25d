"""Audio-domain augmentation: what differs between two artists' recordings of one genre, not the genre.

With four rock artists a back end learns those four recordings' sound (their EQ, their room, their
mastering) as much as rock. Each transform changes one such trait of a whole track, in the waveform,
before the streaming front end and encoder: the fine-tuned layers then see it exactly as they would
see a recording made that way. Each is drawn once per track from a seed, so an augmented copy is a
fixed, cacheable training track.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import soxr

RATE = 16000


def _spectral(y: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``y`` through a zero-phase filter of magnitude ``gain(frequency in Hz)``."""
    spectrum = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1 / RATE)
    return np.fft.irfft(spectrum * gain(f), len(y)).astype(np.float32)


def eq(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A spectral tilt of ±3 dB per octave around 1 kHz and one peak or notch of ±9 dB."""
    slope, centre, boost, width = rng.uniform(-0.5, 0.5), np.exp(rng.uniform(np.log(150), np.log(6000))), \
        rng.uniform(-9, 9), rng.uniform(0.3, 1.0)  # fmt: skip

    def gain(f: np.ndarray) -> np.ndarray:
        octaves = np.log2(np.maximum(f, 20.0) / 1000.0)
        peak = boost * np.exp(-0.5 * (np.log2(np.maximum(f, 20.0) / centre) / width) ** 2)
        return 10.0 ** ((slope * 6.0 * octaves + peak) / 20.0)

    return _spectral(y, gain)


def band(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Band-limited, as a telephone, an old record or a low-bitrate codec leaves it: a high-pass at 40-300 Hz
    and a low-pass at 2.5-7 kHz, each a steep but smooth roll-off."""
    low, high = rng.uniform(40, 300), rng.uniform(2500, 7000)
    return _spectral(y, lambda f: 1.0 / np.sqrt((1 + (low / np.maximum(f, 1.0)) ** 8) * (1 + (f / high) ** 8)))


def compress(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Loud mastering: a fast compressor (ratio 2-6 above a threshold 6-20 dB under the peak) then tanh saturation."""
    peak = float(np.abs(y).max()) or 1.0
    x = y / peak
    frame = 256
    env = np.sqrt(np.convolve(x**2, np.ones(frame) / frame, mode="same")) + 1e-6
    threshold, ratio = 10 ** (-rng.uniform(6, 20) / 20), rng.uniform(2, 6)
    gain = np.where(env > threshold, (env / threshold) ** (1 / ratio - 1), 1.0)
    drive = rng.uniform(1.0, 4.0)
    out = np.tanh(drive * x * gain / np.abs(x * gain).max()) / np.tanh(drive)
    return (out * peak).astype(np.float32)


def reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A room: exponentially decaying noise (RT60 0.3-1.5 s), mixed in at 15-45 % wet."""
    rt60, wet = rng.uniform(0.3, 1.5), rng.uniform(0.15, 0.45)
    t = np.arange(int(rt60 * RATE)) / RATE
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    ir /= np.sqrt(np.sum(ir**2))
    n = len(y) + len(ir) - 1
    tail = np.fft.irfft(np.fft.rfft(y, n) * np.fft.rfft(ir, n), n)[: len(y)]
    return ((1 - wet) * y + wet * tail * (np.std(y) / (np.std(tail) + 1e-9))).astype(np.float32)


def pitch(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up or down by 0.5-2 semitones, tempo with it (a tape or turntable at another speed)."""
    factor = 2 ** (rng.choice([-1, 1]) * rng.uniform(0.5, 2.0) / 12)
    return soxr.resample(y, RATE * factor, RATE).astype(np.float32)


AUGMENTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "eq": eq,
    "band": band,
    "compress": compress,
    "reverb": reverb,
    "pitch": pitch,
}


def mix(y: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``y`` with ``other`` (another song, looped or cut to length) under it at 12-20 dB less power."""
    other = np.resize(other, len(y))
    scale = np.std(y) / (np.std(other) + 1e-9) * 10 ** (-rng.uniform(12, 20) / 20)
    return (y + scale * other).astype(np.float32)
