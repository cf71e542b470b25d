import json
import subprocess
import sys

import torch

from training.fusion import Fusion, MLPEncoder
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


def test_tiny_fusion_experiment_writes_its_report(data, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "training", "fusion", "--csv", str(data / "lyrics" / "tcc_ceds_music_sample1000.csv"),
         "--out", str(tmp_path), "--limit", "140", "--folds", "2", "--epochs", "3", "--cache", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    report = (tmp_path / "FUSION.md").read_text()
    assert "lyrics only (frozen MiniLM)" in report and "top 2 layers fine-tuned" in report
    assert "Fusion helped" in report or "Fusion did not help" in report
    assert (tmp_path / "fusion_gates.png").stat().st_size > 0 and (tmp_path / "lyric_tokens.png").stat().st_size > 0


def test_occlusion_map_explains_the_runtime_graph(classifier, bundle):
    import numpy as np

    from training.saliency import occlusion

    n = bundle.meta.frontend.frames(bundle.meta.window_s)
    window = np.random.default_rng(0).normal(-30, 15, (n, bundle.meta.frontend.n_mels)).astype(np.float32)
    top, heat = occlusion(classifier, window, patch=(16, 16))
    assert top == int(classifier.predict(window[None])[0].argmax())
    assert heat.shape == window.shape and np.abs(heat).max() > 0


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
