import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from training.cli import main
from training.fusion import FitConfig, Fusion, MLPEncoder, Single, cross_validate
from training.fusion_report import tables
from training.lyrics import read_lyrics_json, read_tcc


def test_missing_lyrics_fall_back_to_the_learned_empty_embedding():
    torch.manual_seed(0)
    model = Fusion(MLPEncoder(6), 16, 3, "gated").eval()
    audio = torch.randn(4, 6)
    none = torch.zeros(4)
    a = model(audio, torch.randn(4, 16), none)
    b = model(audio, torch.randn(4, 16), none)
    assert torch.allclose(a, b)  # without lyrics, the lyric input is ignored
    assert not torch.allclose(model(audio, torch.randn(4, 16), torch.ones(4)), a)
    assert torch.allclose(model.last_gate.sum(dim=1), torch.ones(4))


def test_seed_lyrics_json_layout(tmp_path):
    (tmp_path / "lyrics.json").write_text(json.dumps({"blues.00001": "my baby left me"}))
    assert read_lyrics_json(tmp_path) == {"blues.00001": "my baby left me"}


def test_tcc_songs_pair_lyrics_with_descriptors(data):
    songs = read_tcc(data / "lyrics" / "tcc_ceds_music_sample1000.csv")
    assert len(songs) == 1000 and all(len(s.descriptors) == 6 for s in songs)
    assert {s.genre for s in songs} == {"pop", "country", "blues", "jazz", "rock", "reggae", "hiphop"}


def test_fusion_beats_either_modality_when_each_holds_half_the_answer():
    # four classes: the audio features tell bit 0 of the class, the lyric features bit 1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    audio = rng.normal(0, 1, (300, 6)).astype(np.float32)
    audio[:, 0] += 5 * (labels % 2)
    lyrics = rng.normal(0, 1, (300, 16)).astype(np.float32)
    lyrics[:, 0] += 5 * (labels // 2)
    has, genres, cfg = np.ones(300, np.float32), list("abcd"), FitConfig(epochs=30)
    results = {
        "audio only": cross_validate("a", lambda: Single(MLPEncoder(6), 4), [audio], labels, genres, 3, cfg),
        "lyrics only": cross_validate("l", lambda: Single(MLPEncoder(16), 4), [lyrics], labels, genres, 3, cfg),
        "fusion: concat + MLP": cross_validate(
            "c", lambda: Fusion(MLPEncoder(6), 16, 4, "concat"), [audio, lyrics, has], labels, genres, 3, cfg
        ),  # fmt: skip
        "fusion: gated": cross_validate(
            "g", lambda: Fusion(MLPEncoder(6), 16, 4, "gated"), [audio, lyrics, has], labels, genres, 3, cfg
        ),  # fmt: skip
    }
    acc = {name: np.mean(r.acc) for name, r in results.items()}
    # alone, each is right about half the time; concatenation recovers nearly the whole answer, the gate (which
    # weighs one modality against the other) part of it
    assert max(acc["audio only"], acc["lyrics only"]) < 0.6 < acc["fusion: gated"] < acc["fusion: concat + MLP"]
    assert acc["fusion: concat + MLP"] > 0.85
    assert len(results["fusion: gated"].gates) == 3  # every fold's test songs, with their gate weights
    summary, verdict, _ = tables(genres, results, 3)
    assert verdict.startswith("**Fusion helped**")
    for name, r in results.items():
        assert f"| {name} | {np.mean(r.acc):.3f} ± {np.std(r.acc):.3f} |" in summary


@pytest.mark.training
def test_tiny_fusion_experiment_reports_what_its_cv_measured(data, tmp_path):
    r = CliRunner().invoke(main, ["fusion", "--csv", str(data / "lyrics" / "tcc_ceds_music_sample1000.csv"),
                                  "--out", str(tmp_path), "--limit", "40", "--folds", "2", "--epochs", "2",
                                  "--cache", str(tmp_path / "c")])  # fmt: skip
    assert r.exit_code == 0, r.output
    report, scores = (tmp_path / "FUSION.md").read_text(), json.loads((tmp_path / "fusion.json").read_text())
    assert scores["folds"] == 2 and scores["songs"] == 40 and len(scores["per_fold"]) == 6
    for name, s in scores["per_fold"].items():  # every row of the table is its CV's mean ± std over folds
        assert len(s["acc"]) == 2
        row = f"| {name} | {np.mean(s['acc']):.3f} ± {np.std(s['acc']):.3f} | {np.mean(s['macro_f1']):.3f} ± "
        assert row in report
    fused = max(np.mean(scores["per_fold"][k]["acc"]) for k in ("fusion: concat + MLP", "fusion: gated"))
    single = max(np.mean(v["acc"]) for k, v in scores["per_fold"].items() if k.startswith(("audio", "lyrics")))
    assert ("**Fusion helped**" in report) == (fused > single)
    assert (tmp_path / "fusion_gates.png").stat().st_size > 0 and (tmp_path / "lyric_tokens.png").stat().st_size > 0


def test_occlusion_map_explains_the_runtime_graph(classifier, bundle):
    from training.saliency import occlusion

    n = bundle.meta.frontend.frames(bundle.meta.window_s)
    window = np.random.default_rng(0).normal(-30, 15, (n, bundle.meta.frontend.n_mels)).astype(np.float32)
    top, heat = occlusion(classifier, window, patch=(16, 16))
    assert top == int(classifier.predict(window[None])[0].argmax())
    assert heat.shape == window.shape and np.abs(heat).max() > 0


@pytest.mark.training
def test_log_mel_fusion_runs_on_a_collection_with_lyrics_json(data, tmp_path):
    """Real GTZAN audio with real lyrics (of other songs of the genre: GTZAN has none), some tracks
    without any: the plumbing of the log-mel fusion experiment, not a result."""
    songs = read_tcc(data / "lyrics" / "tcc_ceds_music_sample1000.csv")
    lyrics = {}
    for genre in ("blues", "classical", "country", "jazz", "metal", "pop"):
        (tmp_path / "c" / genre).mkdir(parents=True)
        for path in sorted((data / "gtzan" / genre).glob("*.ogg"))[:2]:
            (tmp_path / "c" / genre / path.name).symlink_to(path)
            text = next((s.lyrics for s in songs if s.genre == genre), None)
            if text:  # no classical or metal in the lyric set: those tracks have none
                lyrics[path.stem] = text
    (tmp_path / "c" / "lyrics.json").write_text(json.dumps(lyrics))
    cmd = [sys.executable, "-m", "training", "fusion-mel", "--data", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
           "--folds", "2", "--epochs", "1", "--cache", str(tmp_path / "cache")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = (tmp_path / "o" / "FUSION_MEL.md").read_text()
    assert "12 tracks, 8 of them with lyrics" in report and "| fusion: gated |" in report
    assert "audio only (log-mel cnn)" in report

    (tmp_path / "c" / "lyrics.json").unlink()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "no usable lyrics.json" in r.stderr and "Traceback" not in r.stderr
