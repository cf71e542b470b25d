"""Rhythm as a view of its own: how each window's onsets repeat, which musicnn's short filters may not carry.

Reggae's offbeat, disco's four-on-the-floor and hip hop's loops are periodicities of a second or so;
musicnn's temporal filters span at most 2 s and are pooled away. Per 3 s window (the pooled musicnn
windows' 1.5 s hop) and per quarter of the mel bands: the onset strength (half-wave rectified dB
rise, summed over the bands) and its autocorrelation at lags up to 1.5 s, normalised by lag 0, so the
feature says how the onsets repeat, not how loud they are.
"""

from __future__ import annotations

import numpy as np

from . import transfer
from .data import Track

BANDS = 4
MAX_LAG_S = 1.5


def window_features(db: np.ndarray) -> np.ndarray:
    """(frames, mels) dB -> (bands × lags,) onset autocorrelation of one window."""
    lags = transfer.PARAMS.frames(MAX_LAG_S)
    rise = np.maximum(0.0, np.diff(db.astype(np.float64), axis=0))
    out = []
    for band in np.array_split(rise, BANDS, axis=1):
        onset = band.sum(axis=1)
        onset = onset - onset.mean()
        full = np.correlate(onset, onset, "full")[len(onset) - 1 :]
        out.append(full[1 : lags + 1] / max(full[0], 1e-9))
    return np.concatenate(out).astype(np.float32)


def track_features(tracks: list[Track], mels: list[np.ndarray], cache, log=print) -> list[np.ndarray]:
    """Per track, cached: the rhythm feature of every 3 s window at the pooled musicnn windows' hop."""
    n, hop = transfer.PARAMS.frames(transfer.WINDOW_S), transfer.PARAMS.frames(transfer.EVAL_HOP_S)

    def compute(i: int) -> np.ndarray:
        return np.stack([window_features(w) for w in transfer.patches(mels[i], n, hop)])

    return transfer.per_track(tracks, mels, cache, f"rhythm|{BANDS}|{MAX_LAG_S}", compute, log, "rhythm")
