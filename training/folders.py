"""A user's labelled collection: ``ROOT/<label>/**/<file>``, any label names, any audio the runtime decodes.

What a file is grouped with decides what cross-validation measures: folds that put one artist's (or
album's) tracks on both sides reward remembering the artist. Groups come from a ``--groups`` table,
else from the files' artist or album tags, else from the first sub-folder under the label (a folder per
album or artist is the common layout), else each file is its own group, and ``Collection.grouped_by``
says which, so the report can say what its figure means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from rtgenre.audio import AUDIO_SUFFIXES

GROUPINGS = ("groups file", "artist tag", "album tag", "sub-folder", "file")


class CollectionError(ValueError):
    """A collection that cannot be trained on, said in one line."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: str
    name: str  # the path under ROOT, POSIX style: how a groups file and the card name it
    group: str = ""


@dataclass(frozen=True)
class Collection:
    root: Path
    files: list[LabelledFile]
    labels: tuple[str, ...]  # sorted
    grouped_by: str  # one of GROUPINGS

    def label_index(self) -> list[int]:
        return [self.labels.index(f.label) for f in self.files]


def read_groups(path: Path) -> dict[str, str]:
    """A tab-separated ``file<TAB>group`` table (a header line is allowed; ``file`` relative to ROOT)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CollectionError(f"{path}: cannot read the groups file ({e})") from None
    table = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) < 2 or not cells[1].strip():
            raise CollectionError(f"{path}:{n}: expected 'file<TAB>group', got {line!r}")
        table[cells[0].strip()] = cells[1].strip()
    return table


def _tags(path: Path) -> dict[str, str]:
    """A file's string tags as libsndfile reads them (FLAC, Ogg, WAV); none for MP3, whose ID3 it does not read."""
    if path.suffix.lower() == ".mp3":
        return {}
    try:
        with sf.SoundFile(path) as f:
            return {k: v.strip() for k, v in f.copy_metadata().items()}
    except (sf.LibsndfileError, RuntimeError, OSError):
        return {}  # unreadable files are found and reported when they are decoded


def scan(root: Path, exclude: tuple[str, ...] = (), groups_file: Path | None = None) -> Collection:
    """Every audio file under ``root``'s label folders (hidden files and folders skipped), grouped for CV."""
    root = Path(root)
    if not root.is_dir():
        raise CollectionError(f"{root}: no such folder")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in exclude)
    files = [
        LabelledFile(p, d.name, p.relative_to(root).as_posix())
        for d in folders
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not any(s.startswith(".") for s in p.parts[-2:])
    ]
    labels = tuple(sorted({f.label for f in files}))
    if len(labels) < 2:
        found = f"found {', '.join(labels)}" if labels else "found none with audio files"
        raise CollectionError(f"{root}: need at least 2 label folders with audio files in them ({found})")
    grouped_by, files = _grouped(root, files, groups_file)
    return Collection(root, files, labels, grouped_by)


def _grouped(root: Path, files: list[LabelledFile], groups_file: Path | None) -> tuple[str, list[LabelledFile]]:
    """The first grouping of ``GROUPINGS`` that names a group for every file."""
    if groups_file is not None:
        table = read_groups(groups_file)
        missing = [f.name for f in files if f.name not in table]
        if missing:
            raise CollectionError(f"{groups_file}: names no group for {len(missing)} files (first: {missing[0]})")
        return "groups file", [_with(f, table[f.name]) for f in files]
    tags = [_tags(f.path) for f in files]
    for key, grouping in (("artist", "artist tag"), ("album", "album tag")):
        if all(t.get(key) for t in tags):
            return grouping, [_with(f, t[key]) for f, t in zip(files, tags, strict=True)]
    parts = [Path(f.name).parts for f in files]
    if all(len(p) > 2 for p in parts):
        return "sub-folder", [_with(f, "/".join(p[:2])) for f, p in zip(files, parts, strict=True)]
    return "file", [_with(f, f.name) for f in files]


def _with(f: LabelledFile, group: str) -> LabelledFile:
    return LabelledFile(f.path, f.label, f.name, group)


def check_folds(c: Collection, folds: int) -> None:
    """Every label must be in at least ``folds`` groups, or some fold would have none of it to test."""
    for label in c.labels:
        n = len({f.group for f in c.files if f.label == label})
        if n >= folds:
            continue
        unit = ("file" if n == 1 else "files") if c.grouped_by == "file" else ("group" if n == 1 else "groups")
        has = f"label {label!r} has {n} {unit}" + ("" if c.grouped_by == "file" else f" (by {c.grouped_by})")
        if n < 2:
            raise CollectionError(f"{has}; cross-validation needs at least 2 (add files, or leave it out with "
                                  f"--exclude-label {label})")  # fmt: skip
        raise CollectionError(f"{has}; {folds}-fold CV needs at least {folds} (add files, or pass --folds {n})")
