"""The real `rtgenre serve` process: many streams, reload, signals, restart, systemd notification."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import free_port, rtgenre
from served import Served, track

from rtgenre.feed import request, subscribe
from rtgenre.model import DEFAULT_MODEL

pytestmark = pytest.mark.slow  # real daemons, devices, browsers or installs: `make test-fast` skips them


@pytest.fixture
def three(tmp_path, data):
    d = Served(tmp_path, [
        {"id": "a", "source": "file", "path": track(data, "classical"), "loop": True},
        {"id": "b", "source": "file", "path": track(data, "rock"), "loop": True},
        {"id": "c", "source": "file", "path": track(data, "jazz"), "loop": True, "hop": 1.0},
    ])  # fmt: skip
    yield d
    if d.proc.poll() is None:
        d.proc.kill()


def test_three_streams_one_feed_and_status(three):
    three.wait_for(lambda: all(len(three.of(s, "window")) >= 2 for s in "abc"))
    st = three.status()
    assert set(st["streams"]) == {"a", "b", "c"}
    assert all(s["state"] == "running" and s["windows"] >= 2 for s in st["streams"].values())
    assert st["provider"] == "CPUExecutionProvider" and st["feed"]["sent"] > 0
    hops = [m["t0"] for m in three.of("c", "window")]
    assert hops[1] - hops[0] == pytest.approx(1.0, abs=0.03)  # stream c has its own hop


def test_sigterm_ends_every_stream_within_two_seconds(three):
    three.wait_for(lambda: len(three.of("a", "window")) >= 1)
    assert three.stop() < 2.0
    assert three.proc.returncode == 0
    three.wait_for(lambda: all(three.of(s, "eos") for s in "abc"), timeout=5)
    assert all(three.of(s, "eos")[0]["reason"] == "shutdown" for s in "abc")


def test_sighup_applies_a_changed_config_without_touching_unchanged_streams(three, data):
    three.wait_for(lambda: len(three.of("a", "window")) >= 2)
    three.write([
        {"id": "a", "source": "file", "path": track(data, "classical"), "loop": True},
        {"id": "b", "source": "file", "path": track(data, "rock"), "loop": True, "hop": 1.0},
        {"id": "d", "source": "file", "path": track(data, "blues"), "loop": True},
    ])  # fmt: skip
    three.proc.send_signal(signal.SIGHUP)
    three.wait_for(lambda: len(three.of("d", "window")) >= 2 and three.of("c", "eos"))
    assert three.of("c", "eos")[0]["reason"] == "removed from the config"
    assert three.of("b", "eos")[0]["reason"] == "reconfigured"
    assert not three.of("a", "eos")  # untouched: no end, and its sequence runs on without a gap
    seqs = [m["seq"] for m in three.of("a")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert three.status()["reloads"] == 1


def test_sighup_with_a_broken_config_keeps_the_old_one_running(three):
    three.wait_for(lambda: len(three.of("a", "window")) >= 1)
    three.config.write_text("streams:\n  - id: a\n    source: nowhere\n")
    three.proc.send_signal(signal.SIGHUP)
    three.wait_log("reload rejected")
    assert three.proc.poll() is None
    st = three.status()
    assert st["reloads"] == 0 and set(st["streams"]) == {"a", "b", "c"}
    before = len(three.of("a", "window"))
    three.wait_for(lambda: len(three.of("a", "window")) > before)
    three.stop()
    assert "nowhere" in "".join(three.log)  # the log says why


def test_a_failing_stream_is_reported_and_the_others_keep_going(tmp_path, data):
    d = Served(tmp_path, [
        {"id": "good", "source": "file", "path": track(data, "pop"), "loop": True},
        {"id": "bad", "source": "file", "path": str(tmp_path / "missing.ogg")},
    ])  # fmt: skip
    try:
        d.wait_for(lambda: d.of("bad", "heartbeat") and len(d.of("good", "window")) >= 3)
        hb = d.of("bad", "heartbeat")[-1]
        assert hb["source"]["state"] == "retrying" and "no such file" in hb["source"]["error"]
        assert d.status()["streams"]["bad"]["failures"] >= 1
    finally:
        d.stop()


def test_kill_9_then_restart_serves_again(three, tmp_path):
    three.wait_for(lambda: len(three.of("a", "window")) >= 1)
    three.proc.kill()
    three.proc.wait(5)
    again = subprocess.Popen(
        [sys.executable, "-m", "rtgenre", "serve", "--config", str(three.config)], stderr=subprocess.PIPE, text=True
    )
    three.proc = again
    three.wait_ready()
    before = len(three.of("a", "window"))
    three.wait_for(lambda: len(three.of("a", "window")) > before)
    assert three.status()["pid"] == again.pid  # the new process, on the same endpoints
    assert three.stop() < 2.0


def test_systemd_notification(tmp_path, data):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    d = Served(tmp_path, [{"id": "a", "source": "file", "path": track(data, "pop")}],
               env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})  # fmt: skip
    try:
        got = [sock.recv(4096).decode() for _ in range(3)]
        assert got[0].startswith("READY=1\nSTATUS=")
        assert any(g.startswith("WATCHDOG=1") for g in got[1:])
    finally:
        d.stop()
        sock.close()


def test_status_without_a_daemon_is_a_one_line_error():
    r = rtgenre("status", "--endpoint", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert r.returncode == 1 and r.stderr.strip().startswith("rtgenre: error: no rtgenre daemon answered")


def test_metrics_endpoint_serves_the_same_figures(tmp_path, data):
    import urllib.request

    port = free_port()
    d = Served(tmp_path, [{"id": "a", "source": "file", "path": track(data, "pop"), "loop": True}])
    d.proc.kill()
    d.proc.wait()
    cfg = json.loads(d.config.read_text())
    cfg["metrics"] = {"port": port}
    d.config.write_text(json.dumps(cfg))
    d.proc = subprocess.Popen([sys.executable, "-m", "rtgenre", "serve", "--config", str(d.config)],
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    d.wait_ready()
    d.wait_for(lambda: len(d.of("a", "window")) >= 2)

    def windows_counted(text: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith('rtgenre_windows_total{stream="a"}')), "- 0")
        return float(line.split()[-1])

    def scraped() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    d.wait_for(lambda: windows_counted(scraped()) >= 2)  # the metrics view refreshes once a second
    text = scraped()
    d.stop()
    assert f'rtgenre_model_info{{model="{DEFAULT_MODEL.name}",provider="CPUExecutionProvider"}} 1.0' in text
    assert 'rtgenre_stream_up{stream="a"} 1.0' in text
    from prometheus_client.parser import text_string_to_metric_families

    latency = next(f for f in text_string_to_metric_families(text) if f.name == "rtgenre_latency_seconds")
    assert latency.type == "histogram"  # not a gauge with a quantile label, which promtool rejects
    inf = next(s for s in latency.samples if s.name.endswith("_bucket") and s.labels["le"] == "+Inf")
    count = next(s for s in latency.samples if s.name.endswith("_count"))
    assert inf.value == count.value >= 2


def test_url_stream_through_ffmpeg(tmp_path, data):
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data / "gtzan" / "jazz"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = sorted((data / "gtzan" / "jazz").glob("*.ogg"))[0].name
    d = Served(tmp_path, [{"id": "radio", "source": "url", "url": f"http://127.0.0.1:{server.server_port}/{name}"}])
    try:
        d.wait_for(lambda: len(d.of("radio", "window")) >= 3)
        assert d.status()["streams"]["radio"]["kind"] == "url"
    finally:
        d.stop()
        server.shutdown()


def test_curve_only_authorized_subscribers_receive(tmp_path, data):
    keys = tmp_path / "keys"
    for name in ("server", "alice", "mallory"):
        assert rtgenre("keygen", str(keys), "--name", name).returncode == 0
    allowed = tmp_path / "authorized"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes((keys / "alice.key").read_bytes())
    feed = f"tcp://127.0.0.1:{free_port()}"
    cfg = {"feed": {"endpoint": feed, "curve_secret_key": str(keys / "server.key_secret"),
                    "curve_authorized_keys": str(allowed)},
           "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}"}, "metrics": {"port": 0}, "web": {"port": 0},
           "streams": [{"id": "a", "source": "file", "path": track(data, "pop"), "loop": True,
                        "speed": 4}]}  # fmt: skip
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "rtgenre", "serve", "--config", str(tmp_path / "config.yaml")])
    results: dict[str, list] = {"alice": []}

    def listen(who: str, **keys_) -> None:  # until 3 s without a message: after the end, or never one at all
        results.setdefault(who, [])
        results[who].extend(subscribe(feed, timeout_s=3, **keys_))

    server_key = str(keys / "server.key")
    threads = [
        threading.Thread(target=listen, args=("alice",),
                         kwargs={"server_key": server_key, "client_key": str(keys / "alice.key_secret")}),
        threading.Thread(target=listen, args=("mallory",),
                         kwargs={"server_key": server_key, "client_key": str(keys / "mallory.key_secret")}),
        threading.Thread(target=listen, args=("plain",)),
    ]  # fmt: skip
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while sum(m["type"] == "window" for _, m in list(results["alice"])) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    for t in threads:
        t.join()
    assert any(m["type"] == "window" for _, m in results["alice"])
    assert results["mallory"] == [] and results["plain"] == []


def test_proxy_gathers_two_daemons(tmp_path, data):
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = subprocess.Popen([sys.executable, "-m", "rtgenre", "proxy", "--frontend", front, "--backend", back])
    got: list = []
    sub = threading.Thread(target=lambda: got.extend(subscribe(back, timeout_s=15)), daemon=True)
    sub.start()
    daemons = []
    for i, genre in enumerate(("rock", "blues")):
        cfg = {"feed": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "connect": [front]},
               "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}"}, "metrics": {"port": 0}, "web": {"port": 0},
               "streams": [{"id": f"host{i}", "source": "file", "path": track(data, genre), "loop": True}]}  # fmt: skip
        path = tmp_path / f"d{i}.yaml"
        path.write_text(json.dumps(cfg))
        daemons.append(subprocess.Popen([sys.executable, "-m", "rtgenre", "serve", "--config", str(path)]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and {s for s, m in got if m["type"] == "window"} != {"host0", "host1"}:
        time.sleep(0.2)
    for p in daemons + [proxy]:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    assert {s for s, m in got if m["type"] == "window"} == {"host0", "host1"}


def test_lyrics_for_a_live_stream_through_the_control_socket(three):
    three.wait_for(lambda: len(three.of("b", "window")) >= 1)
    reply = request(three.control, {"cmd": "lyrics", "stream": "b", "text": "rock and roll all night"}, 30)
    assert reply == {"ok": True, "stream": "b", "lyrics": True}
    three.wait_for(lambda: any(m["lyrics"] for m in three.of("b", "window")))
    assert not any(m["lyrics"] for m in three.of("a", "window"))  # only stream b
    assert "error" in request(three.control, {"cmd": "lyrics", "stream": "nope", "text": "x"}, 5)
    assert request(three.control, {"cmd": "lyrics", "stream": "b", "text": None}, 5)["lyrics"] is False
    song = three.config.parent / "song.lrc"
    song.write_text("[00:01.00]we will rock you\n")
    r = rtgenre("lyrics", "--stream", "b", "--endpoint", three.control, str(song))
    assert r.returncode == 0 and r.stdout.strip() == "stream b: lyrics on"
    r = rtgenre("lyrics", "--stream", "zzz", "--endpoint", three.control, "--clear")
    assert r.returncode == 1 and r.stderr.strip() == "rtgenre: error: no running stream 'zzz'"


def test_a_removed_stream_is_reported_ended(tmp_path, data):
    d = Served(tmp_path, [{"id": "a", "source": "file", "path": track(data, "rock"), "loop": True},
                          {"id": "b", "source": "file", "path": track(data, "jazz"), "loop": True}])  # fmt: skip
    try:
        d.wait_for(lambda: len(d.of("b", "window")) >= 1)
        d.write([{"id": "a", "source": "file", "path": track(data, "rock"), "loop": True}])
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: d.of("b", "eos"))
        assert d.status()["streams"]["b"]["state"] == "ended"
    finally:
        d.stop()


def test_a_url_that_accepts_and_never_sends_is_a_failed_stream(tmp_path, data):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:  # accepts every connection, reads the request, never answers
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept_and_hold, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/stream"
    d = Served(tmp_path, [{"id": "good", "source": "file", "path": track(data, "pop"), "loop": True},
                          {"id": "silent", "source": "url", "url": url, "stall_timeout": 1.0}])  # fmt: skip
    try:
        d.wait_for(lambda: any(m["source"].get("error") for m in d.of("silent", "heartbeat")), timeout=30)
        hb = [m for m in d.of("silent", "heartbeat") if m["source"].get("error")][-1]
        assert hb["source"]["state"] == "retrying" and "stalled" in hb["source"]["error"]
        d.wait_for(lambda: len(held) >= 2, timeout=30)  # it reconnects after the backoff
        d.wait_for(lambda: len(d.of("good", "window")) >= 3)  # and the other stream never noticed
    finally:
        stop.set()
        d.stop()
        server.close()
        for s in held:
            s.close()
