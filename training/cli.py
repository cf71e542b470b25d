"""`python -m training`: cross-validate, evaluate on the valid split, train the final model, export."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import click
import numpy as np

from rtgenre.frontend import MelFrontend, MelParams

from .card import model_card
from .data import GENRES, Track, find_tracks, stratified_folds, track_mel
from .evaluate import score
from .export import write_bundle
from .filterbank import mel_filterbank
from .train import Example, TrainConfig, predict_tracks, train

EVAL_HOP_S = 1.5


@click.command()
@click.option(
    "--data",
    "data_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="GTZAN copy: the shared Ogg layout, Kaggle genres_original/ or original genres/.",
)
@click.option(
    "--clips",
    "clips_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Optional folder of 2–3 s clips in the same layout (shared gtzan_clips/).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
@click.option("--family", default="cnn", show_default=True)
@click.option("--window", "window_s", default=3.0, show_default=True, help="Window length in seconds (1–3).")
@click.option("--hop", "hop_s", default=0.5, show_default=True, help="Default runtime hop written to the bundle.")
@click.option("--epochs", default=TrainConfig.epochs, show_default=True)
@click.option("--windows-per-epoch", default=TrainConfig.windows_per_epoch, show_default=True)
@click.option("--folds", default=5, show_default=True, help="Track-level cross-validation folds (0 to skip).")
@click.option("--seed", default=0, show_default=True)
@click.option("--limit", type=int, help="Use at most this many tracks per genre (tiny runs for tests).")
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=Path.home() / ".cache" / "rtgenre" / "mel",
    show_default=True,
    help="Where computed log-mel spectrograms are cached.",
)
def main(
    data_root, clips_root, out, family, window_s, hop_s, epochs, windows_per_epoch, folds, seed, limit, cache
) -> None:
    """Train a genre model on GTZAN with honest, track-level evaluation and export it as a bundle."""
    started = time.time()
    cfg = replace(
        TrainConfig(), family=family, window_s=window_s, epochs=epochs, windows_per_epoch=windows_per_epoch, seed=seed
    )
    params = MelParams()
    filterbank = mel_filterbank(params)
    frontend = MelFrontend(params, filterbank)
    tracks = find_tracks(data_root) + (find_tracks(clips_root, kind="clip") if clips_root else [])
    tracks = [t for t in tracks if t.split in ("train", "valid")]
    if limit:
        tracks = [t for g in GENRES for t in [t for t in tracks if t.genre == g][:limit]]
    click.echo(f"{len(tracks)} tracks ({sum(t.kind == 'clip' for t in tracks)} clips); computing log-mel", err=True)
    mels = [track_mel(t, frontend, cache) for t in tracks]
    labels = [GENRES.index(t.genre) for t in tracks]
    n_frames, hop = params.frames(window_s), params.frames(EVAL_HOP_S)

    def fit(idx) -> object:
        return train([Example(mels[i], labels[i]) for i in idx], cfg, n_frames, log=lambda m: click.echo(m, err=True))

    def evaluate(model, idx):
        return predict_tracks(model, [mels[i] for i in idx], n_frames, hop)

    results = {}
    if folds:
        fold = stratified_folds(tracks, folds, seed)
        probs: list = [None] * len(tracks)
        for k in range(folds):
            click.echo(f"cross-validation fold {k + 1}/{folds}", err=True)
            held = np.flatnonzero(fold == k)
            model = fit(np.flatnonzero(fold != k))
            for i, p in zip(held, evaluate(model, held), strict=True):
                probs[i] = p
        results["cv"] = score(probs, labels)
        results["cv_full_tracks"] = _subset(probs, labels, tracks, "full")
    valid = [i for i, t in enumerate(tracks) if t.split == "valid"]
    if valid:
        click.echo("train split -> valid split", err=True)
        model = fit([i for i, t in enumerate(tracks) if t.split == "train"])
        results["valid"] = score(evaluate(model, valid), [labels[i] for i in valid])
    click.echo("final model on all tracks", err=True)
    model = fit(range(len(tracks)))
    data = _describe(tracks, data_root, clips_root)
    extra = {
        "family": family,
        "training": {
            "config": asdict(cfg),
            "data": data,
            "eval_hop_seconds": EVAL_HOP_S,
            "wall_seconds": round(time.time() - started, 1),
        },
        "validation": {k: v.to_json() for k, v in results.items()},
    }
    meta_name = out.name
    card = model_card(meta_name, family, cfg, params, data, results)
    write_bundle(out, model, meta_name, GENRES, params, filterbank, window_s, hop_s, extra, card)
    click.echo(
        json.dumps(
            {
                k: {"window_acc": v.window_acc, "track_acc": v.track_acc, "macro_f1": v.macro_f1}
                for k, v in results.items()
            }
        )
    )


def _subset(probs, labels, tracks: list[Track], kind: str):
    idx = [i for i, t in enumerate(tracks) if t.kind == kind]
    return score([probs[i] for i in idx], [labels[i] for i in idx])


def _describe(tracks: list[Track], data_root: Path, clips_root: Path | None) -> dict:
    count = {g: {"full": 0, "clip": 0} for g in GENRES}
    for t in tracks:
        count[t.genre][t.kind] += 1
    return {
        "data_root": str(data_root),
        "clips_root": str(clips_root) if clips_root else None,
        "splits": sorted({t.split for t in tracks}),
        "tracks_per_genre": count,
    }
