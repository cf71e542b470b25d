import json
import subprocess

import numpy as np
import pytest
from helpers import rtgenre, tone, write_audio

from rtgenre.audio import FileSource
from rtgenre.errors import AudioError


def put(path, data: bytes):
    path.write_bytes(data)
    return path


def decoded(path, sr=22050, block=0.5):
    return np.concatenate(list(FileSource(str(path), sr, block)))


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "au"])
def test_formats_decode_to_the_model_rate(tmp_path, fmt):
    y = decoded(write_audio(tmp_path / f"x.{fmt}", tone(2.0, 44100, channels=2), 44100))
    assert abs(len(y) - 2 * 22050) < 2000  # mp3 adds encoder delay
    assert 0.15 < np.sqrt(np.mean(y**2)) < 0.25


@pytest.mark.parametrize("sr", [8000, 96000])
def test_resampling_keeps_duration_and_pitch(tmp_path, sr):
    y = decoded(write_audio(tmp_path / "x.wav", tone(3.0, sr, freq=1000), sr))
    assert abs(len(y) - 3 * 22050) <= 2
    spectrum = np.abs(np.fft.rfft(y[22050:44100]))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1 s of samples: one bin per Hz


def test_six_channels_are_downmixed(tmp_path):
    y = decoded(write_audio(tmp_path / "x.wav", tone(1.0, channels=6), 22050, subtype="FLOAT"))
    np.testing.assert_allclose(y, tone(1.0), atol=1e-6)


def test_a_long_file_streams_in_bounded_blocks(tmp_path):
    f = write_audio(tmp_path / "long.wav", np.zeros(22050 * 120, np.float32), 22050)
    sizes = [len(b) for b in FileSource(str(f), 22050, block_seconds=1.0)]
    assert max(sizes) == 22050 and sum(sizes) == 22050 * 120


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: put(d / "empty.wav", b""), "empty file"),
        (lambda d: put(d / "x.wav", b"hello, not audio" * 100), "not a readable audio file"),
        (lambda d: write_audio(d / "zero.wav", np.zeros(0, np.float32), 22050), "no audio samples"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(AudioError, match=message) as e:
        decoded(make(tmp_path))
    assert "\n" not in str(e.value)


def test_truncated_wav(tmp_path):
    f = write_audio(tmp_path / "t.wav", tone(2.0), 22050)
    f.write_bytes(f.read_bytes()[:40000])
    with pytest.raises(AudioError, match="truncated"):
        decoded(f)


def test_nan_samples_are_located(tmp_path):
    y = tone(2.0)
    y[30000] = np.nan
    f = write_audio(tmp_path / "nan.wav", y, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"NaN or infinite sample at 1\.36 s"):
        decoded(f)


@pytest.mark.parametrize("ext", ["ogg", "mp3"])
def test_a_truncated_compressed_file_is_classified_and_says_so(tmp_path, data, ext):
    src = data / "gtzan" / "rock" / "rock.00000.ogg"
    whole = tmp_path / f"whole.{ext}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-t", "10", str(whole)], check=True)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    r = rtgenre("classify", "--json", str(whole), str(cut))
    assert r.returncode == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["truncated"] for x in results] == [False, True]
    assert f"{cut}: truncated" in r.stderr and "Traceback" not in r.stderr


def test_a_valid_mp3_leaves_stderr_to_rtgenre(tmp_path, data):
    # libmpg123 (inside libsndfile) prints a dozen "part2_3_length too large" notes decoding this valid MP3;
    # the samples equal ffmpeg's decode, so the notes are debug records, never the user's stderr
    mp3 = tmp_path / "metal.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(data / "gtzan" / "metal" / "metal.00007.ogg"),
                    "-b:a", "128k", str(mp3)], check=True)  # fmt: skip
    r = rtgenre("classify", "--json", str(mp3), str(tmp_path / "missing.mp3"))
    assert json.loads(r.stdout)["genre"] == "metal"
    assert r.stderr.strip().splitlines() == [f"rtgenre: error: {tmp_path / 'missing.mp3'}: no such file"]
