import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import rtgenre, train_here

from rtgenre.frontend import MelParams
from rtgenre.model import load_bundle
from training.crossval import assign_folds
from training.data import GENRES, artist_folds, find_tracks, has_artists, stratified_folds
from training.export import PARITY_ATOL, export_onnx, write_bundle
from training.filterbank import mel_filterbank
from training.models import FAMILIES, build


def assert_serves(bundle: Path, song: Path) -> None:
    """`rtgenre classify` with the bundle: a verdict over its labels, the top of its own probabilities."""
    c = rtgenre("classify", "--json", "--model", str(bundle), str(song))
    assert c.returncode == 0, c.stderr
    verdict = json.loads(c.stdout)
    assert list(verdict["probs"]) == list(load_bundle(bundle).meta.labels)
    assert sum(verdict["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert verdict["genre"] == max(verdict["probs"], key=verdict["probs"].get)


def test_folds_never_split_a_track(data):
    tracks = find_tracks(data / "gtzan") + find_tracks(data / "gtzan_clips", kind="clip")
    fold = stratified_folds(tracks, 5, seed=0)
    for k in range(5):
        held = {t.key for t, f in zip(tracks, fold, strict=True) if f == k}
        train = {t.key for t, f in zip(tracks, fold, strict=True) if f != k}
        assert held and not held & train
    for g in GENRES:  # stratified: every genre spread evenly over the folds
        counts = np.bincount([f for t, f in zip(tracks, fold, strict=True) if t.genre == g], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_artist_folds_never_split_an_artist(data):
    tracks = find_tracks(data / "gtzan") + find_tracks(data / "gtzan_clips", kind="clip")
    tracks = [t for t in tracks if t.split in ("train", "valid")]
    assert has_artists(tracks) and len({t.artist for t in tracks}) >= 180
    fold = artist_folds(tracks, 5, seed=0)
    for k in range(5):
        held = {t.artist for t, f in zip(tracks, fold, strict=True) if f == k}
        train = {t.artist for t, f in zip(tracks, fold, strict=True) if f != k}
        assert held and not held & train
        # still stratified: rock has only 4 artists, so one fold of five may hold none of it
        assert len({t.genre for t, f in zip(tracks, fold, strict=True) if f == k}) >= 9


def test_without_an_artist_table_folds_fall_back_to_tracks(data, tmp_path):
    src = sorted((data / "gtzan" / "blues").glob("*.ogg"))[:6]
    for f in src:
        (tmp_path / "blues").mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / "blues" / f.name)
    tracks = find_tracks(tmp_path)
    assert not has_artists(tracks)
    assert sorted(np.bincount(artist_folds(tracks, 3, seed=0))) == [2, 2, 2]  # every track its own group


def test_folds_need_a_class_that_fills_them():
    assert sorted(np.bincount(assign_folds([0, 0, 1, 1], 2, seed=0))) == [2, 2]
    with pytest.raises(ValueError, match="2 folds need a class with at least 2 items; the largest has 1"):
        assign_folds([0, 1, 2], 2, seed=0)


def test_shared_split_lists_are_read(data):
    tracks = find_tracks(data / "gtzan")
    assert {t.split for t in tracks} == {"train", "valid"}
    assert sum(t.split == "valid" for t in tracks) == 97


def test_kaggle_and_original_layouts(data, tmp_path):
    src = sorted((data / "gtzan" / "blues").glob("*.ogg"))[:2] + sorted((data / "gtzan" / "rock").glob("*.ogg"))[:2]
    for layout, ext in (("Data/genres_original", "wav"), ("genres", "au")):
        for f in src:
            y, sr = sf.read(f)
            out = tmp_path / layout / f.parent.name / f"{f.stem}.{ext}"
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, y[:sr], sr)
        tracks = find_tracks(tmp_path if ext == "wav" else tmp_path / "genres")
        assert sorted(t.key for t in tracks if t.path.suffix == f".{ext}") == sorted(
            f"{f.parent.name}/{f.stem}" for f in src
        )
        assert {t.split for t in tracks} == {"train"}  # no split lists: all train, evaluated by CV


@pytest.mark.training
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_with_parity_and_runs_in_the_runtime(tmp_path, family, data):
    params = MelParams()
    model = build(family, params.n_mels, len(GENRES)).eval()
    assert export_onnx(model, tmp_path / "m.onnx", params.frames(3.0), params.n_mels) <= PARITY_ATOL
    write_bundle(tmp_path / family, model, family, GENRES, params, mel_filterbank(params), 3.0, 0.5, {}, "card")
    r = rtgenre(
        "classify", "--json", "--model", str(tmp_path / family), str(data / "gtzan" / "jazz" / "jazz.00001.ogg")
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["windows"] == 53


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_hand_features_find_the_tempo_of_a_click_track(bpm):
    from rtgenre.frontend import MelFrontend
    from training.models import HandFeatures

    params = MelParams()
    rng = np.random.default_rng(bpm)
    y = 0.01 * rng.normal(size=3 * params.sample_rate).astype(np.float32)
    click = np.sin(np.arange(400) * 0.3) * np.exp(-np.arange(400) / 80)
    for t in np.arange(0.1, 2.9, 60 / bpm):
        y[int(t * params.sample_rate) : int(t * params.sample_rate) + 400] += click
    mel = MelFrontend(params, mel_filterbank(params)).mel(y)
    features = HandFeatures(params.n_mels)(torch.from_numpy(mel[None].astype(np.float32)))
    assert features.shape == (1, HandFeatures(params.n_mels).size)
    assert abs(float(features[0, -2]) - bpm) < 0.06 * bpm  # within a frame of lag


def test_help_shows_every_command_summary_whole():
    from click.testing import CliRunner

    from training.cli import main

    commands = CliRunner().invoke(main, ["--help"]).stdout.split("Commands:")[1]
    assert "..." not in commands and len(commands.strip().splitlines()) == 14


def test_a_missing_training_extra_is_one_line_not_a_traceback():
    hide_torch = "import sys; sys.modules['torch'] = None; import training; training.main()"
    r = subprocess.run([sys.executable, "-c", hide_torch, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "rtgenre-train: the Python package 'torch' is missing; install the training extra: pip install 'rtgenre[train]'"
    ]


@pytest.mark.training
def test_tiny_training_run_produces_a_bundle_the_runtime_uses(data, tmp_path):
    out = tmp_path / "tiny"
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "rtgenre-train"),  # the installed entry point, as users run it
            "train",
            "--data",
            str(data / "gtzan"),
            "--clips",
            str(data / "gtzan_clips"),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--windows-per-epoch",
            "64",
            "--folds",
            "2",
            "--limit",
            "2",
            "--cache",
            str(tmp_path / "cache"),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    bundle = load_bundle(out)
    assert set(bundle.meta.extra["validation"]) == {"cv", "cv_full_tracks", "valid"}
    levels = bundle.meta.extra["valid_track_acc_by_input_level"]
    assert list(levels) == ["0 dB", "-10 dB", "-20 dB", "-30 dB", "-40 dB"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "Evaluation" in card and "| -30 dB |" in card
    assert (out / "learning_curve.png").stat().st_size > 0 and (out / "confusion.png").stat().st_size > 0
    assert_serves(out, data / "gtzan" / "jazz" / "jazz.00000.ogg")


@pytest.mark.training
def test_compare_writes_the_table_and_plots(data, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("limit: 2\nepochs: 1\nwindows-per-epoch: 32\nfolds: 2\nthreads: 1\n")
    r = subprocess.run(
        [sys.executable, "-m", "training", "compare", "--config", str(cfg), "--data", str(data / "gtzan"),
         "--out", str(tmp_path / "cmp"), "--families", "cnn,ann", "--seeds", "2", "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "cmp" / "RESULTS.md").read_text()
    assert "| cnn |" in table and "| ann |" in table and "10 s slices" in table
    assert "20 tracks" in table  # --limit 2 from the YAML config: 2 tracks x 10 genres
    for f in ("confusion_cnn.png", "curves_ann.png", "results.json"):
        assert (tmp_path / "cmp" / f).stat().st_size > 0
    runs = json.loads((tmp_path / "cmp" / "results.json").read_text())["families"]["cnn"]["runs"]
    assert [x["seed"] for x in runs] == [0, 1]

    # outputs of runs made side by side merge into one table, without training
    merge = ["compare", "--config", str(cfg), "--data", str(data / "gtzan"), "--out", str(tmp_path / "all"),
             "--families", "ann,cnn", "--cache", str(tmp_path / "cache")]  # fmt: skip
    r = train_here(*merge, "--merge", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr[-2000:]
    merged = (tmp_path / "all" / "RESULTS.md").read_text()
    assert merged.index("| ann |") < merged.index("| cnn |") and (tmp_path / "all" / "curves_cnn.png").is_file()
    assert (tmp_path / "all" / "confusion_cnn.png").stat().st_size > 0  # drawn again from the best seed's counts
    r = train_here(*merge, "--merge", str(tmp_path / "cmp"), "--merge", str(tmp_path / "cmp"))
    assert r.returncode == 2 and "same seed in both" in r.stderr

    # a model shipped from that comparison reuses its CV and carries its table in the card
    ship = ["train", "--config", str(cfg), "--data", str(data / "gtzan"), "--folds", "0", "--seed", "1",
            "--comparison", str(tmp_path / "cmp"), "--cache", str(tmp_path / "cache")]  # fmt: skip
    r = train_here(*ship, "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr[-2000:]
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "How the families and recipes compare" in card and "| ann |" in card and "Recipe: at most 1 epochs" in card
    assert "That is seed 1's run; over the 2 seeds of this family and recipe" in card
    cv = load_bundle(tmp_path / "m").meta.extra["validation"]["cv"]
    assert cv["track_acc"] == runs[1]["cv"]["track_acc"]
    r = train_here(*ship, "--out", str(tmp_path / "m2"), "--epochs", "2")
    assert r.returncode == 2 and "was run at this recipe" in r.stderr


@pytest.mark.training
def test_transfer_and_distillation_tiny_runs_ship_bundles_the_runtime_plays(data, tmp_path, wheel):
    """The musicnn transfer bundle (level-free verdict), a fine-tuned one, and a crnn2d student distilled from
    the transfer teacher."""
    tiny_data = ["--data", str(data / "gtzan"), "--limit", "2", "--folds", "2"]
    common = [*tiny_data, "--cache", str(tmp_path / "cache")]
    r = subprocess.run([sys.executable, "-m", "training", "transfer", *common, "--wheel", str(wheel),
                        "--fold-seeds", "1", "--out", str(tmp_path / "teacher")],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    meta = load_bundle(tmp_path / "teacher").meta
    assert meta.frontend.sample_rate == 16000 and meta.extra["training"]["folds_by"] == "artist"
    levels = meta.extra["valid_track_acc_by_input_level"]
    assert levels["0 dB"] == levels["-30 dB"]  # level normalisation in the graph
    assert "Jordi Pons and Xavier Serra" in (tmp_path / "teacher" / "MODEL_CARD.md").read_text()
    song = data / "gtzan" / "jazz" / "jazz.00000.ogg"
    assert_serves(tmp_path / "teacher", song)

    # the shipped default's recipe: the back end fine-tuned on the streaming encoder's rows, shipped with it,
    # artist-balanced with mixup, learning from unverified extra songs too (two here)
    extra = tmp_path / "extra"
    for genre in ("rock", "reggae"):
        (extra / genre).mkdir(parents=True)
        first = sorted((data / "extra" / genre).glob("*.ogg"))[0]
        (extra / genre / first.name).symlink_to(first)
    tiny = ["--part", "backend", "--stream", "--epochs", "1", "--patches-per-epoch", "64", "--fold-seeds", "1",
            "--no-levels", "--extra", str(extra)]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "training", "finetune", *common, *tiny, "--wheel", str(wheel),
                        "--out", str(tmp_path / "ft")], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    meta = load_bundle(tmp_path / "ft").meta
    assert meta.extra["family"] == "finetune-backend-stream-MSD_musicnn"
    assert meta.extra["training"]["folds_by"] == "artist"
    assert meta.encoder.front_width < 561 and meta.encoder.width < 753  # only the maps and row columns that vary
    assert meta.extra["onnx_parity_max_abs_diff"] <= 1e-4 and meta.extra["encoder_parity_max_rel_diff"] <= 1e-5
    assert meta.extra["encoder_ms_per_hop"] > 0
    card = (tmp_path / "ft" / "MODEL_CARD.md").read_text()
    assert "back end (pooling batch norm, dense 200) fine-tuned" in card and "Not measured in this run" in card
    assert "**2 unverified non-GTZAN songs**" in card and "each artist weighs the same" in card and "mixup" in card
    config = meta.extra["training"]["config"]
    assert config["extra_songs"]["songs"] == 2 and config["weighting"] == "artist" and config["finetune"]["mixup"] > 0
    assert "streaming encoder" in card and "kept per block" in card and meta.extra["training"]["config"]["streamed"]
    assert meta.extra["valid_track_acc_by_input_level"] == {}
    assert config["front_cost"] == 0.8 and "to 80% of the varying filters" in card and "slimming (80%" in card
    assert_serves(tmp_path / "ft", song)
    from training.base import load_base

    load_base(tmp_path / "ft", wheel)  # `fit --base` recovers the slimmed encoder: its refitted mid-end's rows

    # train's --cache is the log-mel folder; its teacher caches beside it, where transfer left the features
    student = [*tiny_data, "--cache", str(tmp_path / "cache" / "mel")]
    r = subprocess.run([sys.executable, "-m", "training", "train", *student, "--wheel", str(wheel), "--epochs", "1",
                        "--threads", "1", "--windows-per-epoch", "32", "--family", "crnn2d", "--distill", "0.7",
                        "--level-norm", "--out", str(tmp_path / "student")], capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    card = (tmp_path / "student" / "MODEL_CARD.md").read_text()
    assert "Distilled: 70%" in card and "Level normalisation" in card
    levels = load_bundle(tmp_path / "student").meta.extra["valid_track_acc_by_input_level"]
    assert levels["0 dB"] == levels["-30 dB"]  # level normalisation in the graph
    assert_serves(tmp_path / "student", song)


def test_the_streaming_encoder_serves_only_a_back_end_fine_tuned_alone(data):
    args = ["finetune", "--data", str(data / "gtzan"), "--part", "midend", "--stream", "--out", "unused"]
    r = subprocess.run([sys.executable, "-m", "training", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "the streaming encoder serves a back end fine-tuned alone" in r.stderr


def test_an_extra_folder_without_genre_folders_is_one_line_before_any_work(data, tmp_path):
    args = ["finetune", "--data", str(data / "gtzan"), "--stream", "--extra", str(tmp_path), "--out", "unused"]
    r = subprocess.run([sys.executable, "-m", "training", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no GTZAN genre folders found" in r.stderr and "Traceback" not in r.stderr


def test_an_ensemble_mix_runs_from_one_model_to_the_other(tmp_path):
    from training.ensemble import checkpoint_fold_model, mixes

    labels = np.array([0, 1, 1, 0])
    crnn = np.eye(2)[[0, 0, 1, 1]]  # right on tracks 0 and 2, and sure of itself
    musicnn = np.eye(2)[[0, 1, 1, 1]] * 0.6 + 0.2  # right on 0, 1 and 2, less sure
    acc = mixes(crnn, musicnn, labels)
    assert acc["1"] == 0.75 and acc["0"] == 0.5 and acc["0.5"] == 0.5  # half and half: crnn2d outvotes it
    fold = np.array([0, 1, 0, 1])
    (tmp_path / "fold0").touch()
    fit = checkpoint_fold_model(fold, lambda k: tmp_path / f"fold{k}", lambda p: p)
    assert fit(np.flatnonzero(fold != 0)) == tmp_path / "fold0"  # the checkpoint trained without fold 0's tracks
    with pytest.raises(FileNotFoundError, match="fold1: no such checkpoint"):
        fit(np.flatnonzero(fold != 1))
