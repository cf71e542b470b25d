"""OSC output: a real python-osc server on loopback receives what the feed says, from `replay --osc` and
from a stream of `rtgenre serve`."""

from __future__ import annotations

import json
import threading
import time

import pytest
from helpers import rtgenre
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from served import Served, track

from rtgenre.config import load_config


@pytest.fixture
def receiver():
    """An OSC server on 127.0.0.1 recording (address, args) in arrival order."""
    got: list[tuple[str, tuple]] = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: got.append((address, args)))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"udp://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


def wait_until(predicate, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_replay_sends_every_window_as_osc(receiver, data, tmp_path):
    url, got = receiver
    song = track(data, "metal")
    feed_at = f"ipc://{tmp_path}/feed"
    r = rtgenre("replay", "--fast", "--json", "--stream", "live", "--osc", url, "--endpoint", feed_at, song)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: any(address == "/rtgenre/live/eos" for address, _ in got))  # the server thread catches up
    feed = [json.loads(line) for line in r.stdout.splitlines() if '"type"' in line]
    windows = [m for m in feed if m["type"] == "window"]
    genre = [args for address, args in got if address == "/rtgenre/live/genre"]
    probs = [args for address, args in got if address == "/rtgenre/live/probs"]
    labels = next(args for address, args in got if address == "/rtgenre/live/labels")
    assert len(genre) == len(probs) == len(feed) - 1  # every window and heartbeat; eos has its own address
    sent = [m for m in feed if m["type"] != "eos"]
    for m, g, p in zip(sent, genre, probs, strict=True):
        assert g[0] == (m["smoothed_top"] or "") and g[1] == pytest.approx(m["smoothed_confidence"], abs=1e-6)
        assert list(p) == pytest.approx([(m["smoothed"] or {}).get(label, 0.0) for label in labels], abs=1e-6)
    assert len([a for a, _ in got if a == "/rtgenre/live/level"]) == len(windows)
    eos = next(args for address, args in got if address == "/rtgenre/live/eos")
    assert eos[0] == "end of file" and eos[1] == feed[-1]["verdict"]["genre"]


def test_a_bad_target_is_one_line(tmp_path, music):
    r = rtgenre("replay", "--fast", "--osc", "tcp://127.0.0.1:9000", str(music))
    assert r.returncode == 1 and r.stderr.strip() == (
        "rtgenre: error: OSC target 'tcp://127.0.0.1:9000': expected udp://HOST:PORT"
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"streams:\n  - id: a\n    source: file\n    path: {music}\n    osc: [udp://nowhere]\n")
    with pytest.raises(Exception, match=r"c.yaml:5: streams\[0\]\.osc\[0\]: OSC target 'udp://nowhere'"):
        load_config(cfg)


@pytest.mark.slow  # a real daemon
def test_a_served_stream_sends_osc_and_an_absent_receiver_costs_nothing(receiver, data, tmp_path):
    url, got = receiver
    d = Served(tmp_path, [
        {"id": "lit", "source": "file", "path": track(data, "disco"), "loop": True, "speed": 4, "osc": [url]},
        {"id": "dark", "source": "file", "path": track(data, "jazz"), "loop": True, "speed": 4,
         "osc": ["udp://127.0.0.1:9"]},  # nobody listens on the discard port: datagrams vanish
    ])  # fmt: skip
    try:
        d.wait_for(lambda: len(d.of("dark", "window")) >= 10 and len(d.of("lit", "window")) >= 10)
        addresses = {a for a, _ in got}
        assert "/rtgenre/lit/genre" in addresses and not any(a.startswith("/rtgenre/dark/") for a in addresses)
        streams = d.status()["streams"]
        assert streams["lit"]["osc_dropped"] == 0 and streams["dark"]["osc_dropped"] == 0  # vanished, not refused
    finally:
        d.stop()
