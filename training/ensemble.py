"""Does averaging crnn2d with the fine-tuned musicnn help on new artists?

Both models' track probabilities are taken out of fold on the same artist-grouped fold splits: crnn2d's from
the fold checkpoints its comparison left (`compare --checkpoints`, seed s trained on fold split s), musicnn's
from fine-tuning its back end per fold as `finetune` does. The mix ``w · musicnn + (1 − w) · crnn2d`` is
scored for every weight, and on the artist-disjoint valid split, so no weight is picked on what it is
judged by.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .train import predict_tracks

WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.0)  # musicnn's share of the mix


@torch.no_grad()
def track_probs(model: torch.nn.Module, mels: list[np.ndarray], n: int, hop: int) -> np.ndarray:
    """A track's probabilities: the mean of its windows', as every CV figure here scores a track."""
    return np.stack([p.mean(0) for p in predict_tracks(model, mels, n, hop)])


def checkpoint_fold_model(fold: np.ndarray, path_of: Callable[[int], Path], load) -> Callable[[np.ndarray], object]:
    """``out_of_fold``'s fit for models already trained: the checkpoint of the fold the training tracks leave out."""

    def fit(train_idx: np.ndarray):
        held = np.setdiff1d(np.arange(len(fold)), train_idx)
        path = path_of(int(fold[held[0]]))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint (make it with compare --checkpoints)")
        return load(path)

    return fit


def mixes(crnn: np.ndarray, musicnn: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Track accuracy of every mix, by musicnn's weight."""
    return {f"{w:g}": round(float(((w * musicnn + (1 - w) * crnn).argmax(1) == labels).mean()), 4) for w in WEIGHTS}
