"""Augmentation of log-mel windows, all in the mel domain so it costs microseconds per window.

Gain is an additive shift in fixed-reference dB. Time stretch resamples the frame axis and pitch
shift moves the mel bands: both are approximations of their audio-domain counterparts (a pitch
shift of k semitones is not exactly a constant shift of mel bands), cheap enough to draw fresh
for every window of every epoch. Background noise is added in the power domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    gain_db: float = 6.0  # random gain ± this
    stretch: float = 0.15  # time stretch rate in [1 - s, 1 + s]
    pitch_bands: int = 2  # shift by up to this many mel bands up or down
    noise_p: float = 0.3  # chance of background noise
    noise_snr_db: tuple[float, float] = (10.0, 30.0)
    freq_masks: int = 2
    freq_mask_max: int = 12
    time_masks: int = 2
    time_mask_max: int = 20
    mixup_alpha: float = 0.2


# "light" (the default) is level, masking and mixup, but no change of tempo, pitch or noise floor, which can
# move a window across the cues that separate genres: "full" cross-validates 5.6 points worse for the CNN
RECIPES = {"full": AugmentConfig(), "light": AugmentConfig(stretch=0.0, pitch_bands=0, noise_p=0.0)}
DEFAULT_RECIPE = "light"


def crop(mel: np.ndarray, n: int, rng: np.random.Generator, stretch: float = 0.0) -> tuple[np.ndarray, int]:
    """A random ``n``-frame window (time shift), time-stretched by a random rate, and the frame it starts at
    (a teacher's label for that place); short input loops."""
    rate = rng.uniform(1 - stretch, 1 + stretch) if stretch else 1.0
    need = max(2, int(np.ceil(n * rate)))
    if len(mel) < need:
        mel = np.concatenate([mel] * (-(-need // len(mel))))
        mel = np.roll(mel, -int(rng.integers(len(mel))), axis=0)
    start = int(rng.integers(len(mel) - need + 1))
    window = mel[start : start + need]
    if need == n:
        return window.copy(), start
    pos = np.linspace(0, need - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, need - 1)
    frac = (pos - lo)[:, None].astype(np.float32)
    return window[lo] * (1 - frac) + window[hi] * frac, start


def augment(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Gain, pitch shift, background noise and SpecAugment masks on one (frames, mels) window."""
    x = x + np.float32(rng.uniform(-cfg.gain_db, cfg.gain_db))
    if cfg.pitch_bands:
        k = int(rng.integers(-cfg.pitch_bands, cfg.pitch_bands + 1))
        if k > 0:
            x = np.concatenate([np.repeat(x[:, :1], k, axis=1), x[:, :-k]], axis=1)
        elif k < 0:
            x = np.concatenate([x[:, -k:], np.repeat(x[:, -1:], -k, axis=1)], axis=1)
    if rng.random() < cfg.noise_p:
        power = 10 ** (x / 10)
        snr = rng.uniform(*cfg.noise_snr_db)
        noise = power.mean() / 10 ** (snr / 10) * rng.exponential(1.0, x.shape)
        x = (10 * np.log10(power + noise)).astype(np.float32)
    floor = x.min()
    for _ in range(cfg.freq_masks):
        w = int(rng.integers(0, cfg.freq_mask_max + 1))
        f = int(rng.integers(0, x.shape[1] - w + 1))
        x[:, f : f + w] = floor
    for _ in range(cfg.time_masks):
        w = int(rng.integers(0, cfg.time_mask_max + 1))
        t = int(rng.integers(0, x.shape[0] - w + 1))
        x[t : t + w, :] = floor
    return x


def mixup(x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blend each example with a random partner, labels alike."""
    if alpha <= 0:
        return x, y
    lam = rng.beta(alpha, alpha, size=(len(x), 1)).astype(np.float32)
    perm = rng.permutation(len(x))
    return lam[:, :, None] * x + (1 - lam[:, :, None]) * x[perm], lam * y + (1 - lam) * y[perm]
