"""The mel filterbank, made by librosa once at training time and shipped in the bundle."""

from __future__ import annotations

import librosa
import numpy as np

from rtgenre.frontend import MelParams


def mel_filterbank(params: MelParams) -> np.ndarray:
    return librosa.filters.mel(
        sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax
    ).astype(np.float32)
