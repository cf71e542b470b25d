"""GTZAN collections, split lists, artist-grouped folds and cached log-mel spectrograms.

Three layouts are recognised: the shared Ogg layout (``<genre>/<genre>.000NN.ogg`` with
``splits/{train,valid}_filtered.txt``), Kaggle's ``Data/genres_original/<genre>/*.wav`` and the
original ``genres/<genre>/*.au``. A copy without split lists is all "train" and is evaluated by
cross-validation. A track (30 s excerpt or 2–3 s clip) is always one unit: every slice of it
lands on the same side of any split. Where ``splits/artists.tsv`` names each track's artist, folds
keep every track of an artist on one side: GTZAN has up to 22 tracks of one artist, and folds that
share artists reward remembering them (10+ points of accuracy that new music does not give back).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtgenre.audio import FileSource
from rtgenre.errors import AudioError
from rtgenre.frontend import MelFrontend

from .crossval import assign_folds

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
AUDIO_EXTS = (".ogg", ".wav", ".au", ".flac", ".mp3")


@dataclass(frozen=True)
class Track:
    path: Path
    genre: str
    split: str  # "train", "valid" or "unlisted"
    kind: str  # "full" (30 s excerpt) or "clip" (2–3 s)
    artist: str = ""  # artist id from splits/artists.tsv; empty where the collection has no artist table

    @property
    def key(self) -> str:
        return f"{self.genre}/{self.path.stem}"


class DataError(FileNotFoundError):
    """A folder given as a collection holds no genre folders or no audio: the user's input, not a bug."""


def collection_root(root: Path) -> Path:
    """The folder holding one sub-folder per genre, whichever layout ``root`` uses."""
    for candidate in (root, root / "genres_original", root / "Data" / "genres_original", root / "genres"):
        if candidate.is_dir() and any((candidate / g).is_dir() for g in GENRES):
            return candidate
    raise DataError(f"{root}: no GTZAN genre folders found (expected <genre>/<genre>.000NN.<ext>)")


def read_splits(root: Path) -> dict[str, str]:
    """Map 'genre/stem' to its split from ``splits/*_filtered.txt`` (empty if there are none)."""
    out = {}
    for split in ("train", "valid"):
        f = root / "splits" / f"{split}_filtered.txt"
        if f.is_file():
            for line in f.read_text().split():
                out[str(Path(line).with_suffix(""))] = split
    return out


def read_artists(root: Path) -> dict[str, str]:
    """Map 'genre/stem' to its artist id from ``splits/artists.tsv`` (empty if there is none)."""
    f = root / "splits" / "artists.tsv"
    if not f.is_file():
        return {}
    rows = [line.split("\t") for line in f.read_text().splitlines()[1:] if line.strip()]
    return {str(Path(r[0]).with_suffix("")): r[1].strip() for r in rows if len(r) >= 2}


def find_tracks(root: Path, kind: str = "full") -> list[Track]:
    base = collection_root(Path(root))
    splits = read_splits(Path(root)) or read_splits(base)
    artists = read_artists(Path(root)) or read_artists(base)
    tracks = []
    for genre in GENRES:
        folder = base / genre
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in AUDIO_EXTS:
                continue
            split = splits.get(f"{genre}/{path.stem}", "unlisted" if splits else "train")
            tracks.append(Track(path, genre, split, kind, artists.get(f"{genre}/{path.stem}", "")))
    if not tracks:
        raise DataError(f"{root}: no audio files in the genre folders")
    return tracks


FOLDS_BY = ("artist", "track")


def folds_of(tracks: list[Track], k: int, seed: int, by: str = "artist") -> np.ndarray:
    """Fold index of every track: grouped by artist (the honest default) or by track (labelled as such)."""
    if by == "track":
        return stratified_folds(tracks, k, seed)
    if by != "artist":
        raise ValueError(f"folds are by artist or track, not {by!r}")
    return artist_folds(tracks, k, seed)


def artist_folds(tracks: list[Track], k: int, seed: int) -> np.ndarray:
    """Fold index of every track, stratified by genre with every track of an artist in one fold.

    A track without a known artist is its own group, so a collection with no artist table falls back to
    track folds; ``has_artists`` tells a report which it got.
    """
    groups = [t.artist or f"track:{t.key}" for t in tracks]
    if len(set(groups)) < k:
        raise ValueError(f"{k} folds need at least {k} artists; these tracks have {len(set(groups))}")
    return assign_folds([GENRES.index(t.genre) for t in tracks], k, seed, groups)


def has_artists(tracks: list[Track]) -> bool:
    return bool(tracks) and all(t.artist for t in tracks)


def stratified_folds(tracks: list[Track], k: int, seed: int) -> np.ndarray:
    """Fold index of every track, balanced per genre; tracks, not slices, are assigned (artists may straddle
    folds: use only for figures labelled track-level)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(tracks), int)
    offset = 0
    for genre in GENRES:
        idx = [i for i, t in enumerate(tracks) if t.genre == genre]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            fold[i] = (j + offset) % k
        offset += len(idx)  # rotate so small genres do not all start in fold 0
    return fold


def track_mel(track: Track, frontend: MelFrontend, cache_dir: Path | None) -> np.ndarray:
    """Log-mel (frames, n_mels) of a whole track through the runtime's decoder and front end."""
    stat = track.path.stat()
    key = hashlib.sha256(
        f"{track.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{frontend.params}".encode()
    ).hexdigest()[:24]
    cached = cache_dir / f"{key}.npy" if cache_dir else None
    if cached is not None and cached.is_file():
        return np.load(cached)
    try:
        y = FileSource(str(track.path), frontend.params.sample_rate, block_seconds=30.0).whole()
    except AudioError as e:
        raise AudioError(f"training data: {e}") from None
    mel = frontend.mel(y)
    if cached is not None:
        os.makedirs(cache_dir, exist_ok=True)
        np.save(cached, mel)
    return mel
