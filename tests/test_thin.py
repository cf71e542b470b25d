"""The thin genres' recipes: audio augmentations that change a recording's sound, and the recipe table."""

import json

import numpy as np
import pytest
from helpers import train_here

from rtgenre.audio import FileSource
from training import audioaug, thin


@pytest.fixture(scope="module")
def song(data) -> np.ndarray:
    path = data / "gtzan" / "rock" / "rock.00003.ogg"
    return FileSource(str(path), audioaug.RATE, 30.0).whole()[: 8 * audioaug.RATE]


def band_power_db(y: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / audioaug.RATE)
    return float(10 * np.log10(spectrum[(f >= lo) & (f < hi)].sum() + 1e-20))


@pytest.mark.parametrize("name", sorted(audioaug.AUGMENTS))
def test_an_augmentation_is_a_fixed_other_recording_of_the_track(song, name):
    a = audioaug.AUGMENTS[name](song, np.random.default_rng(7))
    again = audioaug.AUGMENTS[name](song, np.random.default_rng(7))
    assert a.dtype == np.float32 and np.isfinite(a).all() and np.array_equal(a, again)  # cacheable: seeded
    if name == "pitch":  # tape speed: ±0.5-2 semitones changes the length by 3-12 %
        assert 0.03 < abs(len(a) / len(song) - 1) < 0.13
    else:
        assert len(a) == len(song)
        assert np.abs(a - song).max() > 0.01 * np.abs(song).max()


def test_band_limiting_cuts_what_lies_outside_the_band(song):
    limited = audioaug.band(song, np.random.default_rng(0))
    assert band_power_db(song, 7500, 8000) - band_power_db(limited, 7500, 8000) > 20
    assert abs(band_power_db(song, 800, 1200) - band_power_db(limited, 800, 1200)) < 1


def test_a_mixed_in_song_lies_12_to_20_db_under_the_track(song, data):
    other = FileSource(str(data / "gtzan" / "jazz" / "jazz.00000.ogg"), audioaug.RATE, 30.0).whole()
    mixed = audioaug.mix(song, other, np.random.default_rng(0))
    under = 10 * np.log10(np.mean(song**2) / np.mean((mixed - song) ** 2))
    assert len(mixed) == len(song) and 12 <= under <= 20


@pytest.mark.training
def test_the_recipe_table_scores_every_recipe_by_the_protocol(data, tmp_path, wheel):
    extra = tmp_path / "extra" / "rock"  # one unverified song for the recipes that train on them
    extra.mkdir(parents=True)
    (extra / "song.ogg").symlink_to(next((data / "extra" / "rock").glob("*.ogg")))
    mid = f"{thin.SHIPPED.name} +mid-end +eq"  # the mid-end trained on streamed front-end maps, an augmented copy's too
    r = train_here("thin", "--data", str(data / "gtzan"), "--clips", str(data / "gtzan_clips"), "--wheel", str(wheel),
                   "--extra", str(tmp_path / "extra"),
                   "--limit", "3", "--folds", "2", "--fold-seeds", "1", "--epochs", "1", "--patches-per-epoch", "64",
                   "--recipes", f"plain,artist-balanced,+eq,plain + MSD_vgg,rhythm (linear head),{mid}",
                   "--cache", str(tmp_path / "cache"),
                   "--out", str(tmp_path / "thin"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "thin" / "thin.json").read_text())
    assert [row["recipe"]["name"] for row in rows] == [
        "plain",
        "artist-balanced",
        "+eq",
        "plain + MSD_vgg",
        "rhythm (linear head)",
        mid,
    ]
    assert all(len(row["cv_by_split"]) == 1 and len(row["recall"]) == 10 for row in rows)
    table = (tmp_path / "thin" / "THIN.md").read_text()
    assert "| +eq |" in table and "rock recall" in table
    bad = train_here("thin", "--data", str(data / "gtzan"), "--recipes", "+mix", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "the +mix and +extra songs recipes need the songs" in bad.stderr


def test_an_averaged_recipe_is_the_mean_of_its_members_each_from_its_own_seed(wheel):
    """``members``: back ends trained from seeds seed, seed + MEMBER_SEED, …; their window probabilities averaged."""
    from dataclasses import replace
    from types import SimpleNamespace

    from training import finetune, musicnn, thin

    backbone = musicnn.from_checkpoint(musicnn.read_wheel(wheel))
    rng = np.random.default_rng(0)
    tracks = [SimpleNamespace(kind="full", artist=f"a{i}", genre="rock") for i in range(6)]
    feats = [rng.normal(0, 1, (4, 2 * 753)).astype(np.float32) for _ in tracks]
    budget = finetune.FinetuneConfig(epochs=1, patches_per_epoch=32)
    m = thin.Material(tracks, [i % 2 for i in range(6)], feats, backbone, {}, {}, [], [], budget)
    one = thin.Recipe("one", mixup=0.4)
    averaged = thin.fit(m, replace(one, members=2), list(range(4)), 7)
    members = [thin.fit(m, one, list(range(4)), seed) for seed in (7, 7 + thin.MEMBER_SEED)]
    for i in (4, 5):
        np.testing.assert_allclose(averaged(i), (members[0](i) + members[1](i)) / 2, rtol=0, atol=1e-6)
        assert not np.allclose(members[0](i), members[1](i))  # the members differ: their seeds do
