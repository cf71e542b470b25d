"""The commands whose models stand on musicnn: `transfer`, `finetune`, `fit` (your own labels), `thin` (the
thin genres' recipes), `ensemble` and `refold` (an older bundle's encoder in today's graph form); each maps
its options onto a recipe's config."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import click
import torch

from rtgenre.errors import ModelError
from rtgenre.model import shipped_models, user_models_dir

from . import ensemble, finetune, prune, rhythm, thin, transfer, vgg
from .base import load_base
from .card import finetune_card, transfer_card
from .data import GENRES, find_tracks
from .fit import LabelFitConfig, build
from .folders import CollectionError, scan
from .musicnn_run import FRONT_COST, MusicnnRun, finetune_recipe, transfer_recipe
from .options import CACHE_OPTION, CLIPS_OPTION, DATA_OPTION, WHEEL_OPTION, musicnn_options
from .protocol import load_collection, log
from .refold import refold


@click.command(name="transfer", short_help="A genre head on the frozen pretrained musicnn.")
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
    fit = transfer_recipe(run, cfg)
    card = transfer_card(
        out.name,
        cfg,
        run.tracks,
        *run.report(fit, folds, fold_seeds, out, hop_s, f"transfer-{cfg.net}", transfer.describe(cfg), levels),
    )
    (out / "MODEL_CARD.md").write_text(card)


FRONT_COST_OPTION = click.option(
    "--front-cost",
    type=click.FloatRange(0, 1, min_open=True),
    default=FRONT_COST,
    show_default=True,
    help="The streaming encoder's front end slimmed to this share of its multiply-adds (1: only the filters that "
    "never vary left out): the varying filters the others stand in for best go too, the mid-end refitted.",
)


@click.command(name="finetune", short_help="musicnn's later layers fine-tuned for genre.")
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
@click.option("--weighting", type=click.Choice(["track", "artist"]), default=thin.SHIPPED.weighting,
              show_default=True, help="Within a genre, every track or every artist weighs the same.")  # fmt: skip
@click.option("--mixup", type=click.FloatRange(0), default=thin.SHIPPED.mixup, show_default=True,
              help="Beta(a, a) mixup of the training patches and their labels (0: none).")  # fmt: skip
@click.option(
    "--extra",
    "extra_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Unverified songs in genre folders to train on too (shared extra/; never scored; --stream).",
)
@click.option(
    "--extra-weight",
    type=click.FloatRange(0, min_open=True),
    default=thin.SHIPPED.extra_weight,
    show_default=True,
    help="An --extra song's weight against a GTZAN track's (an artist's under --weighting artist).",
)
@FRONT_COST_OPTION
def finetune_cmd(data_root, clips_root, wheel, net, no_level_norm, folds, fold_seeds, limit, levels, cache, out,
                 hop_s, part, epochs, patches_per_epoch, lr_pretrained, seed, streamed, weighting, mixup, extra_root,
                 extra_weight, front_cost):  # fmt: skip
    """musicnn's later layers fine-tuned for genre: artist-grouped CV, valid split, levels, bundle."""
    if streamed and part != "backend":
        raise click.BadParameter("the streaming encoder serves a back end fine-tuned alone", param_hint="--stream")
    if extra_root and not streamed:
        raise click.BadParameter("the extra songs are encoded by the streaming encoder", param_hint="--extra")
    ft = finetune.FinetuneConfig(part=part, epochs=epochs, patches_per_epoch=patches_per_epoch,
                                 lr_pretrained=lr_pretrained, seed=seed, mixup=mixup)  # fmt: skip
    recipe = thin.Recipe("finetune", weighting=weighting, mixup=mixup, extra_weight=extra_weight if extra_root else 0)
    cfg = transfer.TransferConfig(net=net, features="pooled", level_norm=not no_level_norm)
    extra = find_tracks(extra_root, kind="extra") if extra_root else []  # a bad folder fails before the long part
    front_cost = front_cost if streamed else 1.0  # only the streaming encoder is slimmed
    run = MusicnnRun.load(data_root, clips_root, wheel, cfg, limit, cache, front=part == "midend", streamed=streamed,
                          front_cost=front_cost)  # fmt: skip
    extra_feats = thin.extra_features(run, extra, cache, log) if extra else []
    fit = finetune_recipe(run, run.material(ft, extra, extra_feats), recipe, streamed)
    kept = prune.kept(run.model.backbone) if streamed else None
    by_genre = {g: n for g in GENRES if (n := sum(t.genre == g for t in extra))}
    songs = None
    if extra:
        songs = {"root": str(extra_root), "songs": len(extra), "weight": extra_weight, "by_genre": by_genre}
    describe = {**transfer.describe(cfg), "finetune": asdict(ft), "streamed": streamed, "front_filters_kept": kept,
                "front_cost": front_cost,
                "weighting": weighting, "extra_songs": songs}  # fmt: skip
    family = f"finetune-{part}{'-stream' * streamed}-{cfg.net}"
    card = finetune_card(
        out.name,
        cfg,
        ft,
        run.tracks,
        *run.report(fit, folds, fold_seeds, out, hop_s, family, describe, levels),
        encoder_kept=kept,
        weighting=weighting,
        songs=songs,
        front_cost=front_cost,
    )
    (out / "MODEL_CARD.md").write_text(card)


@click.command(name="fit", short_help="Train a bundle on your own label folders.")
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


@click.command(name="thin", short_help="Back-end recipes for the thin genres, one table.")
@DATA_OPTION
@CLIPS_OPTION
@click.option("--extra", "extra_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Unverified songs to mix under training tracks or train on (the +mix and +extra songs recipes; "
                   "shared extra/, never scored).")  # fmt: skip
@WHEEL_OPTION
@click.option("--recipes", default=",".join(thin.RECIPES), show_default=True, help="Comma-separated recipe names.")
@click.option("--folds", default=5, show_default=True)
@click.option("--fold-seeds", default=3, show_default=True, help="Artist-grouped CV repeated over this many splits.")
@click.option("--limit", type=int, help="At most this many tracks per genre (tiny runs).")
@click.option("--epochs", default=finetune.FinetuneConfig.epochs, show_default=True, type=click.IntRange(1))
@click.option("--patches-per-epoch", default=finetune.FinetuneConfig.patches_per_epoch, show_default=True,
              type=click.IntRange(1))  # fmt: skip
@CACHE_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for THIN.md.")
@FRONT_COST_OPTION
def thin_cmd(data_root, clips_root, extra_root, wheel, recipes, folds, fold_seeds, limit, epochs, patches_per_epoch,
             cache, out, front_cost):  # fmt: skip
    """Score back-end recipes (sampling, augmentation, decision offsets) on the default's streamed rows by its own
    protocol: artist CV over fold splits, valid split, per-genre recall, thin-genre clip accuracy."""
    chosen = [name.strip() for name in recipes.split(",")]
    if unknown := [n for n in chosen if n not in thin.RECIPES]:
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(thin.RECIPES)}", param_hint="--recipes")
    augments = {a for n in chosen if thin.RECIPES[n].part != "stream" for a in thin.RECIPES[n].augment}
    patch_augments = {a for n in chosen if thin.RECIPES[n].part == "stream" for a in thin.RECIPES[n].augment}
    trains_on_extra = any(thin.RECIPES[n].extra_weight for n in chosen)
    if ("mix" in augments | patch_augments or trains_on_extra) and not extra_root:
        raise click.BadParameter("the +mix and +extra songs recipes need the songs", param_hint="--extra")
    extra = find_tracks(extra_root, kind="extra") if extra_root else []
    run = MusicnnRun.load(data_root, clips_root, wheel, transfer.TransferConfig(), limit, cache, streamed=True,
                          front_cost=front_cost)  # fmt: skip
    copies = thin.augmented_copies(run, augments, extra, cache / "musicnn-stream", log)
    nets = {thin.RECIPES[n].view for n in chosen} - {""}
    wheel = wheel or transfer.fetch_wheel(cache / "wheels")
    views = {net: rhythm.track_features(run.tracks, run.mels, cache / "rhythm", log) if net == "rhythm"
             else vgg.track_features(wheel, net, run.tracks, run.mels, cache / "vgg", log) for net in nets}  # fmt: skip
    budget = finetune.FinetuneConfig(epochs=epochs, patches_per_epoch=patches_per_epoch)
    extra_feats = thin.extra_features(run, extra, cache, log) if trains_on_extra else []
    mid = any(thin.RECIPES[n].part == "stream" for n in chosen)
    patches = thin.stream_patches(run, extra if trains_on_extra else [], cache, log) if mid else ([], [])
    patch_copies = thin.augmented_copies(run, patch_augments, extra, cache / "musicnn-stream", log, of_patches=True)
    material = run.material(budget, extra, extra_feats, copies, views, patches, patch_copies)
    rows = []
    for name in chosen:
        rows.append(thin.evaluate(material, thin.RECIPES[name], fold_seeds, folds, log))
        log(json.dumps(rows[-1]))
        note = (f"`rtgenre-train thin` on {len(run.tracks)} train + valid tracks: artist-grouped {folds}-fold CV "
                f"over {fold_seeds} fold splits; the plain recipe ({epochs} epochs of {patches_per_epoch} "
                "patches, every track the same within its genre) but for what a row changes"
                + (f"; the streaming encoder slimmed to {front_cost:.0%} of its front end (`prune.slim`)."
                   if front_cost < 1.0 else "."))  # fmt: skip
        thin.write(out, rows, note)


@click.command(name="ensemble", short_help="Fine-tuned musicnn averaged with crnn2d, by weight.")
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
    try:
        result = ensemble.mix_everywhere(c, run, checkpoints, folds, fold_seeds)
    except FileNotFoundError as e:  # a checkpoint the comparison did not leave
        raise click.ClickException(str(e)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    click.echo(json.dumps(result))


@click.command(name="refold", short_help="Rewrite a bundle's encoder folded and batched (same rows).")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@WHEEL_OPTION
@CACHE_OPTION
def refold_cmd(bundle, wheel, cache):
    """Rewrite BUNDLE's encoder.onnx with its constant front-end maps folded into the mid-end and a batch axis
    (one call steps every stream), after checking that a stream gets the same rows from both graphs."""
    try:
        click.echo(json.dumps(refold(bundle, wheel or transfer.fetch_wheel(cache / "wheels"))))
    except ModelError as e:
        raise click.ClickException(str(e)) from None
