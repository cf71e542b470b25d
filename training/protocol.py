"""The evaluation protocol every recipe is judged by, in one place.

Stratified k-fold cross-validation over train + valid grouped by artist (every track of an artist, and all
its windows, on one side; ``folds_by`` "track" gives the flattering track-level figure, labelled as such),
the artist-disjoint train -> valid split where split lists exist, and its accuracy with the input turned
down. ``Collection`` is what the log-mel families are fitted on; ``fold_split_cv`` serves any recipe that
can fit a set of tracks and predict the others (the musicnn recipes, ``musicnn_run``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtgenre.frontend import MelFrontend, MelParams

from . import distill, transfer
from .crossval import out_of_fold
from .data import GENRES, Track, find_tracks, folds_of, has_artists, track_mel
from .evaluate import SLICE_SECONDS, Scores, level_accuracy, score
from .filterbank import mel_filterbank
from .train import Example, TrainConfig, predict_tracks, train

EVAL_HOP_S = 1.5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class FoldError(ValueError):
    """Too few tracks or artists for the folds asked for: a usage error of ``--folds``."""


@dataclass
class Collection:
    tracks: list[Track]
    mels: list[np.ndarray]
    labels: list[int]
    params: MelParams
    filterbank: np.ndarray
    data: dict
    teacher: distill.Teacher | None = None  # a run's training examples with soft labels (distillation)


def collection_tracks(data_root: Path, clips_root: Path | None, limit: int | None) -> list[Track]:
    """The train and valid tracks (and clips), at most ``limit`` per genre (tiny runs)."""
    tracks = find_tracks(data_root) + (find_tracks(clips_root, kind="clip") if clips_root else [])
    tracks = [t for t in tracks if t.split in ("train", "valid")]
    if limit:
        tracks = [t for g in GENRES for t in [t for t in tracks if t.genre == g][:limit]]
    return tracks


def load_collection(data_root: Path, clips_root: Path | None, limit: int | None, cache: Path) -> Collection:
    params = MelParams()
    filterbank = mel_filterbank(params)
    frontend = MelFrontend(params, filterbank)
    tracks = collection_tracks(data_root, clips_root, limit)
    log(f"{len(tracks)} tracks ({sum(t.kind == 'clip' for t in tracks)} clips); log-mel")
    mels = [track_mel(t, frontend, cache) for t in tracks]
    count = {g: {"full": 0, "clip": 0} for g in GENRES}
    for t in tracks:
        count[t.genre][t.kind] += 1
    data = {"data_root": str(data_root), "clips_root": str(clips_root) if clips_root else None,
            "splits": sorted({t.split for t in tracks}), "tracks_per_genre": count}  # fmt: skip
    return Collection(tracks, mels, [GENRES.index(t.genre) for t in tracks], params, filterbank, data)


def grouping(c: Collection, folds_by: str) -> str:
    """What the folds really are: artist folds need every track's artist, else they are track folds."""
    if folds_by == "artist" and not has_artists(c.tracks):
        log("no splits/artists.tsv for every track: folds are by track (labelled so)")
        return "track"
    return folds_by


def checkpoint_path(folder: Path | None, cfg: TrainConfig, run: str) -> Path | None:
    """Where one run of a family and seed keeps its checkpoint: a CV fold, the valid split or the final model."""
    variant = ("-ln" if cfg.level_norm else "") + (f"-d{cfg.distill:g}" if cfg.distill else "")
    return folder / f"{cfg.family}{variant}-s{cfg.seed}-{run}.pt" if folder else None


def attach_teacher(c: Collection, cfg: TrainConfig, extra_root: Path | None, wheel: Path | None, cache: Path) -> None:
    """With ``cfg.distill``: every run trains on soft labels of a musicnn teacher fitted on its own tracks."""
    if not cfg.distill:
        return
    extra = find_tracks(extra_root, kind="extra") if extra_root else []
    frontend = MelFrontend(c.params, c.filterbank)
    log(f"distillation: musicnn teacher, {len(extra)} unlabelled extra songs")
    c.teacher = distill.make_teacher(
        c.tracks, c.mels, c.labels, extra, [track_mel(t, frontend, cache) for t in extra],
        c.params.frames(transfer.EVAL_HOP_S), wheel or transfer.fetch_wheel(cache.parent / "wheels"), cache.parent,
        log=log,
    )  # fmt: skip
    c.data["extra_unlabelled"] = {"root": str(extra_root), "songs": len(extra)} if extra else None


def fit(c: Collection, idx, cfg: TrainConfig, checkpoint: Path | None = None):
    examples = c.teacher(idx) if c.teacher else [Example(c.mels[i], c.labels[i]) for i in idx]
    return train(examples, cfg, c.params.frames(cfg.window_s), checkpoint, log=log)


def evaluate(c: Collection, model, idx, cfg: TrainConfig) -> list[np.ndarray]:
    return predict_tracks(model, [c.mels[i] for i in idx], c.params.frames(cfg.window_s), c.params.frames(EVAL_HOP_S))


def slice_hits(c: Collection, model, idx) -> dict[str, list[bool]]:
    """Per slice length: is each non-overlapping slice of the 30 s tracks in ``idx`` right?"""
    full = [i for i in idx if c.tracks[i].kind == "full"]
    out = {}
    for seconds in SLICE_SECONDS:
        n = c.params.frames(seconds)
        probs = predict_tracks(model, [c.mels[i] for i in full], n, n)
        out[f"{seconds:g}s"] = [bool(h) for p, i in zip(probs, full, strict=True) for h in p.argmax(1) == c.labels[i]]
    return out


def fold_assignment(tracks: list[Track], folds: int, seed: int, by: str) -> np.ndarray:
    """``folds_of``, with too few tracks or artists for the folds a ``FoldError``."""
    try:
        return folds_of(tracks, folds, seed, by)
    except ValueError as e:
        raise FoldError(str(e)) from None


def cross_validate(
    c: Collection, cfg: TrainConfig, folds: int, checkpoints: Path | None, by: str = "artist"
) -> tuple[dict, dict]:
    """Scores of k-fold CV (all tracks, and 30 s tracks only) and each fold's training history."""
    fold = fold_assignment(c.tracks, folds, cfg.seed, by)
    hits: dict[str, list[bool]] = {}
    histories = {}

    def fit_fold(train_idx: np.ndarray):
        k = len(histories)
        log(f"{cfg.family} seed {cfg.seed}: fold {k + 1}/{folds}")
        model, histories[f"fold {k + 1}"] = fit(c, train_idx, cfg, checkpoint_path(checkpoints, cfg, f"{by}-f{k}"))
        return model

    def predict_fold(model, held: np.ndarray) -> list[np.ndarray]:
        for key, h in slice_hits(c, model, held).items():
            hits.setdefault(key, []).extend(h)
        return evaluate(c, model, held, cfg)

    probs = out_of_fold(fold, fit_fold, predict_fold)
    slice_acc = {k: round(float(np.mean(v)), 4) for k, v in hits.items() if v}
    full = [i for i, t in enumerate(c.tracks) if t.kind == "full"]
    return {
        "cv": score(probs, c.labels, slice_acc),
        "cv_full_tracks": score([probs[i] for i in full], [c.labels[i] for i in full]),
    }, histories


def valid_split(c: Collection, cfg: TrainConfig, checkpoints: Path | None = None,
                by_level: bool = False) -> tuple[Scores, dict[str, float]] | None:  # fmt: skip
    """The train -> valid split's scores (None without a valid part) and, with ``by_level``, its track
    accuracy at every input level; the train-part model comes from its checkpoint when one is there."""
    valid = [i for i, t in enumerate(c.tracks) if t.split == "valid"]
    if not valid:
        return None
    log(f"{cfg.family}: train split -> valid split")
    model, _ = fit(
        c, [i for i, t in enumerate(c.tracks) if t.split == "train"], cfg, checkpoint_path(checkpoints, cfg, "valid")
    )
    scores = score(evaluate(c, model, valid, cfg), [c.labels[i] for i in valid])
    return scores, valid_levels(c, model, valid, cfg.window_s) if by_level else {}


def valid_levels(c: Collection, model, valid: list[int], window_s: float) -> dict[str, float]:
    """Track accuracy of the valid tracks with the input turned down 0 to -40 dB."""
    n, hop = c.params.frames(window_s), c.params.frames(EVAL_HOP_S)
    return level_accuracy(lambda ms: predict_tracks(model.eval(), ms, n, hop), [c.mels[i] for i in valid],
                          [c.labels[i] for i in valid], 10 * np.log10(c.params.amin))  # fmt: skip


def fold_split_cv(tracks: list[Track], folds: int, seed: int, by: str, fit: Callable[[list[int]], object],
                  predict: Callable[[object, int], np.ndarray]) -> list[np.ndarray]:  # fmt: skip
    """Every track's window probabilities from the model ``fit`` on the other folds of fold split ``seed``."""
    return out_of_fold(fold_assignment(tracks, folds, seed, by), lambda idx: fit(list(idx)),
                       lambda fitted, held: [predict(fitted, i) for i in held])  # fmt: skip


def split_indices(tracks: list[Track]) -> tuple[list[int], list[int]]:
    """The train part's and the valid part's tracks, by index."""
    return [i for i, t in enumerate(tracks) if t.split == "train"], [
        i for i, t in enumerate(tracks) if t.split == "valid"
    ]
