"""The log-mel fusion experiment: a collection's audio and its ``lyrics.json``, through the same
fusion module as the descriptor experiment, with a model family's embedding as the audio side.

GTZAN has no lyrics, so this runs on a collection that has them (the seed layout: ``lyrics.json``
beside the genre folders, track id -> text). Tracks without lyrics use the learned empty-lyrics
embedding. Every 3 s window of a track (1.5 s hop) is an example of that track; folds keep a
track's windows together and a track's verdict is the mean of its windows' probabilities.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from torch import nn

from .data import GENRES, Track
from .fusion import FitConfig, Fusion, MLPEncoder, Single, cross_validate
from .fusion_report import tables
from .lyrics import LyricEncoder
from .models import build, fit_standardize
from .train import track_windows

WINDOW_S = 3.0
HOP_S = 1.5


class MelEncoder(nn.Module):
    """A model family without its last layer: log-mel windows -> the embedding its head reads."""

    def __init__(self, family: str, n_mels: int, mels: list[np.ndarray]):
        super().__init__()
        self.net = build(family, n_mels, len(GENRES))
        fit_standardize(self.net, mels)
        head = self.net.head if hasattr(self.net, "head") else self.net.mlp
        self.dim = head[-1].in_features
        head[-1] = nn.Identity()

    def forward(self, mel):
        return self.net(mel)


def track_lyrics(tracks: list[Track], lyrics: dict[str, str]) -> list[str | None]:
    """Each track's lyrics by its id, ``genre/stem`` or ``stem`` (``blues.00001``); None if absent."""
    return [lyrics.get(t.key, lyrics.get(t.path.stem)) for t in tracks]


def run(tracks: list[Track], mels: list[np.ndarray], params, texts: list[str | None], encoder: LyricEncoder,
        cache: Path | None, family: str, folds: int, cfg: FitConfig) -> dict:  # fmt: skip
    windows = [track_windows(m, params.frames(WINDOW_S), params.frames(HOP_S)) for m in mels]
    x = np.concatenate(windows).astype(np.float32)
    track = np.repeat(np.arange(len(tracks)), [len(w) for w in windows])
    genres = [g for g in GENRES if any(t.genre == g for t in tracks)]
    labels = np.array([genres.index(t.genre) for t in tracks])[track]
    has = np.array([t is not None for t in texts], np.float32)
    emb = np.zeros((len(tracks), encoder.dim), np.float32)
    if has.any():
        emb[has > 0] = encoder.embed([t for t in texts if t is not None], cache)
    emb, has = emb[track], has[track]
    e = encoder.dim

    template = MelEncoder(family, params.n_mels, mels)  # the dB scaling is measured once, not per fold and model

    def audio() -> MelEncoder:
        return copy.deepcopy(template)

    def cv(name: str, make, inputs: list[np.ndarray]):
        return cross_validate(name, make, inputs, labels, genres, folds, cfg, groups=track)

    results = {
        f"audio only (log-mel {family})": cv("audio", lambda: Single(audio(), len(genres)), [x]),
        "lyrics only (frozen MiniLM)": cv("lyrics", lambda: Single(MLPEncoder(e), len(genres)), [emb]),
        "fusion: concat + MLP": cv("concat", lambda: Fusion(audio(), e, len(genres), "concat"), [x, emb, has]),
        "fusion: gated": cv("gated", lambda: Fusion(audio(), e, len(genres), "gated"), [x, emb, has]),
    }
    return {"genres": genres, "results": results, "with_lyrics": int(sum(t is not None for t in texts))}


def report(out: Path, run_: dict, root: Path, n_tracks: int, family: str, folds: int, cfg: FitConfig) -> str:
    summary, verdict, per_genre = tables(run_["genres"], run_["results"], folds)
    (out / "FUSION_MEL.md").write_text(f"""# Log-mel + lyrics fusion on {root}

{n_tracks} tracks, {run_["with_lyrics"]} of them with lyrics in `lyrics.json` (the others use the learned
empty-lyrics embedding). Audio: the `{family}` family's embedding of {WINDOW_S:g} s log-mel windows
({HOP_S:g} s hop), trained from scratch with the fusion layer; lyrics: frozen all-MiniLM-L6-v2.
Protocol: stratified {folds}-fold cross-validation by track (all windows of a track on one side), a
track's verdict the mean of its windows; epochs: {cfg.epochs}; mean ± std over folds, accuracy by track.

{summary}

{verdict}

Per-genre F1 (mean over folds):

{per_genre}
""")
    return verdict
