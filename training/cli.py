"""`rtgenre-train` (`python -m training`): each command maps its options onto a recipe's config and calls it.

The log-mel families (`train`, `compare`, `levels`, `quantize`, `saliency`) are here; the musicnn recipes in
``cli_musicnn``, the lyric experiments in ``cli_lyrics``. Every recipe is judged by ``protocol``: artist-grouped
cross-validation over train + valid, the artist-disjoint valid split, and the input levels.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import cli_lyrics, cli_musicnn
from .compare import compare_families, load_comparison, merge
from .data import GENRES, DataError
from .models import FAMILIES
from .options import CLIPS_OPTION, DATA_OPTION, MEL_CACHE_OPTION, common, data_option, train_config
from .protocol import FoldError, attach_teacher, grouping, load_collection, valid_levels
from .saliency import plot_tracks
from .ship import Comparison, ShipConfig, ship
from .train import load_checkpoint


class Main(click.Group):
    """The command group: too few tracks or artists for the folds, found deep in a run, is a usage error; a
    folder without genre folders or audio is one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FoldError as e:
            raise click.BadParameter(str(e), param_hint="--folds") from None
        except DataError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=Main)
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
def train_cmd(out: Path, family: str, hop_s: float, seed: int, comparison: tuple[Path, ...], **opts):
    """Evaluate one family (CV, valid split), train it on everything, export the bundle."""
    cfg = train_config(opts, family, seed)
    found = None
    if comparison:
        try:
            found = Comparison(*load_comparison(comparison, cfg, opts["folds_by"]))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--comparison") from None
    c = load_collection(opts["data_root"], opts["clips_root"], opts["limit"], opts["cache"])
    attach_teacher(c, cfg, opts["extra_root"], opts["wheel"], opts["cache"])
    ship(c, ShipConfig(cfg, opts["folds"], grouping(c, opts["folds_by"]), hop_s, opts["checkpoints"]), out, found)


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
def compare_cmd(out: Path, families: str, seeds: int, note: str, first_seed: int, merge_dirs: tuple[Path, ...],
                **opts):  # fmt: skip
    """Cross-validate every family over several seeds; write RESULTS.md, results.json and plots."""
    names = families.split(",")
    if unknown := [f for f in names if f not in FAMILIES]:
        raise click.BadParameter(
            f"unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}", param_hint="--families"
        )
    c = load_collection(opts["data_root"], opts["clips_root"], opts["limit"], opts["cache"])
    folds_by = grouping(c, opts["folds_by"])
    out.mkdir(parents=True, exist_ok=True)
    base = train_config(opts, names[0], first_seed)
    if merge_dirs:
        try:
            merge(out, merge_dirs, names, opts["folds"], folds_by, c.tracks, base, c.params, note)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--merge") from None
        return
    if opts["checkpoints"]:
        opts["checkpoints"].mkdir(parents=True, exist_ok=True)
    attach_teacher(c, base, opts["extra_root"], opts["wheel"], opts["cache"])
    compare_families(c, base, names, range(first_seed, first_seed + seeds), opts["folds"], folds_by,
                     opts["checkpoints"], out, note)  # fmt: skip


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


@main.command(name="quantize", short_help="An int8 copy of a bundle, with its accuracy change.")
@click.option("--model", "model_spec", required=True, help="The float bundle (a shipped name or a directory).")
@data_option("GTZAN copy: calibration windows from its train split, agreement measured on its valid split.")
@click.option("--windows", "n_windows", default=256, show_default=True, help="Calibration windows.")
@MEL_CACHE_OPTION
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
def quantize_cmd(model_spec, data_root, n_windows, cache, out):
    """int8 copy of a bundle (ONNX Runtime static, calibrated on real train-split windows), and what it costs."""
    from rtgenre.model import load_bundle

    from .quantize import quantize_bundle

    bundle = load_bundle(model_spec)
    if bundle.meta.encoder:
        raise click.BadParameter(f"{bundle.meta.name} classifies a streaming encoder's rows; quantize takes a "
                                 "model of mel windows", param_hint="--model")  # fmt: skip
    click.echo(json.dumps(quantize_bundle(bundle, data_root, n_windows, cache, out)))


@main.command(name="saliency", short_help="Occlusion maps of what drives a prediction.")
@click.argument("tracks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG to write.")
@click.option(
    "--model", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Bundle (default: shipped)."
)
def saliency_cmd(tracks, out, model):
    """Occlusion maps: which time-frequency regions drive the audio model's prediction."""
    plot_tracks(list(tracks), out, model)


for command in (cli_musicnn.transfer_cmd, cli_musicnn.finetune_cmd, cli_musicnn.fit_cmd, cli_musicnn.thin_cmd,
                cli_musicnn.ensemble_cmd, cli_musicnn.refold_cmd, cli_lyrics.fusion_cmd, cli_lyrics.fusion_mel_cmd,
                cli_lyrics.lyrics_model_cmd):  # fmt: skip
    main.add_command(command)
