import numpy as np
import pytest
from helpers import tone, write_audio

from rtgenre.audio import ArraySource, FileSource
from rtgenre.errors import RtgenreError
from rtgenre.model import load_bundle
from rtgenre.pipeline import StreamPipeline, StreamSettings, run_source


def collect(bundle, classifier, source, **settings):
    msgs = []
    pipe = StreamPipeline(bundle, StreamSettings(**settings), None, classifier.provider)
    pipe.outputs.append(msgs.append)
    eos = run_source(source, pipe, classifier, realtime=False)
    return pipe, [m for m in msgs if m["type"] == "window"], eos


def test_windows_follow_the_hop_and_match_offline_frames(bundle, classifier):
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(22050 * 10)).astype(np.float32)
    blocks = np.array_split(y, rng.integers(1, 40_000, 30).cumsum()[:-1].clip(0, len(y)))
    pipe, wins, _ = collect(bundle, classifier, ArraySource(blocks, 22050), hop=1.0)
    fe = bundle.frontend()
    offline = fe.mel(y)
    n_win, n_hop = fe.params.frames(bundle.meta.window_s), fe.params.frames(1.0)
    assert len(wins) == 1 + (len(offline) - n_win) // n_hop
    # the classified windows are exactly the offline windows: compare their predictions
    starts = range(0, len(offline) - n_win + 1, n_hop)
    want = classifier.predict(np.stack([offline[s : s + n_win] for s in starts]))
    got = np.array([[m["probs"][label] for label in bundle.meta.labels] for m in wins])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [m["t0"] for m in wins[:3]] == [round(s / fe.params.frame_rate, 3) for s in starts[:3]]


def test_input_shorter_than_a_window_is_classified_and_marked_padded(bundle, classifier, tmp_path):
    f = write_audio(tmp_path / "short.wav", 0.2 * np.random.default_rng(0).standard_normal(22050 * 2), 22050)
    _, wins, eos = collect(bundle, classifier, FileSource(str(f), 22050))
    assert len(wins) == 1 and wins[0]["padded"] is True
    assert eos["verdict"]["padded"] is True and eos["verdict"]["genre"] in bundle.meta.labels


def test_silence_claims_no_genre(bundle, classifier):
    _, wins, eos = collect(bundle, classifier, ArraySource([np.zeros(22050 * 6, np.float32)], 22050))
    assert wins and all(m["state"] == "silence" and m["top"] is None and m["probs"] is None for m in wins)
    assert eos["verdict"]["genre"] is None


def test_window_messages_carry_the_schema(bundle, classifier, tmp_path):
    f = write_audio(tmp_path / "tone.wav", tone(5.0), 22050)
    _, wins, eos = collect(bundle, classifier, FileSource(str(f), 22050))
    m = wins[0]
    for key in ("t0", "t1", "probs", "top", "confidence", "smoothed", "smoothed_top", "state", "model", "provider"):
        assert key in m
    assert abs(sum(m["probs"].values()) - 1) < 1e-4 and abs(sum(m["smoothed"].values()) - 1) < 1e-4
    assert eos["type"] == "eos" and eos["stats"]["windows"] == len(wins)


@pytest.mark.parametrize(
    "hop, problem", [(2.0, "hop 2 s is longer than the window"), (0.0, "must be positive"), (-0.5, "must be positive")]
)
def test_a_hop_outside_the_window_is_refused(bundle, hop, problem):
    with pytest.raises(RtgenreError, match=problem):
        StreamPipeline(bundle, StreamSettings(window=1.0, hop=hop))


def test_audio_ring_overrun_is_counted(bundle):
    pipe = StreamPipeline(bundle, StreamSettings(audio_buffer_s=1.0))
    pipe.feed(np.zeros(22050 * 3, np.float32))  # a stalled consumer: 3 s into a 1 s ring
    assert pipe.stats().audio_overruns == 22050 * 2


def test_a_real_track_gets_its_genre(data, bundle, classifier):
    path = data / "gtzan" / "classical" / "classical.00000.ogg"
    _, wins, eos = collect(bundle, classifier, FileSource(str(path), 22050, 5.0))
    assert eos["verdict"]["genre"] == "classical"
    assert len(wins) == 53  # 1293 frames, 129-frame windows every 22 frames


def test_a_stream_that_never_got_audio_publishes_no_window(bundle):
    from rtgenre.pipeline import StreamPipeline, StreamSettings

    pipeline = StreamPipeline(bundle, StreamSettings())
    assert pipeline.windows(final=True) == []
    assert pipeline.verdict().state == "too short"


def test_a_stream_behind_its_backlog_skips_the_oldest_audio_and_counts_it(bundle, classifier):
    """What an overloaded daemon does: audio older than the backlog is dropped unheard, in whole hops, counted,
    and the windows after it carry the stream's true times."""
    rate = bundle.meta.frontend.sample_rate
    p = StreamPipeline(bundle, StreamSettings(hop=0.5, audio_buffer_s=20.0), backlog_s=2.0)
    y = tone(14.0, rate)
    p.feed(y[: 10 * rate])  # the scheduler came round only after 10 s
    assert p.windows() == []
    w = p.windower
    hops, rest = divmod(w.skipped_samples, w._hop_samples)
    assert rest == 0 and hops == w.skipped_windows and 0 < 10 * rate - w.skipped_samples <= 2.0 * rate
    windows = []
    for start in range(10 * rate, len(y), rate // 2):
        p.feed(y[start : start + rate // 2])
        windows += p.windows()
    assert windows and windows[0].t0 == pytest.approx(w.skipped_samples / rate, abs=0.05)  # the audio's own clock
    assert windows[-1].t1 <= 14.0 and p.stats().skipped_windows == hops


@pytest.mark.parametrize("model", ["crnn2d-gtzan", "musicnn-gtzan"])
def test_the_front_end_waits_for_the_audio_that_completes_rows_and_windows_come_out_as_early(model):
    """A live stream's 0.02 s blocks: its front end runs about once a window, not once a block, and every
    window comes out after the same block, with the same rows (to float rounding: the FFT batches differ, and
    an encoder carries that through its convolutions), as when every block is turned into frames."""
    bundle = load_bundle(model)
    rate = bundle.meta.frontend.sample_rate
    y = (0.1 * np.random.default_rng(3).standard_normal(12 * rate)).astype(np.float32)
    lazy, eager = (StreamPipeline(bundle, StreamSettings(hop=0.5), None, "CPUExecutionProvider").windower
                   for _ in range(2))  # fmt: skip
    pushes = {id(w): counted_pushes(w) for w in (lazy, eager)}
    out: dict[int, list] = {id(lazy): [], id(eager): []}
    for i, start in enumerate(range(0, len(y), rate // 50)):
        for w in (lazy, eager):
            w.feed(y[start : start + rate // 50])
            if w is eager:
                w.prepare(force=True)
            out[id(w)] += [(i, win.t0, win.mel) for win in w.windows(prepare=w is lazy)]
    got, want = out[id(lazy)], out[id(eager)]
    assert len(got) == len(want) >= 15
    assert [(i, t0) for i, t0, _ in got] == [(i, t0) for i, t0, _ in want]
    for (_, _, a), (_, _, b) in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert len(pushes[id(eager)]) == len(y) // (rate // 50) and len(pushes[id(lazy)]) <= 2 * len(got) + 8


def counted_pushes(windower) -> list[int]:
    """The sizes of the blocks the windower's front end is handed from now on."""
    sizes: list[int] = []
    push = windower._mel.push

    def counting(block):
        sizes.append(len(block))
        return push(block)

    windower._mel.push = counting
    return sizes


def test_a_streams_latency_percentiles_are_computed_again_only_after_new_values():
    """Heartbeats of a stream that falls behind ask every second; the percentiles change only with new values."""
    from rtgenre.latency import Recent, percentile_ms

    recent = Recent(4)
    assert recent.percentiles_ms(50, 99) == [None, None]
    for x in (0.1, 0.2, 0.3):
        recent.add(x)
    assert recent.percentiles_ms(50, 99) == [percentile_ms(recent.values(), 50), percentile_ms(recent.values(), 99)]
    for x in (0.9, 0.9, 0.9):  # the ring wraps: the oldest values go
        recent.add(x)
    assert recent.percentiles_ms(50, 99) == [900.0, 900.0] and recent.percentiles_ms(50) == [900.0]
