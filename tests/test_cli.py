import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from helpers import rtgenre, rtgenre_here, tone, until_eos, write_audio

from rtgenre.model import DEFAULT_MODEL


def assert_one_line_error(r, pattern: str):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("rtgenre: error: ") and pattern in lines[0], lines[0]


def test_version_and_help():
    assert rtgenre("--version").stdout.startswith("rtgenre, version")
    commands = rtgenre_here("--help").stdout.split("Commands:")[1]
    assert "..." not in commands and len(commands.strip().splitlines()) == 13  # every summary whole
    for cmd in ("replay", "classify", "subscribe"):
        r = rtgenre(cmd, "--help")
        assert r.returncode == 0 and "Usage:" in r.stdout


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["classify", "--window", "9", "x.ogg"], "Invalid value for '--window': 9.0 is not in the range 1.0<=x<=3.0"),
        (["replay", "--hop", "0", "x.ogg"], "Invalid value for '--hop'"),
        (["classify", "--window", "2", "--hop", "2.5", "x.ogg"], "--hop 2.5 s is longer than the window (2 s)"),
        (["listen", "--provider", "cpu", "--require-gpu"], "--require-gpu contradicts --provider cpu"),
        (["serve"], "no config: pass --config FILE or set RTGENRE_CONFIG"),
    ],
)
def test_contradicting_or_out_of_range_options_are_usage_errors_before_any_work(args, pattern, tmp_path, monkeypatch):
    monkeypatch.setattr("rtgenre.cli.CONFIG_PLACES", (tmp_path / "none.yaml",))
    monkeypatch.delenv("RTGENRE_CONFIG", raising=False)
    r = rtgenre_here(*args)
    assert r.returncode == 2 and pattern in r.stderr, r.stderr  # click's usage-error code, before any file is read


def make_bad(kind: str, d):
    if kind == "missing":
        return d / "nope.wav"
    if kind == "directory":
        return d
    f = d / "bad.wav"
    if kind == "empty":
        f.write_bytes(b"")
    elif kind == "not audio":
        f.write_bytes(b"\x00\x01garbage" * 500)
    elif kind == "truncated":
        write_audio(f, tone(3.0), 22050)
        f.write_bytes(f.read_bytes()[:30000])
    elif kind == "zero length":
        write_audio(f, np.zeros(0, np.float32), 22050)
    elif kind == "silence":
        write_audio(f, np.zeros(22050 * 4, np.float32), 22050)
    elif kind == "nan":
        y = tone(3.0)
        y[100] = np.inf
        write_audio(f, y, 22050, subtype="FLOAT")
    return f


BAD = {
    "missing": "no such file",
    "directory": "is a directory",
    "empty": "empty file",
    "not audio": "not a readable audio file",
    "truncated": "truncated",
    "zero length": "no audio samples",
    "silence": "silent throughout",
    "nan": "NaN or infinite sample",
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_to_classify(tmp_path, kind):
    assert_one_line_error(rtgenre_here("classify", str(make_bad(kind, tmp_path))), BAD[kind])


@pytest.mark.parametrize("kind", ["missing", "not audio", "silence"])
def test_bad_input_to_replay(tmp_path, endpoint, kind):
    assert_one_line_error(
        rtgenre_here("replay", "--fast", "--endpoint", endpoint, str(make_bad(kind, tmp_path))), BAD[kind]
    )


def test_one_bad_file_does_not_stop_the_others(tmp_path, music):
    bad = make_bad("not audio", tmp_path)
    r = rtgenre("classify", "--json", str(music), str(bad), str(music))
    assert r.returncode == 1
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["file"] for x in results] == [str(music), str(music)]
    assert len(r.stderr.strip().splitlines()) == 1 and str(bad) in r.stderr


@pytest.mark.parametrize("sr, channels", [(8000, 1), (96000, 2), (44100, 6)])
def test_unusual_rates_and_channel_counts_are_classified(tmp_path, sr, channels):
    f = write_audio(tmp_path / "x.wav", tone(4.0, sr, channels=channels), sr)
    r = rtgenre("classify", "--json", str(f))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["genre"] in json.loads((DEFAULT_MODEL / "meta.json").read_text())["labels"]
    assert abs(sum(out["probs"].values()) - 1) < 1e-4


@pytest.mark.parametrize("kind", ["missing", "corrupt", "sha"])
def test_bad_model_bundle(tmp_path, music, kind):
    d = tmp_path / "model"
    if kind != "missing":
        shutil.copytree(DEFAULT_MODEL, d)
    if kind == "corrupt":
        (d / "meta.json").write_text("{")
    if kind == "sha":
        (d / "filterbank.npy").write_bytes(b"x" + (d / "filterbank.npy").read_bytes()[1:])
    pattern = {"missing": "no such directory", "corrupt": "not valid JSON", "sha": "sha256 mismatch"}[kind]
    assert_one_line_error(rtgenre_here("classify", "--model", str(d), str(music)), pattern)


def test_endpoint_in_use_and_malformed(music, endpoint):
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.bind(endpoint)
    try:
        assert_one_line_error(rtgenre_here("replay", "--fast", "--endpoint", endpoint, str(music)), "already in use")
    finally:
        sock.close(0)
    assert_one_line_error(rtgenre_here("replay", "--endpoint", "tcp://nowhere", str(music)), "malformed endpoint")


def test_replay_publishes_to_a_separate_subscriber(music, endpoint):
    sub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtgenre",
            "subscribe",
            "--endpoint",
            endpoint,
            "--json",
            "--until-eos",
            "--timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    r = rtgenre("replay", "--fast", "--json", "--wait", "10", "--endpoint", endpoint, "--model", "crnn2d-gtzan",
                str(music))  # fmt: skip
    out, _ = sub.communicate(timeout=30)
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in out.splitlines()]
    windows = [m for m in msgs if m["type"] == "window"]
    assert len(windows) == 4  # 216 frames, 129-frame windows every 22 frames
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    eos = msgs[-1]
    assert eos["type"] == "eos" and eos["stats"]["windows"] == 4
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    assert printed[-1]["file"] == str(music)


def test_replay_is_paced_at_real_time(music, endpoint):
    t0 = time.monotonic()
    r = rtgenre("replay", "--json", "--endpoint", endpoint, str(music))
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 5.0  # the audio clock: 5 s of audio take at least 5 s


def test_the_live_view_says_where_it_publishes(music, endpoint):
    import pty

    main, tty = pty.openpty()  # a terminal: the live view instead of JSON lines
    proc = subprocess.Popen([sys.executable, "-m", "rtgenre", "replay", "--fast", "--endpoint", endpoint, str(music)],
                            stdin=subprocess.DEVNULL, stdout=tty, stderr=tty)  # fmt: skip
    os.close(tty)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(60) == 0
    text = out.decode(errors="replace")
    assert f"publishing on {endpoint}; to follow it elsewhere: rtgenre subscribe --endpoint {endpoint}" in text
    assert "level nan" not in text and "genre" in text


@pytest.mark.parametrize("weight", ["1e308", "-5", "nan"])
def test_cli_lyrics_weight_is_range_checked(tmp_path, weight):
    song = tmp_path / "song.txt"
    song.write_text("la la la")
    r = rtgenre("lyrics", "--stream", "a", "--weight", weight, "--endpoint", "tcp://127.0.0.1:9", str(song))
    assert r.returncode == 2 and "0<=x<=1" in r.stderr


def demote() -> list[str]:
    """A command prefix under which root obeys file permissions (CI runs as root)."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_an_unreadable_file_is_reported_and_the_good_one_classified(tmp_path, music):
    bad = tmp_path / "unreadable.wav"
    shutil.copy(music, bad)
    bad.chmod(0)
    r = subprocess.run([*demote(), sys.executable, "-m", "rtgenre", "classify", str(music), str(bad)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1
    assert json.loads(r.stdout)["file"] == str(music)
    assert r.stderr.strip() == f"rtgenre: error: {bad}: permission denied"


def test_replay_ends_with_eos_when_the_file_fails_midway(tmp_path, endpoint):
    y = (0.1 * np.random.default_rng(0).standard_normal(22050 * 4)).astype(np.float32)
    y[22050 * 3] = np.nan
    bad = write_audio(tmp_path / "nan.wav", y, 22050, subtype="FLOAT")
    got = []
    t = threading.Thread(target=until_eos, args=(endpoint, got, 15))
    t.start()
    r = rtgenre("replay", "--fast", "--json", "--wait", "5", "--endpoint", endpoint, str(bad))
    t.join()
    assert r.returncode == 1 and "NaN or infinite sample" in r.stderr
    assert got[-1]["type"] == "eos" and got[-1]["reason"].startswith("error: ")


def test_replay_ends_with_eos_on_sigterm(music, endpoint):
    got = []
    t = threading.Thread(target=until_eos, args=(endpoint, got, 10))
    t.start()
    cmd = [sys.executable, "-m", "rtgenre", "replay", "--json", "--wait", "5", "--endpoint", endpoint, str(music)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not any(m["type"] == "window" for m in got) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    t.join()
    assert proc.returncode == 143 and "Traceback" not in err
    assert got[-1]["type"] == "eos" and got[-1]["reason"] == "terminated"


def test_a_one_sample_file_gets_no_genre(tmp_path):
    f = write_audio(tmp_path / "one.wav", np.array([0.5], np.float32), 22050)
    assert_one_line_error(rtgenre_here("classify", str(f)), "shorter than 0.5 s")
