"""The cross-validation protocol every recipe is judged by: fold assignment and out-of-fold predictions.

Every item is scored by the one model that never saw it in training. What shares a fold decides what the
figure means: ``data.folds_of`` groups a collection's tracks by artist (the honest default) or by track,
and the fusion experiments group a track's windows (``groups``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

M = TypeVar("M")


def assign_folds(labels: Sequence[int], k: int, seed: int, groups: Sequence | None = None) -> np.ndarray:
    """Fold index of every item, stratified by label; with ``groups``, every group inside one fold."""
    largest = int(np.bincount(labels).max(initial=0))
    if largest < k:
        raise ValueError(f"{k} folds need a class with at least {k} items; the largest has {largest}")
    if groups is None:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    fold = np.empty(len(labels), int)
    for f, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        fold[held] = f
    return fold


def out_of_fold(
    fold: np.ndarray, fit: Callable[[np.ndarray], M], predict: Callable[[M, np.ndarray], Sequence[np.ndarray]]
) -> list[np.ndarray]:
    """Each item's prediction by the model fitted on every other fold: ``fit(train_idx)`` once per fold, then
    ``predict(model, held_idx)`` for the fold it held out."""
    out: list = [None] * len(fold)
    for k in range(int(fold.max()) + 1):
        model = fit(np.flatnonzero(fold != k))
        held = np.flatnonzero(fold == k)
        for i, p in zip(held, predict(model, held), strict=True):
            out[i] = p
    return out
