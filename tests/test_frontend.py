import librosa
import numpy as np
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from rtgenre.frontend import MelFrontend, MelParams, fit_window
from training.filterbank import mel_filterbank

PARAMS = MelParams()
FE = MelFrontend(PARAMS, mel_filterbank(PARAMS))


def reference(y: np.ndarray) -> np.ndarray:
    p = PARAMS
    s = librosa.feature.melspectrogram(
        y=y, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax
    )
    return librosa.power_to_db(s, ref=1.0, amin=p.amin, top_db=None).T


def music_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * PARAMS.sample_rate)
    t = np.arange(n) / PARAMS.sample_rate
    y = sum(rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(50, 5000) * t) for _ in range(6))
    return (y + 0.01 * rng.standard_normal(n)).astype(np.float32)


def test_offline_mel_matches_librosa_within_1e3_db_over_top_80_db():
    y = music_like(5.0, 0)
    ours, ref = FE.mel(y), reference(y)
    assert ours.shape == ref.shape
    top = ref > ref.max() - 80
    assert np.abs(ours - ref)[top].max() <= 1e-3


def test_offline_mel_matches_librosa_on_a_real_track(data):
    y, sr = sf.read(data / "gtzan" / "jazz" / "jazz.00000.ogg", dtype="float32")
    assert sr == PARAMS.sample_rate
    ours, ref = FE.mel(y), reference(y)
    top = ref > ref.max() - 80
    assert np.abs(ours - ref)[top].max() <= 1e-3


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 6000), min_size=1, max_size=40), n=st.integers(0, 40000))
def test_streaming_emits_exactly_the_offline_frames(sizes, n):
    y = music_like(n / PARAMS.sample_rate, n)
    stream = FE.stream()
    out, i, k = [], 0, 0
    while i < len(y):
        size = sizes[k % len(sizes)]
        out.append(stream.push(y[i : i + size])[0])
        i, k = i + size, k + 1
    out.append(stream.flush()[0])
    got = np.concatenate(out)
    want = FE.mel(y)
    assert got.shape == want.shape == (1 + n // PARAMS.hop_length, PARAMS.n_mels)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_level_reads_dbfs():
    sine = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)  # RMS -3 dBFS
    _, level = FE.stream().push(sine)
    assert abs(float(np.median(level)) + 3.0) < 0.1
    _, silent = FE.stream().push(np.zeros(22050, np.float32))
    assert silent.max() <= -99


def test_fit_window_loops_short_input_and_cuts_long_input():
    frames = np.arange(5)[:, None].astype(np.float32)
    assert fit_window(frames, 12)[:, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert fit_window(frames, 3)[:, 0].tolist() == [0, 1, 2]


def test_filterbank_shape_is_checked():
    import pytest

    with pytest.raises(ValueError, match="filterbank shape"):
        MelFrontend(PARAMS, np.zeros((10, 10), np.float32))
