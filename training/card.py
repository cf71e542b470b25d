"""The model card: what the model is, what it was trained on, and how well it really does."""

from __future__ import annotations

import numpy as np

from .evaluate import Scores, per_genre_table, summary_table
from .models import LEVEL_FLOOR_DB
from .train import TrainConfig
from .transfer import WINDOW_S

TARGET_TRACK_ACC = 0.80  # unseen fault-filtered GTZAN tracks: roughly where large pretrained-model probes land
LABELS = {
    "cv": "5-fold CV, all tracks",
    "cv_full_tracks": "5-fold CV, 30 s tracks only",
    "valid": "train → valid split (artist-disjoint)",
}


def levels_section(levels: dict[str, float] | None) -> str:
    """The card's table of valid-split accuracy by input level."""
    if not levels:
        return "Not measured in this run (no valid split, or `--no-levels` skipped it)."
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in levels.items())
    return ("Valid-split track accuracy with the input turned down (the model trained on the train part):\n\n"
            f"| input level | track acc |\n|---|---|\n{rows}")  # fmt: skip


def model_card(name: str, family: str, cfg: TrainConfig, params, data: dict, results: dict[str, Scores],
               comparison: list[tuple[str, str]] = (), seeds: dict[int, float] | None = None,
               folds_by: str = "artist", levels: dict[str, float] | None = None) -> str:  # fmt: skip
    named = {LABELS.get(k, k).replace("CV", f"{folds_by}-grouped CV"): v for k, v in results.items()}
    a = cfg.augment
    counts = data["tracks_per_genre"]
    rows = "\n".join(f"| {g} | {c['full']} | {c['clip']} |" for g, c in counts.items())
    cv, valid = results.get("cv"), results.get("valid")
    predicted = "No cross-validation was run for this model."
    if cv:
        verdict = "reaches" if cv.track_acc >= TARGET_TRACK_ACC else "falls short of"
        predicted = (
            f"Cross-validation predicts a track-level accuracy of about **{cv.track_acc:.2f}** "
            f"(macro-F1 {cv.macro_f1:.2f}) on unseen GTZAN tracks, which {verdict} the target of "
            f"{TARGET_TRACK_ACC:.2f} (about what probes of billion-parameter pretrained models reach on the "
            "fault-filtered split). "
            + ("Its folds are stratified by genre and grouped by artist (no artist on both sides), as new music "
               "would be." if folds_by == "artist" else
               "Its folds are stratified by genre but not artist-disjoint (GTZAN repeats artists within each part "
               "of the split), which flatters it by 10 points or more.")
        )  # fmt: skip
    if cv and seeds and len(seeds) > 1:
        accs = list(seeds.values())
        predicted += (
            f" That is seed {cfg.seed}'s run; over the {len(accs)} seeds of this family and recipe in the "
            f"comparison, cross-validation gives {sum(accs) / len(accs):.3f} (from {min(accs):.3f} to "
            f"{max(accs):.3f}): the seed alone moves the figure that much."
        )
    if valid and folds_by == "artist":
        predicted += (
            f" The artist-disjoint train → valid run gives {valid.track_acc:.2f}: a second honest estimate for new "
            "artists, from fewer training tracks (the train part alone has only 1–11 full tracks of each of the "
            "six thin genres)."
        )
    elif valid:
        predicted += (
            f" The artist-disjoint train → valid run ({valid.track_acc:.2f}) errs the other way: the train "
            "part alone has only 1–11 full tracks of each of the six thin genres. Expect the held-out test "
            "part of the split to land between the two."
        )
    compared = ""
    if comparison:
        blocks = "\n\n".join(f"Recipe: {recipe}.\n\n{table}" for recipe, table in comparison)
        compared = f"""
## How the families and recipes compare (same folds)
Cross-validated by `python -m training compare` on the folds each recipe line names; cells are the mean
over seeds with the best seed in brackets. rtgenre ships as its light model the family with the best
mean track accuracy among those that run at least 100× real time on one CPU core, trained with the
recipe that cross-validates best for it (the default, musicnn-gtzan, is in results/MODELS.md). The
"5-fold CV" rows below are this model's family, recipe and seed ({cfg.seed}) in those tables; the
shipped model is that recipe trained on all train + valid tracks.

{blocks}
"""
    if a.stretch or a.pitch_bands or a.noise_p:
        warps = (f"mel-domain time stretch (±{a.stretch:.0%}) and pitch shift (±{a.pitch_bands} bands), background "
                 "noise, ")  # fmt: skip
    else:
        warps = "no time stretch, pitch shift or noise (the `light` recipe), "
    if cfg.val_fraction:
        stopping = (f"the epoch kept is the best of the second half by the track accuracy of an inner "
                    f"validation split ({cfg.val_fraction:.0%} of each run's own training tracks), with early "
                    f"stopping after {cfg.patience} epochs without progress: no reported fold is ever looked at "
                    "during training.")  # fmt: skip
    else:
        stopping = "every epoch runs and the last is kept: no early stopping, so nothing is tuned to any fold."
    variant = ""
    if cfg.distill:
        extra = data.get("extra_unlabelled")
        songs = (f", and on the teacher's labels alone for {extra['songs']} unlabelled non-GTZAN songs from "
                 f"`{extra['root']}` (never evaluated)") if extra else ""  # fmt: skip
        variant += (f"\n\nDistilled: {cfg.distill:.0%} of each window's target is the soft label of a teacher (a "
                    "linear head on the pretrained musicnn, fitted on the same run's training tracks only) for that "
                    f"place in the track{songs}. musicnn: Jordi Pons and Xavier Serra, 2019, ISC licence.")  # fmt: skip
    if cfg.level_norm:
        variant += (
            f"\n\nLevel normalisation: the graph refers each window to its mean power first (bins more than "
            f"{LEVEL_FLOOR_DB:g} dB under it are clamped there), so the verdict does not follow the input level; "
            "the silence gate still sees the true level."
        )
    level = ", each window referred to its mean power" if cfg.level_norm else ", no per-window normalisation"
    extra_use = ("The unverified non-GTZAN songs of `extra/` served only as unlabelled material for distillation "
                 "(below), never as labels or for evaluation." if data.get("extra_unlabelled") else
                 "The unverified non-GTZAN songs of `extra/` were **not** used.")  # fmt: skip
    return f"""# Model card: {name}

A `{family}` classifier of log-mel windows into the ten GTZAN genres, for real-time use in
rtgenre. Input: {cfg.window_s:g} s windows of {params.n_mels}-band log-mel ({params.sample_rate} Hz,
n_fft {params.n_fft}, hop {params.hop_length}, fixed 1.0 reference dB{level}).
Output: ten genre probabilities. The front end runs in numpy in the runtime; the filterbank ships
in `filterbank.npy`.

## Training data
Real GTZAN tracks of the fault-filtered split (Kereliuk et al. 2015), train and valid parts only,
from `{data["data_root"]}` plus 2–3 s real GTZAN clips from `{data["clips_root"]}`. {extra_use} The test
part of the split was not touched.

| genre | 30 s tracks | 2–3 s clips |
|---|---|---|
{rows}

Class-balanced sampling (each genre drawn equally often), random 3 s crops (clips looped to fill
a window, as the runtime pads short input), random gain ±{a.gain_db:g} dB, {warps}SpecAugment masks,
mixup (α {a.mixup_alpha}). At most {cfg.epochs} epochs of {cfg.windows_per_epoch} windows, AdamW,
one-cycle learning rate, seed {cfg.seed}; {stopping}{variant}
{compared}
## Evaluation ({folds_by}-grouped folds: no {"artist" if folds_by == "artist" else "slice of a track"} on both sides)
Window accuracy scores every {cfg.window_s:g} s window (1.5 s hop); a track's verdict is the mean of
its windows' probabilities. Clips count as tracks of one (looped) window. Macro-F1 is over the
genres present in that evaluation.

{summary_table(named)}

Per-genre F1 (number of tracks in brackets):

{per_genre_table(named)}

`confusion.png`: the cross-validation confusion matrix; `learning_curve.png`: training loss and
inner-validation track accuracy per epoch.

{predicted} The valid split has no hiphop or reggae tracks and 3 rock clips, so its per-genre
figures cover seven genres at most; the valid-split figures come from a model trained on the
train part only, the shipped model from all of train + valid.

## The same verdict at any level
{levels_section(levels)}

## Known limits
- Six genres (country, disco, hiphop, metal, reggae, rock) have only 8–13 full tracks each here,
  plus 8–38 short clips; their figures rest on few tracks and vary from fold to fold.
- GTZAN is 30 s excerpts of 1990s-era recordings at 22 kHz: music far from it (modern
  production, other genres) gets one of these ten labels anyway, usually with lower confidence.
{"" if folds_by == "artist" else "- Cross-validation folds are stratified by genre but not by artist (see above)."}
"""


def transfer_card(name: str, cfg, tracks: list, results: dict[str, Scores], seeds: dict[int, float],
                  levels: dict[str, float], ms_per_window: float, folds_by: str) -> str:  # fmt: skip
    """The card of a musicnn transfer bundle: what it stands on (and whose work), and how well it does."""
    return musicnn_card(
        name, cfg, tracks, results, seeds, levels, ms_per_window, folds_by,
        head=f"the frozen network, and a linear head (`{cfg.features}` features, class-balanced logistic regression, "
             f"C {cfg.c:g})",
        trained="Only the head is trained.",
        chosen=f"The head's settings (`{cfg.features}` features, C {cfg.c:g}) were chosen among six (two feature "
               "sets, three strengths) by artist CV on these same folds, which flatters the CV figure slightly. The "
               "valid-split figures of all six were printed too, but did not decide: the chosen setting was not the "
               "best on valid (results/MODELS.md).",
        limit="The backbone is frozen: what MSD's tags did not teach it about these ten genres, the head cannot add.",
    )  # fmt: skip


def finetune_card(name: str, cfg, ft, tracks: list, results: dict[str, Scores], seeds: dict[int, float],
                  levels: dict[str, float], ms_per_window: float, folds_by: str, encoder_kept: str | None = None,
                  weighting: str = "track", songs: dict | None = None, front_cost: float = 1.0) -> str:  # fmt: skip
    """The card of a bundle whose musicnn back end (and mid-end) was fine-tuned for genre (``encoder_kept``: on
    its streaming encoder's rows, with the front-end filters it kept per block; ``songs``: the unverified extra
    songs it also learnt from; ``front_cost`` < 1: its encoder was slimmed to that share)."""
    layers = "mid-end and back end" if ft.part == "midend" else "back end (pooling batch norm, dense 200)"
    each = "each artist weighs the same within its genre (its tracks share its weight)" if weighting == "artist" else \
        "each track weighs the same"  # fmt: skip
    filed = ", ".join(f"{g} {n}" for g, n in (songs or {}).get("by_genre", {}).items())
    sampling = f"{each}, each genre the same. " + (
        f"**{songs['songs']} unverified non-GTZAN songs** from `{songs['root']}` (filed by their uploaders under "
        f"a genre: {filed}) are training material too, each weighing {songs['weight']:g} of a GTZAN "
        f"{'artist' if weighting == 'artist' else 'track'}: never in a fold that is scored, so every figure below "
        "is GTZAN's alone; they are what lifted rock and reggae recall (results/thin/THIN.md)"
        if songs else "The unverified `extra/` songs were not used")  # fmt: skip
    mixed = f", mixup of patches and labels (Beta({ft.mixup:g}, {ft.mixup:g}))" if ft.mixup else ""
    if encoder_kept and front_cost < 1:
        encoder_kept += (f" (after also dropping, to {front_cost:.0%} of the varying filters' multiply-adds, those "
                         "whose maps the others stand in for best: each held at its mean, the mid-end's first "
                         "convolution refitted by least squares to the rest; `prune.slim`, no labels)")  # fmt: skip
    return musicnn_card(
        name, cfg, tracks, results, seeds, levels, ms_per_window, folds_by, encoder_kept=encoder_kept,
        head=f"the network with its {layers} fine-tuned for genre, and a new ten-way head", sampling=sampling,
        trained=f"The {layers} and the head are trained ({ft.epochs} epochs of {ft.patches_per_epoch} patches drawn "
                f"class-balanced{mixed}, AdamW, learning rate {ft.lr_head:g} for the head and {ft.lr_pretrained:g} "
                "for the pretrained layers, dropout 0.5, musicnn's batch-norm statistics kept; no early stopping). "
                f"musicnn's {'front end stays' if ft.part == 'midend' else 'front and mid-end stay'} frozen.",
        chosen=f"The budget ({ft.epochs} epochs), learning rates, the sampling recipe"
               + (f" and the encoder's slimming ({front_cost:.0%} of its front end)" if front_cost < 1 else "")
               + " were chosen among many by "
               "artist CV on these same folds (results/MODELS.md and results/thin/THIN.md list them all), which "
               "flatters the CV figure slightly.",
        limit="The front end is frozen and 451 tracks teach the rest: the fine-tuned layers can still overfit "
              "the few artists of rock and blues.",
    )  # fmt: skip


def musicnn_card(name: str, cfg, tracks: list, results: dict[str, Scores], seeds: dict[int, float],
                 levels: dict[str, float], ms_per_window: float, folds_by: str, *, head: str, trained: str,
                 chosen: str, limit: str, encoder_kept: str | None = None,
                 sampling: str = "each track weighs the same, each genre the same. The unverified `extra/` songs "
                                 "were not used") -> str:  # fmt: skip
    named = {
        LABELS.get(k, k).replace("CV", f"{folds_by}-grouped CV"): v for k, v in results.items() if k != "cv_by_track"
    }
    if "cv_by_track" in results:
        named["5-fold CV by track (artists straddle folds: flattering)"] = results["cv_by_track"]
    accs = list(seeds.values())
    spread = f"{np.mean(accs):.3f} ± {np.std(accs):.3f} over {len(accs)} fold splits" if len(accs) > 1 else ""
    clips = sum(t.kind == "clip" for t in tracks)
    norm = ("each window's power is first scaled to a fixed reference (the median of the training patches), so "
            "the verdict does not depend on the input level" if cfg.level_norm else
            "no level normalisation: the verdict follows the input level")  # fmt: skip
    inputs = (
        "Input: 96-band dB log-mel frames at 16 kHz (n_fft 512, hop 256) from rtgenre's numpy front end, "
        "through a streaming encoder (`encoder.onnx`, run by `rtgenre/encoder.py`): each frame's power is "
        "scaled by a fixed reference over the mean power of the 3 s up to it, so the verdict does not depend "
        "on the input level, compressed as musicnn does (log10(1 + 10000·power)), and musicnn's front and "
        "mid-end convolutions run once per frame (rows trail the audio by 73 frames, 1.2 s), without the "
        "front-end filters that never vary on the training tracks (ReLU before batch norm leaves most of "
        f"musicnn's at zero: their maps are a constant; kept per block: {encoder_kept}); the window model "
        f"pools {WINDOW_S:g} s of rows into {head}"
        if encoder_kept else
        f"Input: {WINDOW_S:g} s windows of 96-band dB log-mel at 16 kHz (n_fft 512, hop 256), computed by "
        f"rtgenre's numpy front end; inside the graph {norm}, then musicnn's own log10(1 + 10000·power) "
        f"compression, {head}"
    )  # fmt: skip
    cost = "per window and its share of the encoder per 0.5 s hop" if encoder_kept else "per window"
    return f"""# Model card: {name}

A genre classifier on **musicnn** ({cfg.net}), a music-tagging network pretrained on far more music
than GTZAN holds. {inputs}. Output: ten genre probabilities. {ms_per_window:.1f} ms {cost}
on one CPU thread (ONNX Runtime, batches of 32): about {500 / ms_per_window:.0f}× real time at a 0.5 s hop.

## Credits
musicnn by Jordi Pons and Xavier Serra ("musicnn: pre-trained convolutional neural networks for music
audio tagging", ISMIR 2019 late-breaking demo), ISC licence; weights read from the `musicnn==0.1.0`
wheel's TensorFlow checkpoint and ported to torch (tag probabilities within 1e-6 of the original
graph on real audio: `tests/test_musicnn.py`).

## Training data
{len(tracks)} real GTZAN tracks of the fault-filtered split's train and valid parts ({clips} of them
2–3 s clips), every 3 s patch at a 1.5 s hop; {sampling}; the test part was not touched. {trained}

## Evaluation ({folds_by}-grouped folds: no {"artist" if folds_by == "artist" else "track"} on both sides)
A track's verdict is the mean of its patches' probabilities; clips are one looped patch.
Cross-validation track accuracy {spread}.

{summary_table(named)}

Per-genre F1 (number of tracks in brackets):

{per_genre_table(named)}

`confusion.png`: the {folds_by}-grouped cross-validation confusion matrix.

{chosen}

## The same verdict at any level
{levels_section(levels)}

## Known limits
- Rock has 4 artists and blues 6 in train + valid: their figures rest on very few artists.
- {limit}
- GTZAN is 30 s excerpts of 1990s-era recordings: music far from it gets one of these ten labels anyway.
"""


def quantized_note(f: dict) -> str:
    """What int8 quantisation did to a bundle, appended to its float model's card."""
    return f"""
## int8 (this bundle)
This bundle is the model above with its graph quantised to int8 by ONNX Runtime (static, QDQ,
per-channel weights), calibrated on {f["calibration_windows"]} real windows of the GTZAN train
split. On every window of the valid split its top genre agrees with the float graph's on
{f["valid_window_agreement"]:.1%} of windows and {f["valid_track_agreement"]:.1%} of tracks
(largest probability difference {f["max_abs_prob_diff"]:.3f}); valid-split track accuracy
{f["valid_track_acc_float"]:.3f} (float) → {f["valid_track_acc_int8"]:.3f} (int8), both for the
shipped head, which also saw the valid split, so only the difference is the figure. Cost:
{f["ms_per_window_float"]} → {f["ms_per_window_int8"]} ms per window on one CPU thread.
"""


MEANING = {
    "groups file": "the groups of the `--groups` table",
    "artist tag": "the files' artist tags",
    "album tag": "the files' album tags",
    "sub-folder": "the sub-folder under each label (an album or artist folder)",
    "file": "nothing: every file is its own group, so one artist's or album's files can sit on both sides and the "
    "figure flatters (pass `--groups FILE.tsv` for an honest one)",
}


def fit_card(name: str, base, encoded, evaluation, counts: dict[str, int], ms_per_window: float) -> str:
    """The card of a bundle ``rtgenre-train fit`` made of a user's labelled folders."""
    ft = evaluation.scores if evaluation else None
    rows = "\n".join(
        f"| {label} | {n} | "
        + (f"{evaluation.recall[label]:.2f} | {ft.per_genre_f1.get(label, 0.0):.2f} |" if evaluation else "– | – |")
        for label, n in counts.items()
    )
    skipped = "".join(f"\n- `{f}`: {why}" for f, why in list(encoded.skipped.items())[:20])
    more = len(encoded.skipped) - 20
    if more > 0:
        skipped += f"\n- … and {more} more"
    skipped = (
        f"{len(encoded.skipped)} files could not be decoded and were left out:{skipped}"
        if skipped
        else "Every file decoded."
    )
    if evaluation:
        verdict = (
            f"{evaluation.folds}-fold cross-validation, stratified by label and grouped by "
            f"{MEANING[evaluation.grouped_by]}, gives a file accuracy of **{ft.track_acc:.3f}** (macro-F1 "
            f"{ft.macro_f1:.3f}, window accuracy {ft.window_acc:.3f}): each file is scored by a model that never "
            "heard its group, which is what to expect of new music of these labels from groups it has not heard."
        )
    else:
        verdict = "No cross-validation was run (`--folds 0`): nothing here says how well it does on new music."
    f = base.bundle.meta
    return f"""# Model card: {name}

A classifier of {len(counts)} labels ({", ".join(counts)}) made by `rtgenre-train fit` from
`{encoded.collection.root}`. It runs the streaming encoder of `{f.name}` unchanged (musicnn's front and
mid-end, {f.encoder.width} values a frame, level-normalised: the verdict does not follow the input level)
and a window model trained for these labels: musicnn's tag-trained back end ({base.net}, from the
`musicnn==0.1.0` wheel; Jordi Pons and Xavier Serra, ISC licence) fine-tuned under a new head on 3 s
windows of the files' streamed rows, drawn label- and file-balanced. {ms_per_window:.1f} ms per window
and its share of the encoder per 0.5 s hop on one CPU thread.

## Data and evaluation
{sum(counts.values())} files. {skipped}

{verdict}

| label | files | CV recall | CV F1 |
|---|---|---|---|
{rows}

`confusion.png`: the cross-validation confusion matrix (files).

## Known limits
- It knows only these labels: any music gets one of them, usually with lower confidence when it is
  far from all of them.
- Few groups per label make the figures above vary with the folds.
"""
