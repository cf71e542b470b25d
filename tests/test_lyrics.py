"""The lyric path: ONNX + `tokenizers` at run time against torch + transformers, and its use."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import rtgenre

from rtgenre.errors import RtgenreError
from rtgenre.lyrics import DEFAULT_LYRICS_MODEL, LyricModel, fuse, lyrics_beside, read_lyrics
from training.fusion import FitConfig, MLPEncoder, Single, fit
from training.lyrics import LyricEncoder, TopLayers
from training.lyrics_export import LyricClassifier

TEXTS = ["my baby left me this morning and the rain keeps falling", "jah love one drop", "x"]


@pytest.fixture(scope="module")
def encoder():
    return LyricEncoder().eval()


def test_onnx_lyric_path_matches_torch(encoder, tmp_path):
    torch.manual_seed(0)
    model = LyricClassifier(encoder, Single(MLPEncoder(encoder.dim), 7)).eval()
    sample = encoder.tokenize(TEXTS[:2])
    torch.onnx.export(
        model, (sample["input_ids"], sample["attention_mask"]), str(tmp_path / "l.onnx"),
        input_names=["input_ids", "attention_mask"], output_names=["probs"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "probs": {0: "b"}},
    )  # fmt: skip
    session = ort.InferenceSession(str(tmp_path / "l.onnx"), providers=["CPUExecutionProvider"])
    runtime = LyricModel()  # the runtime's tokenizer, from the shipped bundle's tokenizer.json
    for text in TEXTS:
        ids = np.asarray([runtime.tokenizer.encode(text).ids], np.int64)
        t = encoder.tokenize([text])
        assert ids.tolist() == t["input_ids"].tolist()  # `tokenizers` == transformers' tokenizer
        got = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
        with torch.no_grad():
            want = model(**t).numpy()
        assert np.abs(got - want).max() <= 1e-4


def test_fine_tuned_top_layers_start_from_the_frozen_encoder_and_train(encoder):
    hidden, mask = (torch.from_numpy(a) for a in encoder.below(TEXTS, 2))
    top = TopLayers(encoder, 2).eval()
    with torch.no_grad():
        assert torch.allclose(top(hidden, mask), encoder(**encoder.tokenize(TEXTS)), atol=1e-5)
    model = Single(top, 2)
    before = [p.clone() for p in encoder.model.encoder.layer[-1].parameters()]
    fit(model, [hidden, mask], torch.tensor([0, 1, 1]), FitConfig(epochs=2, batch_size=2, lr=1e-2))
    moved = [not torch.equal(a, b) for a, b in zip(top.layers[-1].parameters(), before, strict=True)]
    assert any(moved)  # the copied layers learn; the encoder they were copied from stays as it was
    assert all(torch.equal(a, b) for a, b in zip(encoder.model.encoder.layer[-1].parameters(), before, strict=True))


def test_shipped_lyric_model_gives_evidence_over_the_audio_labels(bundle):
    lm = LyricModel()
    p = lm.probs(TEXTS[0])
    assert p.shape == (len(lm.labels),) and abs(p.sum() - 1) < 1e-5
    ev = lm.evidence(TEXTS[0], bundle.meta.labels, 0.5)
    assert ev.shape == (10,) and np.all(ev > 0)
    for g in ("classical", "disco", "metal"):  # genres the lyric model does not know stay neutral
        assert ev[bundle.meta.labels.index(g)] == 1.0
    fused = fuse(np.full(10, 0.1), ev)
    assert abs(fused.sum() - 1) < 1e-9
    assert np.allclose(lm.evidence(TEXTS[0], bundle.meta.labels, 0.0), 1.0)


def test_lyric_files(tmp_path):
    lrc = tmp_path / "song.lrc"
    lrc.write_text("[ar:Someone]\n[00:01.00]first line\n[00:04.50] second line\n")
    assert read_lyrics(lrc) == "first line second line"
    assert lyrics_beside(tmp_path / "song.ogg") == lrc
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(RtgenreError, match="empty"):
        read_lyrics(tmp_path / "empty.txt")


def test_replay_fuses_lyrics_found_next_to_the_audio(data, tmp_path, endpoint):
    song = tmp_path / "song.ogg"
    song.write_bytes((data / "gtzan" / "blues" / "blues.00001.ogg").read_bytes())
    (tmp_path / "song.txt").write_text("my baby left me, woke up this morning with the blues")
    fused = rtgenre("replay", "--fast", "--json", "--endpoint", endpoint, str(song))
    other = endpoint.rsplit(":", 1)[0] + f":{int(endpoint.rsplit(':', 1)[1]) + 1}"
    plain = rtgenre("replay", "--fast", "--json", "--no-lyrics", "--endpoint", other, str(song))
    assert fused.returncode == 0 and plain.returncode == 0, fused.stderr + plain.stderr
    windows = [json.loads(line) for line in fused.stdout.splitlines()]
    w = next(m for m in windows if m.get("type") == "window")
    assert w["lyrics"] is True and w["probs"] != w["audio_probs"]
    assert json.loads(fused.stdout.splitlines()[-1])["lyrics"] is True
    assert json.loads(plain.stdout.splitlines()[-1])["lyrics"] is False


def test_lyric_bundle_without_files_is_a_one_line_error(tmp_path, music):
    copy = tmp_path / "lyrics"
    shutil.copytree(DEFAULT_LYRICS_MODEL, copy)
    meta = json.loads((copy / "meta.json").read_text())
    del meta["files"]
    (copy / "meta.json").write_text(json.dumps(meta))
    from rtgenre.errors import ModelError
    from rtgenre.lyrics import LyricModel

    with pytest.raises(ModelError, match="no 'files' object"):
        LyricModel(copy)
