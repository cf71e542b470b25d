"""`rtgenre-train fit`: a user's own labels, from label folders of real tracks to a bundle the runtime serves."""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import ROOT, rtgenre, tone, train_here, until_eos, write_audio

from rtgenre.errors import ModelError
from training.base import load_base
from training.folders import CollectionError, check_folds, scan

# GTZAN genres under labels GTZAN does not use, three albums (sub-folders) of one track each
TREE = {"sonata": "classical", "bebop": "jazz", "chart": "pop"}


def make_tree(data: Path, root: Path, per_label: int = 3) -> Path:
    for label, genre in TREE.items():
        for i, src in enumerate(sorted((data / "gtzan" / genre).glob("*.ogg"))[:per_label]):
            (root / label / f"album{i}").mkdir(parents=True)
            (root / label / f"album{i}" / src.name).symlink_to(src)
    return root


def test_labels_are_the_folders_and_groups_the_sub_folders(data, tmp_path):
    c = scan(make_tree(data, tmp_path / "music"))
    assert c.labels == ("bebop", "chart", "sonata") and len(c.files) == 9
    assert c.grouped_by == "sub-folder" and len({f.group for f in c.files}) == 9
    assert scan(tmp_path / "music", exclude=("chart",)).labels == ("bebop", "sonata")


def test_groups_come_from_a_table_then_from_artist_tags(tmp_path):
    for label, artists in (("a", ["x", "y"]), ("b", ["x", "z"])):
        (tmp_path / label).mkdir()
        for artist in artists:
            with sf.SoundFile(tmp_path / label / f"{artist}.flac", "w", 16000, 1) as f:
                f.artist = artist
                f.write(tone(1.0, 16000))
    c = scan(tmp_path)
    assert c.grouped_by == "artist tag" and [f.group for f in c.files] == ["x", "y", "x", "z"]
    table = tmp_path / "groups.tsv"
    table.write_text("file\tgroup\na/x.flac\t1\na/y.flac\t2\nb/x.flac\t3\nb/z.flac\t4\n")
    assert [f.group for f in scan(tmp_path, groups_file=table).files] == ["1", "2", "3", "4"]
    table.write_text("a/x.flac\t1\n")
    with pytest.raises(CollectionError, match="names no group for 3 files"):
        scan(tmp_path, groups_file=table)


def test_collections_cv_cannot_use_are_one_line_errors(tmp_path):
    (tmp_path / "only").mkdir()
    write_audio(tmp_path / "only" / "a.wav", tone(1.0), 22050)
    with pytest.raises(CollectionError, match=r"need at least 2 label folders with audio files in them \(found only\)"):
        scan(tmp_path)
    (tmp_path / "other").mkdir()
    write_audio(tmp_path / "other" / "b.wav", tone(1.0), 22050)
    write_audio(tmp_path / "other" / "c.wav", tone(1.0), 22050)
    c = scan(tmp_path)
    assert c.grouped_by == "file"
    with pytest.raises(CollectionError, match="label 'only' has 1 file; .* or leave it out with --exclude-label only"):
        check_folds(c, 2)
    write_audio(tmp_path / "only" / "b.wav", tone(1.0), 22050)
    with pytest.raises(CollectionError, match=r"label 'only' has 2 files; 5-fold CV needs at least 5 \(.*--folds 2\)"):
        check_folds(scan(tmp_path), 5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "x", "--folds", "1"], "Invalid value for --folds: 0 (no cross-validation) or at least 2"),
        (["--install", "../x"], "Invalid value for --install: '../x': a name of letters"),
        (["--install", "musicnn-gtzan"], "'musicnn-gtzan' is a shipped model's name; choose another"),
        ([], "say where the bundle goes: --out DIR, --install NAME, or both"),
    ],
)
def test_fit_options_that_cannot_work_are_usage_errors(tmp_path, args, message):
    r = train_here("fit", str(tmp_path), *args)
    assert r.returncode == 2 and message in r.stderr


def test_the_base_encoder_is_musicnn_from_the_wheel(wheel):
    base = load_base(None, wheel)  # the recovered torch step computes the shipped graph's rows (checked inside)
    assert base.net == "MSD_musicnn" and base.model.spec == base.bundle.meta.encoder
    with pytest.raises(ModelError, match="has no streaming encoder"):
        load_base("crnn2d-gtzan", wheel)


def test_unreadable_files_are_listed_and_skipped_and_nothing_decodable_is_an_error(data, tmp_path, wheel):
    root = make_tree(data, tmp_path / "music", per_label=2)
    (root / "chart" / "broken.mp3").write_bytes(b"not audio at all")
    args = ["fit", str(root), "--out", str(tmp_path / "b"), "--folds", "2", "--epochs", "1",
            "--patches-per-epoch", "64", "--wheel", str(wheel), "--cache", str(tmp_path / "cache")]  # fmt: skip
    r = train_here(*args)
    assert r.returncode == 0, r.stderr
    assert "skipped chart/broken.mp3: " in r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["skipped"] == 1
    assert (
        "1 files could not be decoded and were left out:\n- `chart/broken.mp3`"
        in (tmp_path / "b" / "MODEL_CARD.md").read_text()
    )
    junk = tmp_path / "junk"
    for label in ("x", "y"):
        (junk / label).mkdir(parents=True)
        (junk / label / "a.wav").write_bytes(b"RIFF nonsense")
    r = train_here("fit", str(junk), "--out", str(tmp_path / "j"), "--folds", "0", "--wheel", str(wheel))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"Error: {junk}: none of the 2 audio files could be decoded"


@pytest.mark.training
def test_a_fitted_bundle_serves_its_own_labels(data, tmp_path, wheel, endpoint, monkeypatch):
    root = make_tree(data, tmp_path / "music")
    models = tmp_path / "models"
    monkeypatch.setenv("RTGENRE_MODELS", str(models))  # for this process's `fit --install` and the subprocesses
    options = ["--folds", "3", "--epochs", "3", "--patches-per-epoch", "512", "--wheel", str(wheel),
               "--cache", str(tmp_path / "cache")]  # fmt: skip
    r = train_here("fit", str(root), "--install", "mine", *options)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["labels"] == ["bebop", "chart", "sonata"] and summary["grouped_by"] == "sub-folder"
    assert set(summary["cv_recall"]) == set(TREE) and summary["encoded"] == 9 and summary["cached"] == 0
    bundle = models / "mine"
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["name"] == "mine" and meta["labels"] == ["bebop", "chart", "sonata"]
    shipped = json.loads((ROOT / "models/musicnn-gtzan/meta.json").read_text())
    assert meta["files"]["encoder.onnx"] == shipped["files"]["encoder.onnx"]  # the base's encoder, unchanged
    assert (bundle / "confusion.png").is_file()
    assert "grouped by the sub-folder under each label" in (bundle / "MODEL_CARD.md").read_text()
    again = train_here("fit", str(root), "--out", str(tmp_path / "again"), *options)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["cached"] == 9  # a rerun encodes nothing again

    listed = rtgenre("models")
    assert listed.returncode == 0 and f"(yours: {bundle})" in listed.stdout
    tracks = [sorted((data / "gtzan" / g).glob("*.ogg"))[-1] for g in TREE.values()]  # none trained on
    r = rtgenre("classify", "--json", "--model", "mine", *map(str, tracks))
    assert r.returncode == 0, r.stderr
    verdicts = [json.loads(line)["genre"] for line in r.stdout.splitlines()]
    assert len(verdicts) == 3 and set(verdicts) <= set(TREE)

    got: list = []
    listener = threading.Thread(target=until_eos, args=(endpoint, got, 20.0))
    listener.start()
    r = rtgenre("replay", "--fast", "--wait", "10", "--endpoint", endpoint, "--model", "mine", str(tracks[0]))
    listener.join(30)
    assert r.returncode == 0, r.stderr
    windows = [m for m in got if m["type"] == "window"]
    assert len(windows) > 50 and all(set(m["probs"]) == set(TREE) for m in windows)
    assert got[-1]["type"] == "eos" and got[-1]["verdict"]["genre"] in TREE


def test_an_audio_file_is_not_a_label(tmp_path):
    write_audio(tmp_path / "stray.wav", np.zeros(100, np.float32), 22050)
    with pytest.raises(CollectionError, match="found none with audio files"):
        scan(tmp_path)


def test_a_broken_bundle_of_yours_is_named_and_the_others_still_listed(tmp_path):
    broken = tmp_path / "models" / "mine"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"not a graph")
    (broken / "meta.json").write_text("{}")
    r = rtgenre("models", env={**os.environ, "RTGENRE_MODELS": str(tmp_path / "models")})
    assert r.returncode == 1 and "musicnn-gtzan" in r.stdout
    assert r.stderr.startswith(f"rtgenre: error: model bundle {broken}: meta.json: invalid")
