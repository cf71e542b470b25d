"""The streaming encoder: its step equals musicnn over whole patches, and a stream's rows do not depend on how
the audio was cut into blocks, nor on its level."""

import shutil

import numpy as np
import pytest
import torch

from rtgenre.encoder import EncoderSpec, StreamEncoder, TrailingLevel, step_together
from rtgenre.errors import ModelError
from rtgenre.model import encoder_session, load_bundle

STREAMED = "musicnn-gtzan"


@pytest.fixture(scope="module")
def streamed():
    return load_bundle(STREAMED)


@pytest.fixture(scope="module")
def mel(streamed, data):
    from rtgenre.audio import FileSource

    p = streamed.meta.frontend
    y = np.concatenate(list(FileSource(str(data / "gtzan" / "rock" / "rock.00003.ogg"), p.sample_rate, 12.0)))
    return streamed.frontend().mel(y)


def rows_of(bundle, mel: np.ndarray, cuts: list[int], gain_db: float = 0.0) -> np.ndarray:
    enc = bundle.stream_encoder()
    floor = np.float32(10 * np.log10(bundle.meta.frontend.amin))
    mel = np.maximum(mel + np.float32(gain_db), floor)
    parts = [enc.push(block, np.zeros(len(block), np.float32))[0] for block in np.split(mel, cuts)]
    return np.concatenate([*parts, enc.flush()[0]])


def test_the_step_is_musicnn_over_whole_patches(wheel):
    """Away from a patch's padded edges, the step's rows are the front and mid-end maps of the whole patch."""
    from training import musicnn
    from training.stream import LEFT, MID, RIGHT, Step

    port = musicnn.from_checkpoint(musicnn.read_wheel(wheel))
    x = torch.rand(1, 400, 96, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        front = port.front(x)
        whole = torch.cat(port.midend(front), dim=1)
        s, n = 200, 31
        new_front, rows = Step(port)(x[:, s - LEFT : s + n + RIGHT], front[:, :, s - 2 * MID : s].transpose(1, 2))
    np.testing.assert_allclose(new_front[0].T, front[0, :, s : s + n], atol=1e-5)
    np.testing.assert_allclose(rows[0].T, whole[0, :, s - MID : s - MID + n], atol=1e-4)


def test_rows_do_not_depend_on_how_the_stream_was_cut(streamed, mel):
    whole = rows_of(streamed, mel, [])
    assert whole.shape == (len(mel), streamed.meta.encoder.width)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, len(mel)), 40, replace=False)).tolist()
    np.testing.assert_allclose(rows_of(streamed, mel, cuts), whole, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rows_of(streamed, mel, list(range(1, len(mel)))), whole, rtol=1e-4, atol=1e-3)


def test_rows_do_not_follow_the_input_level(streamed, mel):
    """Only the bins the front end floors (quiet to begin with, under its floor once turned down) differ."""
    quiet, loud = rows_of(streamed, mel, [100], gain_db=-30.0), rows_of(streamed, mel, [])
    np.testing.assert_allclose(quiet, loud, rtol=1e-3, atol=1e-2)


def test_rows_trail_the_frames_by_the_encoders_lag(streamed, mel):
    enc = StreamEncoder(streamed.meta.encoder, encoder_session(streamed), mel.shape[1])  # a chunk of one frame
    lag = streamed.meta.encoder.lag
    rows, level = enc.push(mel[:300], np.arange(300, dtype=np.float32))
    assert len(rows) == 300 - lag and level.tolist() == list(range(300 - lag))  # levels stay with their frames
    rows, level = enc.flush()
    assert len(rows) == lag and level.tolist() == list(range(300 - lag, 300))


def test_streams_stepped_together_get_their_own_rows(streamed, mel):
    """One call steps the due chunk of every stream (a batch axis): each gets the rows it gets alone (the same
    blocks: the level's float64 sums over other cuts round a few inputs to the next float32)."""
    alone = [rows_of(streamed, mel[i * 50 :], list(range(40, len(mel) - i * 50, 40))) for i in range(5)]
    encoders = [streamed.stream_encoder() for _ in range(5)]
    parts: list[list[np.ndarray]] = [[] for _ in encoders]
    blocks = [mel[i * 50 :] for i in range(5)]
    for start in range(0, len(mel), 40):  # 40-frame blocks: streams come due at different steps
        for e, y in zip(encoders, blocks, strict=True):
            e.add(y[start : start + 40], np.zeros(len(y[start : start + 40]), np.float32))
        assert step_together(encoders, max_batch=3) <= 2 * 2  # at most two chunks due, two calls of three each
        for e, part in zip(encoders, parts, strict=True):
            part.append(e.take()[0])
    for e, part, want in zip(encoders, parts, alone, strict=True):
        got = np.concatenate([*part, e.flush()[0]])
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_the_trailing_level_is_the_same_in_any_blocks():
    p = np.random.default_rng(0).random(500)
    whole = TrailingLevel(50).push(p)
    level = TrailingLevel(50)
    np.testing.assert_allclose(np.concatenate([level.push(b) for b in np.split(p, [3, 70, 71, 300])]), whole)
    assert whole[0] == p[0] and np.isclose(whole[-1], p[-50:].mean())


def test_a_bad_encoder_spec_is_refused(streamed):
    with pytest.raises(ValueError):
        EncoderSpec.from_dict({**streamed.meta.encoder.to_dict(), "width": 0})
    with pytest.raises(KeyError):
        EncoderSpec.from_dict({"left": 1})


def test_a_missing_encoder_graph_is_one_line(streamed, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(streamed.path, copy)
    (copy / "encoder.onnx").unlink()
    with pytest.raises(ModelError, match="encoder.onnx is missing"):
        load_bundle(copy)


def test_an_encoder_graph_that_does_not_fit_its_spec_is_one_line(streamed, tmp_path):
    import json

    from rtgenre.model import Classifier, sha256_of

    copy = tmp_path / "m"
    shutil.copytree(streamed.path, copy)
    shutil.copyfile(copy / "model.onnx", copy / "encoder.onnx")  # a graph, checksummed, but not an encoder
    meta = json.loads((copy / "meta.json").read_text())
    meta["files"]["encoder.onnx"] = sha256_of(copy / "encoder.onnx")
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"encoder.onnx: inputs .* are not x"):
        Classifier(load_bundle(copy))


def test_a_streamed_model_classifies_a_short_clip_through_the_runtime(data):
    """A 2-3 s clip (under one 3 s window) is looped into one window of rows, as training did."""
    from rtgenre.api import load_model

    clip = sorted((data / "gtzan_clips" / "metal").glob("*.ogg"))[0]
    result = load_model(STREAMED).classify(clip)
    assert result.padded and len(result.window_times) == 1 and result.genre in result.probs


def test_a_pruned_timbral_block_keeps_its_filters_and_holds_the_rest_constant(wheel):
    from training import musicnn
    from training.prune import Pruned

    block = musicnn.from_checkpoint(musicnn.read_wheel(wheel)).frontend[0].eval()
    x = torch.rand(2, 1, 40, 96, generator=torch.Generator().manual_seed(0)) * 3
    means = np.arange(block.channels, dtype=np.float32)
    keep = np.arange(0, block.channels, 3)
    with torch.no_grad():
        whole = block(x)
        np.testing.assert_allclose(Pruned(block, np.arange(block.channels), means).eval()(x), whole, atol=1e-5)
        pruned = Pruned(block, keep, means).eval()(x)
    assert pruned.shape == whole.shape
    np.testing.assert_allclose(pruned[:, keep], whole[:, keep], atol=1e-5)
    dropped = np.setdiff1d(np.arange(block.channels), keep)
    np.testing.assert_array_equal(
        pruned[:, dropped], np.broadcast_to(means[dropped][None, :, None], pruned[:, dropped].shape)
    )


def test_pruning_keeps_the_rows_of_the_music_it_was_judged_on_and_cuts_the_cost(wheel, mel, streamed):
    """Most of musicnn's front-end filters never fire (ReLU before batch norm): dropping those whose maps stay
    constant over some music leaves that music's rows as they were, for a fraction of the work."""
    from training import musicnn
    from training.prune import kept, prune
    from training.stream import Encoder, encoder_spec

    port = musicnn.from_checkpoint(musicnn.read_wheel(wheel))
    spec = encoder_spec(port, streamed.meta.encoder.reference_power)
    whole = Encoder(port, spec).rows(mel[:600])
    pruned = prune(port, [np.stack([whole.min(axis=0), whole.max(axis=0)])])
    np.testing.assert_allclose(Encoder(pruned, spec).rows(mel[:600]), whole, rtol=1e-4, atol=1e-3)
    filters = [int(k.split("/")[0]) for k in kept(pruned).split(", ")]
    assert sum(filters) < 0.25 * spec.front_width  # most filters were dead on this rock track


def test_slimming_drops_the_filters_the_others_stand_in_for_and_refits_the_mid_end(wheel, mel, streamed):
    """``prune.slim``: at most the asked share of the front end's multiply-adds, a filter left in every block, and
    the mid-end's first convolution refitted to the maps that are left reproduces its outputs over the music better
    than the old weights with the dropped maps held at their means; asked for everything, nothing changes."""
    import copy

    from training import musicnn
    from training.prune import front_cost, moments, prune, slim
    from training.stream import Encoder, encoder_spec

    port = musicnn.from_checkpoint(musicnn.read_wheel(wheel))
    spec = encoder_spec(port, streamed.meta.encoder.reference_power)
    whole = Encoder(port, spec).rows(mel)
    pruned = prune(port, [np.stack([whole.min(axis=0), whole.max(axis=0)])])
    fronts = [Encoder(pruned, spec).rows(mel)[:, :561]]
    m = moments(pruned, fronts)
    same = slim(pruned, port, m, 1.0)
    assert front_cost(same) == front_cost(pruned)
    np.testing.assert_allclose(Encoder(same, spec).rows(mel), Encoder(pruned, spec).rows(mel), rtol=0, atol=1e-3)
    thin = slim(pruned, port, m, 0.6)
    assert front_cost(thin) <= 0.6 * front_cost(pruned) and all(len(b.kept) >= 1 for b in thin.frontend)
    naive = copy.deepcopy(thin)  # the old weights, the dropped maps at their means
    naive.midend.convs[0].load_state_dict(pruned.midend.convs[0].state_dict())

    def first_layer(backbone) -> np.ndarray:
        return Encoder(backbone, spec).rows(mel)[:, 561:625]

    want = first_layer(pruned)
    assert np.abs(first_layer(thin) - want).mean() < np.abs(first_layer(naive) - want).mean()


def test_the_shipped_form_passes_only_varying_columns_and_gives_the_same_probabilities(wheel, mel, streamed):
    """A pruned filter's map is a constant: the shipped encoder leaves its column out of the rows and the window
    model folds its pooled values into the dense layer's bias."""
    from torch import nn

    from training import musicnn
    from training.prune import prune
    from training.stream import Encoder, Step, StreamModel, encoder_spec, predict

    port = musicnn.from_checkpoint(musicnn.read_wheel(wheel))
    spec = encoder_spec(port, streamed.meta.encoder.reference_power)
    whole = Encoder(port, spec).rows(mel[:400])
    pruned = prune(port, [np.stack([whole.min(axis=0), whole.max(axis=0)])])
    model = StreamModel(pruned, nn.Linear(port.embedding_size, 10), spec).eval()
    narrow = model.narrowed()
    assert narrow.spec.width == len(narrow.columns) < spec.width / 2
    x = torch.from_numpy(Encoder(pruned, spec).rows(mel[:400])[None, :187])
    with torch.no_grad():
        np.testing.assert_allclose(narrow(x[:, :, narrow.columns]), model(x), rtol=1e-4, atol=1e-4)
        context = torch.zeros(1, 18, spec.front_width)
        step = torch.rand(1, 31 + 127, 96, generator=torch.Generator().manual_seed(0))
        full_rows, narrow_rows = Step(pruned)(step, context)[1], Step(pruned, narrow.columns)(step, context)[1]
    np.testing.assert_array_equal(narrow_rows, full_rows[:, :, narrow.columns])
    np.testing.assert_allclose(predict(narrow, [mel[:400]])[0], predict(model, [mel[:400]])[0], atol=1e-5)
    # the folded step (the constants' share of the mid-end in its bias, a "real frame" state channel) streams the
    # same rows from the stream's first frame on, where the context is the silence before it
    folded = Encoder(pruned, narrow.spec, narrow=True).rows(mel[:400])
    assert narrow.spec.front_width == (narrow.columns < spec.front_width).sum() + 1
    np.testing.assert_allclose(folded, Encoder(pruned, spec).rows(mel[:400])[:, narrow.columns], rtol=0, atol=1e-4)


def test_a_reload_to_another_model_lets_the_old_encoder_session_go(streamed, bundle):
    from rtgenre.model import encoder_session, release_encoder_sessions

    session = encoder_session(streamed)
    release_encoder_sessions(keep=streamed)  # reloaded to the same graph: the session stays shared
    assert encoder_session(streamed) is session
    release_encoder_sessions(keep=bundle)  # reloaded to a model without this encoder
    assert encoder_session(streamed) is not session


def test_refold_rewrites_an_older_encoder_to_the_same_rows(wheel, mel, streamed, tmp_path):
    """A bundle with the one-stream, every-map graph of earlier releases is rewritten folded and batched."""
    import json
    import warnings

    from training.base import load_base
    from training.refold import refold, stream_rows
    from training.stream import LEFT, MID, RIGHT, Step

    old = tmp_path / "old"
    shutil.copytree(streamed.path, old)
    base = load_base(old, wheel)
    step = Step(base.model.backbone, base.model.columns).eval()
    full = sum(b.channels for b in base.model.backbone.frontend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, (torch.zeros(1, 31 + LEFT + RIGHT, 96), torch.zeros(1, 2 * MID, full)),
                          str(old / "encoder.onnx"), input_names=["x", "context"], output_names=["front", "rows"],
                          dynamic_axes={"x": {1: "frames"}, "front": {1: "new"}, "rows": {1: "new"}},
                          opset_version=17, dynamo=False, do_constant_folding=False)  # fmt: skip
    # (unfolded by torch, the weights keep their names, as the graphs of those releases had them)
    from rtgenre.model import sha256_of

    meta = json.loads((old / "meta.json").read_text())
    meta["files"]["encoder.onnx"] = sha256_of(old / "encoder.onnx")
    meta["encoder"]["front_width"] = full
    (old / "meta.json").write_text(json.dumps(meta))
    before = load_bundle(old)
    want = stream_rows(before.meta.encoder, encoder_session(before), mel[:500])
    assert not before.stream_encoder().batched  # the old graph steps one stream per call
    summary = refold(old, wheel)
    after = load_bundle(old)
    assert summary["front_width"] == [full, streamed.meta.encoder.front_width] and after.stream_encoder().batched
    got = stream_rows(after.meta.encoder, encoder_session(after), mel[:500])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    again = refold(old, wheel)  # a graph in today's form already: rewritten, the same rows
    assert again["front_width"] == summary["front_width"][1:] * 2 and again["rows_max_rel_diff"] <= 1e-5


def test_aligned_chunks_let_a_window_out_as_soon_as_its_audio_is_in(streamed, mel):
    """The rows of a window's last frame need ``lag`` frames after it; with chunks that end there (``align``, as a
    stream's windower sets it) they come then, not up to a chunk later."""
    win = 187
    for first, wanted in ((None, None), ((win + streamed.meta.encoder.mid) % 31, win + streamed.meta.encoder.lag)):
        enc = streamed.stream_encoder()
        if first is not None:
            enc.align(first)
        rows = 0
        for i in range(400):
            rows += len(enc.push(mel[i : i + 1], np.zeros(1, np.float32))[0])
            if rows >= win:
                break
        if first is None:
            late = i + 1
        else:
            assert i + 1 == wanted < late  # out when frame win + lag is in: the unaligned stream waited longer


def test_audio_that_comes_after_the_schedulers_step_waits_for_its_next_pass(streamed, data):
    """``due_windows`` steps every stream's encoder in batched calls, then takes their windows without taking in
    audio again: a block that a source thread handed over meanwhile is not stepped alone, it waits its turn and
    loses nothing."""
    from rtgenre.audio import FileSource
    from rtgenre.pipeline import StreamPipeline, StreamSettings, due_windows

    rate = streamed.meta.frontend.sample_rate
    y = np.concatenate(list(FileSource(str(data / "gtzan" / "rock" / "rock.00003.ogg"), rate, 12.0)))[: 10 * rate]
    whole = StreamPipeline(streamed, StreamSettings())
    whole.feed(y)
    want = [w.mel for w in whole.windows()]
    pipes = [StreamPipeline(streamed, StreamSettings()) for _ in range(2)]
    for p in pipes:
        p.feed(y[: 6 * rate])
        p.windower.prepare()
    step_together([p.windower.encoder for p in pipes])
    for p in pipes:
        p.feed(y[6 * rate :])  # came while the encoders were stepped
    first = [p.windows(prepare=False) for p in pipes]
    for p, got in zip(pipes, first, strict=True):
        assert got and p.windower.audio.available == 4 * rate and not p.windower.encoder.due
        got += due_windows([p])[0][1]
        assert len(got) == len(want)
        rows = np.stack(want)  # float rounding of rows up to about 85: the steps' lengths differ
        np.testing.assert_allclose(np.stack([w.mel for w in got]), rows, rtol=0, atol=1e-6 * np.abs(rows).max())


@pytest.mark.parametrize("frames", [400, 120])  # windows of a longer excerpt; a clip shorter than a window, looped
def test_the_mid_ends_training_patches_pool_to_what_the_encoders_rows_do(wheel, mel, streamed, frames):
    """``midstream``: the front-end maps a folded step records, cut into patches, give through ``StreamPool`` the
    back end's input the streamed rows give, for a slimmed encoder (its first convolution refitted)."""
    from training import musicnn
    from training.midstream import StreamPool, fronts, narrow_spec, patches
    from training.prune import moments, prune, slim
    from training.stream import Encoder, encoder_spec, pooled

    port = musicnn.from_checkpoint(musicnn.read_wheel(wheel))
    spec = encoder_spec(port, streamed.meta.encoder.reference_power)
    whole = Encoder(port, spec).rows(mel[:400])
    pruned = prune(port, [np.stack([whole.min(axis=0), whole.max(axis=0)])])
    slimmed = slim(pruned, port, moments(pruned, [Encoder(pruned, spec).rows(mel[:400])[:, :561]]), 0.8)
    x = patches(fronts(Encoder(slimmed, narrow_spec(slimmed, spec), narrow=True), mel[:frames]))
    assert x.shape == (len(pooled(np.zeros((frames, 1)))), 187 + 18, narrow_spec(slimmed, spec).front_width + 1)
    with torch.no_grad():
        got = StreamPool(slimmed)(torch.from_numpy(x)).numpy()
    want = pooled(Encoder(slimmed, spec).rows(mel[:frames]))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    assert patches(np.ones((frames + 9, 3), np.float32))[:, 9:-9, -1].sum(axis=1).tolist() == [187] * len(x)
