"""`rtgenre-train fit`: a bundle for a user's own labels, from a folder of label folders.

Every file is encoded once by the base bundle's streaming encoder, through the runtime's own
``StreamEncoder`` (the rows a stream of it would get), and its pooled 3 s windows are cached by file and
encoder, so an interrupted run resumes and a second run with other options costs only the training.
The back end is the shipped default's recipe (``finetune``: musicnn's back end and a new head, class-
and file-balanced). Grouped k-fold CV says how well it does on groups it never heard; the bundle is
then trained on every file and serves through ``rtgenre classify|replay|listen|serve --model DIR``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from rtgenre.audio import FileSource
from rtgenre.errors import AudioError

from . import finetune, stream
from .base import Base
from .card import fit_card
from .crossval import assign_folds, out_of_fold
from .evaluate import Scores, plot_confusion, score
from .export import write_bundle
from .folders import Collection, CollectionError, check_folds


@dataclass(frozen=True)
class LabelFitConfig:
    folds: int = 5  # grouped CV folds (0: no CV, the bundle only)
    seed: int = 0
    finetune: finetune.FinetuneConfig = field(default_factory=finetune.FinetuneConfig)


@dataclass
class Encoded:
    """What training sees: the files that decoded, their labels and pooled windows, and those that did not."""

    collection: Collection
    feats: list[np.ndarray]
    skipped: dict[str, str]  # file name -> why
    cached: int  # files read from the cache (the others were encoded)


def _key(path: Path, base: Base) -> str:
    stat = path.stat()
    what = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{base.bundle.meta.files['encoder.onnx']}"
    return hashlib.sha256(f"{what}|{base.bundle.meta.frontend}|{stream.EVAL_HOP_FRAMES}".encode()).hexdigest()[:24]


def _pooled(path: Path, base: Base) -> tuple[np.ndarray, int]:
    """The pooled windows of a file's streamed rows, and how many rows."""
    frontend = base.bundle.frontend()
    y = FileSource(str(path), frontend.params.sample_rate, block_seconds=30.0).whole()
    rows = base.bundle.stream_encoder().whole(frontend.mel(y))[0]
    return stream.pooled(rows), len(rows)


def encode(c: Collection, base: Base, cache: Path | None, progress: bool = True) -> Encoded:
    """Every file's pooled windows (cached); files that cannot be decoded are skipped and said why."""
    feats, kept, skipped = [], [], {}
    rows = cached_files = 0
    bar = tqdm(c.files, desc="encoding", unit="file", disable=None if progress else True, dynamic_ncols=True)
    for f in bar:
        cached = cache / f"{_key(f.path, base)}.npy" if cache else None
        if cached is not None and cached.is_file():
            x = np.load(cached)
            cached_files += 1
        else:
            try:
                x, n = _pooled(f.path, base)
            except (AudioError, sf.LibsndfileError, RuntimeError, OSError) as e:
                skipped[f.name] = str(e).splitlines()[0] if str(e) else type(e).__name__
                continue
            rows += n
            if cached is not None:
                cache.mkdir(parents=True, exist_ok=True)
                part = cached.with_suffix(f".{os.getpid()}.npy")
                np.save(part, x)
                part.replace(cached)  # an interrupted run leaves no half-written entry
        feats.append(x)
        kept.append(f)
        bar.set_postfix(rows=rows, cached=cached_files, skipped=len(skipped), refresh=False)
    if not kept:
        raise CollectionError(f"{c.root}: none of the {len(c.files)} audio files could be decoded")
    labels = tuple(sorted({f.label for f in kept}))
    if len(labels) < 2:
        raise CollectionError(f"{c.root}: only the files of {labels[0]!r} could be decoded; need at least 2 labels")
    return Encoded(Collection(c.root, kept, labels, c.grouped_by), feats, skipped, cached_files)


@dataclass(frozen=True)
class Evaluation:
    scores: Scores
    recall: dict[str, float]
    folds: int
    grouped_by: str


def recall_of(s: Scores, labels: tuple[str, ...]) -> dict[str, float]:
    cm = np.array(s.confusion)
    return {label: round(float(cm[i, i] / max(1, cm[i].sum())), 4) for i, label in enumerate(labels)}


def cross_validate(e: Encoded, base: Base, cfg: LabelFitConfig, log: Callable[[str], None]) -> Evaluation:
    """Out-of-fold file probabilities under folds grouped as the collection says (no group on both sides)."""
    c = e.collection
    check_folds(c, cfg.folds)
    y = c.label_index()
    fold = assign_folds(y, cfg.folds, cfg.seed, [f.group for f in c.files])
    done = []

    def fit_fold(idx: np.ndarray) -> finetune.Tail:
        done.append(len(done) + 1)
        log(f"cross-validation: fold {done[-1]}/{cfg.folds} ({len(y) - len(idx)} files held out)")
        return train(e, base, cfg, idx)

    probs = out_of_fold(fold, fit_fold, lambda tail, held: [finetune.probs(tail, e.feats[i]) for i in held])
    s = score(probs, y, names=c.labels)
    return Evaluation(s, recall_of(s, c.labels), cfg.folds, c.grouped_by)


def train(e: Encoded, base: Base, cfg: LabelFitConfig, idx) -> finetune.Tail:
    y = e.collection.label_index()
    return finetune.fit(base.model.backbone, [e.feats[i] for i in idx], [y[i] for i in idx], cfg.finetune,
                        len(e.collection.labels))  # fmt: skip


def final_model(e: Encoded, base: Base, cfg: LabelFitConfig) -> stream.StreamModel:
    """The window model trained on every file, served by the base's encoder."""
    tail = train(e, base, cfg, range(len(e.feats)))
    return stream.StreamModel(tail.backbone, tail.head, base.model.spec, base.model.columns).eval()


def build(c: Collection, base: Base, cfg: LabelFitConfig, out: Path, name: str, cache: Path | None,
          log: Callable[[str], None], progress: bool = True) -> dict:  # fmt: skip
    """Encode, cross-validate, train on everything and write the bundle (card, confusion plot); returns the
    summary the command prints."""
    if cfg.folds:
        check_folds(c, cfg.folds)  # before the encoding: a collection CV cannot split fails at once
    e = encode(c, base, cache, progress)
    for file, why in e.skipped.items():
        log(f"skipped {file}: {why}")
    evaluation = cross_validate(e, base, cfg, log) if cfg.folds else None
    log(f"training on all {len(e.feats)} files")
    model = final_model(e, base, cfg)
    counts = {label: sum(f.label == label for f in e.collection.files) for label in e.collection.labels}
    extra = {
        "family": f"fit-{base.net}",
        "base": {"name": base.bundle.meta.name, "encoder_sha256": base.bundle.meta.files["encoder.onnx"]},
        "training": {"config": asdict(cfg), "data": {"root": str(c.root), "files_per_label": counts,
                                                     "skipped": len(e.skipped)},
                     "folds_by": evaluation.grouped_by if evaluation else None},
        "validation": {"cv": evaluation.scores.to_json() | {"recall": evaluation.recall}} if evaluation else {},
    }  # fmt: skip
    meta = base.bundle.meta
    written = write_bundle(out, model, name, e.collection.labels, meta.frontend, base.bundle.filterbank,
                           meta.window_s, meta.hop_s, extra, "", encoder=base.bundle.path / "encoder.onnx")  # fmt: skip
    if evaluation:
        title = f"{name}: {cfg.folds}-fold CV grouped by {evaluation.grouped_by}"
        plot_confusion(evaluation.scores.confusion, out / "confusion.png", title, e.collection.labels)
    (out / "MODEL_CARD.md").write_text(fit_card(name, base, e, evaluation, counts, written.extra["ms_per_window"]))
    return {
        "name": name,
        "labels": list(e.collection.labels),
        "files": len(e.feats),
        "encoded": len(e.feats) - e.cached,
        "cached": e.cached,
        "skipped": len(e.skipped),
        "grouped_by": e.collection.grouped_by,
        "cv_track_acc": evaluation.scores.track_acc if evaluation else None,
        "cv_macro_f1": evaluation.scores.macro_f1 if evaluation else None,
        "cv_recall": evaluation.recall if evaluation else None,
        "ms_per_window": written.extra["ms_per_window"],
        "bundle": str(out),
    }
