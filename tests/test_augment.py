from dataclasses import replace

import numpy as np
import pytest
import torch

from training.augment import AugmentConfig, augment, crop, mixup
from training.train import Example, TrainConfig, inner_split, train

RNG = np.random.default_rng(0)


def test_crop_is_a_window_of_the_track_or_a_stretched_one():
    mel = np.arange(200, dtype=np.float32)[:, None].repeat(4, axis=1)
    w, _ = crop(mel, 50, np.random.default_rng(1))
    assert w.shape == (50, 4) and np.all(np.diff(w[:, 0]) == 1)  # a contiguous run of frames
    s, _ = crop(mel, 50, np.random.default_rng(1), stretch=0.2)
    steps = np.diff(s[:, 0])
    assert s.shape == (50, 4) and np.allclose(steps, steps[0], atol=1e-3) and 0.8 <= steps[0] <= 1.2


def test_short_input_loops_like_the_runtime_pads():
    mel = np.arange(10, dtype=np.float32)[:, None]
    w, _ = crop(mel, 25, np.random.default_rng(2))
    assert w.shape == (25, 1) and set(w[:, 0]) == set(range(10))


NOTHING = AugmentConfig(gain_db=0.0, stretch=0.0, pitch_bands=0, noise_p=0.0, freq_masks=0, time_masks=0)


def window() -> np.ndarray:
    return RNG.normal(-40, 15, (129, 96)).astype(np.float32)


def test_gain_shifts_every_bin_by_one_amount_within_its_range():
    x = window()
    shifts = []
    for seed in range(20):
        d = augment(x.copy(), replace(NOTHING, gain_db=6.0), np.random.default_rng(seed)) - x
        assert np.allclose(d, d[0, 0], atol=1e-4) and abs(d[0, 0]) <= 6.0
        shifts.append(d[0, 0])
    assert np.std(shifts) > 1.0  # drawn afresh, not one fixed gain


def test_pitch_shift_moves_the_bands_and_keeps_the_frames():
    x = window()
    seen = set()
    for seed in range(30):
        y = augment(x.copy(), replace(NOTHING, pitch_bands=2), np.random.default_rng(seed))
        k = next(k for k in range(-2, 3) if np.array_equal(y[:, max(k, 0) : 96 + min(k, 0)],
                                                           x[:, max(-k, 0) : 96 - max(k, 0)]))  # fmt: skip
        seen.add(k)
    assert seen == {-2, -1, 0, 1, 2}


def test_noise_raises_the_power_by_the_drawn_snr():
    x = window()
    y = augment(x.copy(), replace(NOTHING, noise_p=1.0, noise_snr_db=(20.0, 20.0)), np.random.default_rng(0))
    added = 10 ** (y / 10) - 10 ** (x / 10)
    assert (added > -1e-9).all()  # noise only adds power
    assert 0.9 < added.mean() / (10 ** (x / 10)).mean() * 100 < 1.1  # at 20 dB below the window's mean power


def test_masks_floor_whole_bands_and_frames_and_keep_the_rest():
    x = window()
    cfg = replace(NOTHING, freq_masks=2, freq_mask_max=12, time_masks=2, time_mask_max=20)
    for seed in range(10):
        y = augment(x.copy(), cfg, np.random.default_rng(seed))
        masked = y == x.min()  # masked bins go to the window's floor
        bands, frames = masked.all(axis=0), masked.all(axis=1)
        expected = bands[None, :] | frames[:, None]
        expected[np.unravel_index(np.argmin(x), x.shape)] = True  # the one bin that was at the floor already
        assert (masked <= expected).all() and (masked | ~expected).all()  # whole bands or frames, nothing else
        assert (y[~expected] == x[~expected]).all()
        assert bands.sum() <= 24 and frames.sum() <= 40


def test_mixup_blends_windows_and_labels_with_the_same_weights():
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2, 3]]
    xm, ym = mixup(y[:, None, :].copy(), y, 0.4, np.random.default_rng(0))  # each window is its own label
    assert np.allclose(xm[:, 0, :], ym) and np.allclose(ym.sum(axis=1), 1)
    assert not np.allclose(ym, y)  # something was blended


def test_inner_split_is_stratified_and_disjoint():
    labels = [0] * 20 + [1] * 10 + [2] * 2
    fit, val = inner_split(labels, 0.2, seed=0)
    assert not set(fit) & set(val) and sorted(fit + val) == list(range(32))
    assert [labels[i] for i in val].count(0) == 4 and [labels[i] for i in val].count(1) == 2
    assert 2 not in [labels[i] for i in val]  # too few tracks to spare one
    assert inner_split(labels, 0.0, seed=0)[1] == []


def test_training_is_deterministic_and_an_interrupted_run_resumes_to_the_same_model(tmp_path):
    rng = np.random.default_rng(0)
    examples = [Example(rng.normal(-30 + 10 * (i % 2), 10, (60, 96)).astype(np.float32), i % 2) for i in range(12)]
    # with an inner split, so the checkpoint must also carry the best epoch's weights across the interruption
    cfg = TrainConfig(epochs=3, windows_per_epoch=32, batch_size=16, threads=1, val_fraction=0.25)
    straight, history = train(examples, cfg, 43)
    twice, _ = train(examples, cfg, 43)

    def interrupt_in_epoch_2(message: str) -> None:
        if "epoch 2/3" in message:  # logged before epoch 2's checkpoint is written: the file holds epoch 1
            raise KeyboardInterrupt

    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(examples, cfg, 43, ckpt, log=interrupt_in_epoch_2)
    logs: list[str] = []
    resumed, again = train(examples, cfg, 43, ckpt, log=logs.append)
    assert logs[0] == f"resumed from {ckpt} after epoch 1" and [h["epoch"] for h in again] == [1, 2, 3]
    assert [h["loss"] for h in again] == [h["loss"] for h in history]
    for name, weights in straight.state_dict().items():
        assert torch.equal(weights, twice.state_dict()[name]) and torch.equal(weights, resumed.state_dict()[name])
