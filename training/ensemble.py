"""Does averaging crnn2d with the fine-tuned musicnn help on new artists?

Both models' track probabilities are taken out of fold on the same artist-grouped fold splits: crnn2d's from
the fold checkpoints its comparison left (`compare --checkpoints`, seed s trained on fold split s), musicnn's
from fine-tuning its back end per fold as `finetune` does. The mix ``w · musicnn + (1 − w) · crnn2d`` is
scored for every weight, and on the artist-disjoint valid split, so no weight is picked on what it is
judged by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import finetune
from .crossval import out_of_fold
from .data import GENRES
from .musicnn_run import MusicnnRun
from .protocol import EVAL_HOP_S, Collection, checkpoint_path, fold_assignment, log, split_indices
from .train import TrainConfig, load_checkpoint, predict_tracks

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


def mix_everywhere(c: Collection, run: MusicnnRun, checkpoints: Path, folds: int, fold_seeds: int) -> dict:
    """Every weight's track accuracy out of fold on each fold split, their mean, and on the valid split."""
    labels, ft, crnn_cfg = np.array(c.labels), finetune.FinetuneConfig(), TrainConfig(family="crnn2d")
    n, hop = c.params.frames(crnn_cfg.window_s), c.params.frames(EVAL_HOP_S)

    def ft_fit(idx) -> finetune.Tail:
        return finetune.fit(run.model.backbone, [run.feats[i] for i in idx], [run.labels[i] for i in idx], ft)

    def ft_probs(tail: finetune.Tail, held) -> np.ndarray:
        return np.stack([finetune.probs(tail, run.feats[i]).mean(0) for i in held])

    def crnn_probs(model, held) -> np.ndarray:
        return track_probs(model, [c.mels[i] for i in held], n, hop)

    def load(path: Path):
        return load_checkpoint(path, "crnn2d", c.params.n_mels, len(GENRES))

    result = {}
    for s in range(fold_seeds):
        fold, cfg = fold_assignment(c.tracks, folds, s, "artist"), replace(crnn_cfg, seed=s)
        fit = checkpoint_fold_model(fold, lambda k, cfg=cfg: checkpoint_path(checkpoints, cfg, f"artist-f{k}"), load)
        crnn = np.stack(out_of_fold(fold, fit, crnn_probs))
        result[f"fold split {s}"] = mixes(crnn, np.stack(out_of_fold(fold, ft_fit, ft_probs)), labels)
        log(f"fold split {s}: {result[f'fold split {s}']}")
    splits = [result[f"fold split {s}"] for s in range(fold_seeds)]
    result["mean over fold splits"] = {w: round(float(np.mean([r[w] for r in splits])), 4) for w in splits[0]}
    train, valid = split_indices(c.tracks)
    if valid:
        crnn = crnn_probs(load(checkpoint_path(checkpoints, crnn_cfg, "valid")), valid)
        result["valid"] = mixes(crnn, ft_probs(ft_fit(train), valid), labels[valid])
    return result
