"""Back-end recipes for the genres with few artists, compared on the default's streamed rows.

Rock has four artists in train + valid, each with many tracks: a back end that weighs every track
the same learns those artists. The recipes here change what the fine-tuned back end sees or how it
decides, never the encoder, so each ships as the same graphs at the same cost: artist-balanced
sampling, audio augmentation (``audioaug``: copies of each training track recorded differently), a
higher weight for 2-3 s clips, mixup, a within-genre artist adversary, the unverified ``extra/`` songs
as training material (never scored), and per-genre logit offsets chosen by an inner artist CV on each
run's own training tracks (never on the tracks it is scored on); a second network's features (``vgg``)
or a rhythm summary (``rhythm``) beside it. Every recipe is scored by the protocol the shipped default
is: artist-grouped CV over the same fold splits and the train -> valid split, with per-genre recall,
macro-F1 and the single-window accuracy of the thin genres' clips beside track accuracy. ``SHIPPED`` is
the row the default is trained by (``rtgenre-train finetune``'s defaults).
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rtgenre.audio import FileSource
from rtgenre.frontend import MelFrontend

from . import audioaug, finetune, midstream, stream, transfer, vgg
from .crossval import out_of_fold
from .data import GENRES, Track, folds_of
from .evaluate import score

THIN = ("country", "disco", "hiphop", "metal", "reggae", "rock")
OFFSET_GRID = np.arange(-2.0, 2.01, 0.25)
INNER_FOLDS = 4
MEMBER_SEED = 1000  # member k of an averaged recipe trains from seed + k · MEMBER_SEED
VIEW_C = transfer.TransferConfig.c  # the frozen-musicnn linear head's regularisation, for a second network's


@dataclass(frozen=True)
class Recipe:
    name: str
    weighting: str = "track"  # within a genre: every "track" the same, or every "artist" the same
    augment: tuple[str, ...] = ()  # audio-augmented copies added to every training track
    clip_weight: float = 1.0  # a 2-3 s clip's weight against a 30 s track's, within its genre
    offsets: bool = False  # per-genre logit offsets chosen by inner artist CV
    view: str = ""  # other window features under a linear head: a second network's (``vgg.NETS``), "rhythm"
    view_weight: float = 0.0  # its share of the averaged window probabilities (1: the view alone)
    mixup: float = 0.0  # window-level mixup of the back end's inputs (``finetune.FinetuneConfig.mixup``)
    adversary: float = 0.0  # weight of the within-genre artist adversary (``finetune.ArtistAdversary``)
    extra_weight: float = 0.0  # an unverified ``extra/`` song's weight against a GTZAN track's (an artist's when
    # ``weighting`` is "artist": each song is its own artist); never scored
    members: int = 1  # back ends trained from as many seeds, their window probabilities averaged
    part: str = "backend"  # "stream": the encoder's mid-end fine-tuned too, on its front-end maps (``midstream``)
    lr_pretrained: float = finetune.FinetuneConfig.lr_pretrained  # what the pretrained layers learn at


# the default's back end (`make finetune`), since session 8
SHIPPED = Recipe("mixup + artist-balanced +extra songs x0.3", mixup=0.4, weighting="artist", extra_weight=0.3)
RECIPES = {
    r.name: r
    for r in [
        Recipe("plain"),  # the default until session 8
        Recipe("artist-balanced", weighting="artist"),
        Recipe("clips x3", clip_weight=3.0),
        Recipe("offsets", offsets=True),
        *[Recipe(f"+{a}", augment=(a,)) for a in (*audioaug.AUGMENTS, "mix")],
        *[Recipe(f"{net} (linear head)", view=net, view_weight=1.0) for net in vgg.NETS],
        *[Recipe(f"plain + {net}", view=net, view_weight=0.5) for net in vgg.NETS],
        Recipe("rhythm (linear head)", view="rhythm", view_weight=1.0),
        Recipe("plain + rhythm", view="rhythm", view_weight=0.25),
        Recipe("mixup", mixup=0.4),
        Recipe("artist adversary", adversary=0.3),
        Recipe("artist adversary x1", adversary=1.0),
        Recipe("mixup 0.2", mixup=0.2),
        Recipe("mixup 1.0", mixup=1.0),
        Recipe("mixup + artist-balanced", mixup=0.4, weighting="artist"),
        Recipe("+extra songs x0.3", extra_weight=0.3),
        Recipe("+extra songs", extra_weight=1.0),
        Recipe("mixup +extra songs x0.3", mixup=0.4, extra_weight=0.3),
        SHIPPED,
        Recipe("mixup + artist-balanced +eq", mixup=0.4, weighting="artist", augment=("eq",)),
        Recipe("mixup + artist-balanced +pitch", mixup=0.4, weighting="artist", augment=("pitch",)),
        *[replace(SHIPPED, name=f"{SHIPPED.name} ({k} seeds averaged)", members=k) for k in (3, 5)],
        replace(SHIPPED, name=f"{SHIPPED.name} +mid-end", part="stream"),
        *[
            replace(SHIPPED, name=f"{SHIPPED.name} +mid-end at {lr:g}", part="stream", lr_pretrained=lr)
            for lr in (3e-4, 3e-5)
        ],
        *[replace(SHIPPED, name=f"{SHIPPED.name} +mid-end +{a}", part="stream", augment=(a,)) for a in ("eq", "pitch")],
    ]
}


@dataclass
class Material:
    """What every recipe is fitted on: the tracks, labels, pooled windows, and the augmented copies' windows."""

    tracks: list[Track]
    labels: list[int]
    feats: list[np.ndarray]
    backbone: object
    copies: dict[str, list[np.ndarray]]
    views: dict[str, list[np.ndarray]]  # per view, every track's window features (``vgg``, ``rhythm``)
    extra: list[Track]  # unverified songs that recipes may train on, never score (``extra/``)
    extra_feats: list[np.ndarray]  # their pooled windows (empty when no recipe trains on them)
    budget: finetune.FinetuneConfig = finetune.FinetuneConfig()  # epochs and patches: every row the same
    patches: list[np.ndarray] = field(default_factory=list)  # every track's ``midstream`` patches (for "stream")
    extra_patches: list[np.ndarray] = field(default_factory=list)
    patch_copies: dict[str, list[np.ndarray]] = field(default_factory=dict)  # the augmented copies' patches


def augmented_copies(run, names: set[str], extra: list[Track], cache: Path, log,
                     of_patches: bool = False) -> dict[str, list[np.ndarray]]:  # fmt: skip
    """Per augmentation, every track's pooled windows of its augmented audio through the streaming encoder
    (``of_patches``: its ``midstream`` patches, what the "stream" part trains on)."""
    frontend = MelFrontend(run.params, run.filterbank)
    rate = run.params.sample_rate
    spec = stream.encoder_spec(run.model.backbone, float(run.model.norm.reference))

    def audio(track: Track) -> np.ndarray:
        return FileSource(str(track.path), rate, block_seconds=30.0).whole()

    songs = [audio(t) for t in extra] if "mix" in names else []
    out = {}
    for name in sorted(names):

        def mel_of(i: int, name: str = name) -> np.ndarray:
            rng = np.random.default_rng([i, zlib.crc32(name.encode())])
            y = audio(run.tracks[i])
            y = (
                audioaug.mix(y, songs[rng.integers(len(songs))], rng)
                if name == "mix"
                else audioaug.AUGMENTS[name](y, rng)
            )
            return frontend.mel(y)

        of = midstream.track_patches if of_patches else stream.track_features
        out[name] = of(run.model.backbone, spec, run.tracks, run.mels, cache, log, variant=(f"aug-{name}", mel_of))
    return out


def extra_features(run, extra: list[Track], cache: Path, log) -> list[np.ndarray]:
    """The extra songs' pooled windows through the same streaming encoder as the collection's."""
    mels, _, _ = transfer.collection_mels(extra, cache / "mel")
    spec = stream.encoder_spec(run.model.backbone, float(run.model.norm.reference))
    return stream.track_features(run.model.backbone, spec, extra, mels, cache / "musicnn-stream", log)


def stream_patches(run, extra: list[Track], cache: Path, log) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The collection's and the extra songs' ``midstream`` patches (the "stream" part's training material)."""
    spec = stream.encoder_spec(run.model.backbone, float(run.model.norm.reference))
    mels = transfer.collection_mels(extra, cache / "mel")[0] if extra else []
    return tuple(midstream.track_patches(run.model.backbone, spec, tracks, m, cache / "musicnn-stream", log)
                 for tracks, m in ((run.tracks, run.mels), (extra, mels)))  # fmt: skip


def track_weights(m: Material, idx: list[int], r: Recipe) -> np.ndarray:
    """Each training track's weight within its genre (``finetune.patch_weights`` balances the genres)."""
    w = np.array([r.clip_weight if m.tracks[i].kind == "clip" else 1.0 for i in idx])
    if r.weighting == "artist":
        artists = [f"{m.labels[i]}|{m.tracks[i].artist}" for i in idx]
        count = defaultdict(float)
        for a, weight in zip(artists, w, strict=True):
            count[a] += weight
        w = w / np.array([count[a] for a in artists])
    return w


def fit_tail(m: Material, r: Recipe, idx: list[int], seed: int) -> finetune.Tail:
    """The recipe's back end trained on tracks ``idx``, and on the extra songs if it takes them (never scored)."""
    labels = [m.labels[i] for i in idx]
    own, copies, extra_feats = (m.patches, m.patch_copies, m.extra_patches) if r.part == "stream" else (
        m.feats, m.copies, m.extra_feats)  # fmt: skip
    feats = [np.concatenate([own[i], *(copies[a][i] for a in r.augment)]) for i in idx]
    weights, groups = track_weights(m, idx, r), [m.tracks[i].artist for i in idx]
    if r.extra_weight:
        feats, labels = feats + extra_feats, labels + [GENRES.index(t.genre) for t in m.extra]
        weights = np.concatenate([weights, np.full(len(m.extra), r.extra_weight)])
        groups = groups + [f"extra/{t.path.name}" for t in m.extra]  # the uploaders are unknown: a song each
    return finetune.fit(m.backbone, feats, labels, replace(m.budget, seed=seed, mixup=r.mixup, adversary=r.adversary,
                                                             part=r.part, lr_pretrained=r.lr_pretrained),
                        track_weights=weights, groups=groups)  # fmt: skip


def fit(m: Material, r: Recipe, idx: list[int], seed: int) -> Callable[[int], np.ndarray]:
    """The recipe fitted on tracks ``idx``: window probabilities of any track (by index)."""
    head = transfer.fit_head([m.views[r.view][i] for i in idx], [m.labels[i] for i in idx], VIEW_C) if r.view else None
    if r.view_weight >= 1.0:
        return lambda i: head.probs(m.views[r.view][i])
    tails = [fit_tail(m, r, idx, seed + MEMBER_SEED * k) for k in range(r.members)]
    offsets = choose_offsets(m, r, idx, seed) if r.offsets else np.zeros(len(GENRES))

    inputs = m.patches if r.part == "stream" else m.feats

    def tuned(i: int) -> np.ndarray:
        return shifted(np.mean([finetune.probs(tail, inputs[i]) for tail in tails], axis=0), offsets)

    if head is None:
        return tuned
    w = r.view_weight
    return lambda i: (1 - w) * tuned(i) + w * head.probs(m.views[r.view][i])


def shifted(p: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Window probabilities with ``offsets`` added to their logits (in a bundle: the head's bias)."""
    z = np.log(np.maximum(p, 1e-12)) + offsets
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def choose_offsets(m: Material, r: Recipe, idx: list[int], seed: int) -> np.ndarray:
    """Per-genre logit offsets maximising balanced track accuracy of an inner artist CV on ``idx`` alone."""
    inner = replace(r, offsets=False)
    sub = [m.tracks[i] for i in idx]
    fold = folds_of(sub, INNER_FOLDS, seed, "artist")
    oof = out_of_fold(fold, lambda k: fit(m, inner, [idx[j] for j in k], seed),
                      lambda f, held: [f(idx[j]) for j in held])  # fmt: skip
    y = np.array([m.labels[i] for i in idx])
    logp = [np.log(np.maximum(p, 1e-12)) for p in oof]
    offsets = np.zeros(len(GENRES))

    def balanced(b: np.ndarray) -> float:
        pred = np.array([shifted(np.exp(lp), b).mean(0).argmax() for lp in logp])
        return float(np.mean([np.mean(pred[y == g] == g) for g in np.unique(y)]))

    best = balanced(offsets)
    for _ in range(2):  # coordinate ascent, two passes over the genres
        for g in range(len(GENRES)):
            for v in OFFSET_GRID:
                trial = offsets.copy()
                trial[g] = v
                if (s := balanced(trial)) > best + 1e-9:
                    best, offsets = s, trial
    return offsets


def evaluate(m: Material, r: Recipe, fold_seeds: int, folds: int, log) -> dict:
    """Artist CV over ``fold_seeds`` splits and the valid split: track accuracy, recall, clip accuracy."""
    y = np.array(m.labels)
    splits, confusion = [], np.zeros((len(GENRES), len(GENRES)), int)
    clip_hits = []
    clips = [i for i, t in enumerate(m.tracks) if t.kind == "clip" and t.genre in THIN]
    for s in range(fold_seeds):
        fold = folds_of(m.tracks, folds, s, "artist")
        probs = out_of_fold(fold, lambda idx, s=s: fit(m, r, list(idx), s), lambda f, held: [f(i) for i in held])
        sc = score(probs, m.labels)
        splits.append(sc)
        confusion += np.array(sc.confusion)
        clip_hits += [bool(probs[i][0].argmax() == y[i]) for i in clips]
        log(f"{r.name}: fold split {s}: track acc {sc.track_acc:.3f}")
    train = [i for i, t in enumerate(m.tracks) if t.split == "train"]
    valid = [i for i, t in enumerate(m.tracks) if t.split == "valid"]
    predict = fit(m, r, train, 0)
    v = score([predict(i) for i in valid], [m.labels[i] for i in valid])
    recall = {g: round(float(confusion[k, k] / max(1, confusion[k].sum())), 3) for k, g in enumerate(GENRES)}
    return {
        "recipe": asdict(r),
        "cv_track_acc": round(float(np.mean([s.track_acc for s in splits])), 4),
        "cv_by_split": [s.track_acc for s in splits],
        "cv_macro_f1": round(float(np.mean([s.macro_f1 for s in splits])), 4),
        "balanced_acc": round(float(np.mean(list(recall.values()))), 4),
        "recall": recall,
        "thin_clip_acc": round(float(np.mean(clip_hits)), 4),
        "valid_track_acc": v.track_acc,
    }


def table(rows: list[dict]) -> str:
    head = ("| recipe | artist CV track acc (3 splits) | macro-F1 | balanced acc | thin-genre clip acc (1 window) | "
            "valid | " + " | ".join(f"{g} recall" for g in GENRES) + " |")  # fmt: skip
    lines = [head, "|---" * (6 + len(GENRES)) + "|"]
    for r in rows:
        cells = [r["recipe"]["name"], f"{r['cv_track_acc']:.3f} ({', '.join(f'{a:.3f}' for a in r['cv_by_split'])})",
                 f"{r['cv_macro_f1']:.3f}", f"{r['balanced_acc']:.3f}", f"{r['thin_clip_acc']:.3f}",
                 f"{r['valid_track_acc']:.3f}", *(f"{r['recall'][g]:.2f}" for g in GENRES)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(out: Path, rows: list[dict], note: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "thin.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "THIN.md").write_text(f"# Back-end recipes for the thin genres\n\n{note}\n\n{table(rows)}\n")
