"""What every musicnn recipe is fitted on and judged by: the tracks, their musicnn log-mel and cached features.

``MusicnnRun.load`` computes (or reads from the cache) each track's backbone features, whole-patch or
streamed through the pruned encoder; ``report`` scores a recipe by the protocol (``protocol.py``) and writes
the bundle of it fitted on every track.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from rtgenre.frontend import MelParams

from . import finetune, prune, stream, thin, transfer
from .data import GENRES, Track, has_artists
from .evaluate import level_accuracy, plot_confusion, score
from .export import write_bundle
from .protocol import collection_tracks, fold_split_cv, log, split_indices

SLIM_SAMPLE = 3  # ``prune.slim`` is fitted on every third full track's rows (about 200 000 frames of GTZAN)
FRONT_COST = 0.8  # the default's encoder since the ninth session: slimmed to 80 % of the front end (results/thin)


@dataclass
class MusicnnRun:
    """The tracks, their musicnn log-mel and cached backbone features, and the backbone: what every musicnn
    recipe is fitted on and judged by the same protocol."""

    tracks: list[Track]
    labels: list[int]
    mels: list[np.ndarray]
    params: MelParams
    filterbank: np.ndarray
    model: transfer.TransferModel
    feats: list[np.ndarray]

    @classmethod
    def load(cls, data_root: Path, clips_root: Path | None, wheel: Path | None, cfg: transfer.TransferConfig,
             limit: int | None, cache: Path, front: bool = False, streamed: bool = False,
             front_cost: float = 1.0) -> MusicnnRun:  # fmt: skip
        """``front_cost`` < 1: the streaming encoder slimmed to that share of its front end's multiply-adds
        (``prune.slim``, fitted on every ``SLIM_SAMPLE``-th full track's rows: no labels)."""
        tracks = collection_tracks(data_root, clips_root, limit)
        log(f"{len(tracks)} tracks ({sum(t.kind == 'clip' for t in tracks)} clips); musicnn log-mel")
        mels, params, fb = transfer.collection_mels(tracks, cache / "mel")
        wheel = wheel or transfer.fetch_wheel(cache / "wheels")
        n, hop = params.frames(transfer.WINDOW_S), params.frames(transfer.EVAL_HOP_S)
        model = transfer.build(wheel, cfg, transfer.reference_power(mels, n, hop))
        if streamed:  # the encoder without the front-end filters that never vary on these tracks: the same rows
            spec = stream.encoder_spec(model.backbone, float(model.norm.reference))
            ranges = stream.track_features(model.backbone, spec, tracks, mels, cache / "musicnn-stream", log, "range")
            full, model.backbone = model.backbone, prune.prune(model.backbone, ranges)
            log(f"streaming encoder: front-end filters kept per block {prune.kept(model.backbone)}")
            if front_cost < 1.0:
                encoder, n_front = stream.Encoder(model.backbone, spec), sum(b.channels for b in full.frontend)
                sample = [i for i, t in enumerate(tracks) if t.kind == "full"][::SLIM_SAMPLE] or range(len(tracks))
                m = prune.moments(model.backbone, (encoder.rows(mels[i])[:, :n_front] for i in sample))
                before = prune.front_cost(model.backbone)
                model.backbone = prune.slim(model.backbone, full, m, front_cost)
                log(
                    f"slimmed to {prune.front_cost(model.backbone) / before:.0%} of the front end's multiply-adds "
                    f"(fitted on {len(sample)} tracks): filters kept per block {prune.kept(model.backbone)}"
                )
            feats = stream.track_features(model.backbone, spec, tracks, mels, cache / "musicnn-stream", log)
        else:
            feats = transfer.track_features(model, tracks, mels, cache / "musicnn", log, front=front)
        return cls(tracks, [GENRES.index(t.genre) for t in tracks], mels, params, fb, model, feats)

    def material(self, budget: finetune.FinetuneConfig, extra: list[Track], extra_feats: list[np.ndarray],
                 copies: dict | None = None, views: dict | None = None,
                 patches: tuple[list, list] = ([], []), patch_copies: dict | None = None) -> thin.Material:  # fmt: skip
        """What the back-end recipes are fitted on: these tracks' features, and the extra songs' (``thin``);
        ``patches`` and ``patch_copies``: theirs for the "stream" part (``thin.stream_patches``)."""
        return thin.Material(self.tracks, self.labels, self.feats, self.model.backbone, copies or {}, views or {},
                             extra, extra_feats, budget, *patches, patch_copies or {})  # fmt: skip

    def report(self, fit, folds: int, fold_seeds: int, out: Path, hop_s: float, family: str, config: dict,
               by_level: bool = True):  # fmt: skip
        """Artist-grouped CV over ``fold_seeds`` fold splits, the valid split (at every input level with
        ``by_level``), and the bundle of ``fit`` on every track; returns the card's evidence (results,
        per-split accuracy, levels, ms, folds)."""
        tracks, labels = self.tracks, self.labels
        by = "artist" if has_artists(tracks) else "track"

        def cv(seed: int, grouping: str) -> list[np.ndarray]:
            return fold_split_cv(tracks, folds, seed, grouping, fit, lambda fitted, i: fitted.probs(i))

        full = [i for i, t in enumerate(tracks) if t.kind == "full"]
        runs = [cv(s, by) for s in range(fold_seeds)]
        results = {
            "cv": score(runs[0], labels),
            "cv_full_tracks": score([runs[0][i] for i in full], [labels[i] for i in full]),
        }
        seeds = {s: score(r, labels).track_acc for s, r in enumerate(runs)}
        log(f"{by}-grouped CV track accuracy by fold split: {seeds}")
        if by == "artist":
            results["cv_by_track"] = score(cv(0, "track"), labels)
        train_idx, valid_idx = split_indices(tracks)
        levels = {}
        if valid_idx:
            fitted = fit(train_idx)
            results["valid"] = score([fitted.probs(i) for i in valid_idx], [labels[i] for i in valid_idx])
        if valid_idx and by_level:
            n, hop = self.params.frames(transfer.WINDOW_S), self.params.frames(transfer.EVAL_HOP_S)
            valid_model = fitted.model()
            if isinstance(valid_model, stream.StreamModel):
                predict = partial(stream.predict, valid_model)
            else:
                predict = partial(transfer.predict, valid_model, n=n, hop=hop)
            levels = level_accuracy(predict, [self.mels[i] for i in valid_idx], [labels[i] for i in valid_idx],
                                    10 * np.log10(self.params.amin))  # fmt: skip
            log(f"valid split by input level: {levels}")
        final = fit(list(range(len(tracks)))).model()
        extra = {
            "family": family,
            "training": {"config": config, "data": {"tracks": len(tracks)}, "folds_by": by,
                         "fold_seed_track_acc": seeds, "eval_hop_seconds": transfer.EVAL_HOP_S},
            "validation": {k: v.to_json() for k, v in results.items()},
            "valid_track_acc_by_input_level": levels,
            "credits": "musicnn, Jordi Pons and Xavier Serra, 2019 (ISC licence): MSD/MTT-trained weights",
        }  # fmt: skip
        meta = write_bundle(out, final, out.name, GENRES, self.params, self.filterbank, transfer.WINDOW_S, hop_s,
                            extra, "")  # fmt: skip
        ms = meta.extra["ms_per_window"]
        plot_confusion(results["cv"].confusion, out / "confusion.png", f"{family}, {by}-grouped CV, seed 0")
        print(json.dumps({"name": meta.name, "ms_per_window": round(ms, 2), "levels": levels,
                               **{k: {"track_acc": v.track_acc, "macro_f1": v.macro_f1} for k, v in results.items()},
                               "fold_seeds": seeds}))  # fmt: skip
        return results, seeds, levels, ms, by


def transfer_recipe(run: MusicnnRun, cfg: transfer.TransferConfig) -> Callable[[list[int]], transfer.Fitted]:
    """A linear head on the frozen network's features of the tracks it is fitted on."""

    def fit(idx: list[int]) -> transfer.Fitted:
        head = transfer.fit_head([run.feats[i] for i in idx], [run.labels[i] for i in idx], cfg.c)
        return transfer.Fitted(lambda i: head.probs(run.feats[i]), lambda: transfer.with_head(run.model, head))

    return fit


def finetune_recipe(
    run: MusicnnRun, material: thin.Material, recipe: thin.Recipe, streamed: bool
) -> Callable[[list[int]], transfer.Fitted]:
    """The later layers fine-tuned on the tracks' features by ``recipe`` (its sampling, mixup, extra songs);
    ``streamed``: the window model of the streaming encoder."""

    def fit(idx: list[int]) -> transfer.Fitted:
        tail = thin.fit_tail(material, recipe, idx, material.budget.seed)
        if streamed:
            spec = stream.encoder_spec(tail.backbone, float(run.model.norm.reference))
            model = partial(stream.StreamModel, tail.backbone, tail.head, spec)
        else:
            model = partial(finetune.installed, run.model, tail)
        return transfer.Fitted(lambda i: finetune.probs(tail, run.feats[i]), lambda: model().eval())

    return fit
