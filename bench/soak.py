"""Soak: a real `rtgenre serve` under load for an hour, with one subscriber that stalls half the time.

4 file streams at real time and 8 at 20× real time (all looping GTZAN tracks) publish to two
subscribers: a healthy one that reads everything, and a stuck one, a real `rtgenre subscribe`
process that is stopped with SIGSTOP for 30 s of every minute (its socket queue fills, so it loses
messages). Reported: the daemon's resident set at 5 minutes and at the end, its growth, the
windows per second, and the seq gaps the healthy subscriber saw (it must see none: one stuck
subscriber may cost only itself).

    python bench/soak.py [--data ../shared/data] [--minutes 60]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serving import rss_mb

from rtgenre.feed import request, subscribe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--minutes", type=float, default=60.0)
    args = ap.parse_args()
    files = sorted((args.data / "gtzan").glob("*/*.00001.ogg"))
    feed, control = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    streams = [{"id": f"rt{i}", "source": "file", "path": str(files[i % len(files)]), "loop": True} for i in range(4)]
    streams += [{"id": f"fast{i}", "source": "file", "path": str(files[(i + 4) % len(files)]), "loop": True,
                 "speed": 20.0} for i in range(8)]  # fmt: skip
    cfg = Path(tempfile.mkdtemp()) / "soak.yaml"
    cfg.write_text(json.dumps({"feed": {"endpoint": feed}, "control": {"endpoint": control}, "metrics": {"port": 0},
                               "web": {"port": 0}, "streams": streams}))  # fmt: skip
    last_seq: dict[str, int] = {}
    gaps = {"messages": 0, "lost": 0}

    def healthy() -> None:
        for stream, msg in subscribe(feed, timeout_s=30):
            seq = msg["seq"]
            if stream in last_seq and seq != last_seq[stream] + 1:
                gaps["lost"] += seq - last_seq[stream] - 1
            last_seq[stream] = seq
            gaps["messages"] += 1

    reader = threading.Thread(target=healthy, daemon=True)
    reader.start()
    daemon = subprocess.Popen([sys.executable, "-m", "rtgenre", "serve", "--config", str(cfg)])
    stuck = subprocess.Popen([sys.executable, "-m", "rtgenre", "subscribe", "--endpoint", feed, "--json"],
                             stdout=subprocess.DEVNULL)  # fmt: skip
    t0 = time.monotonic()
    rss5 = None
    windows0 = None
    try:
        while time.monotonic() - t0 < args.minutes * 60:
            minute = (time.monotonic() - t0) % 60
            stuck.send_signal(signal.SIGSTOP if minute < 30 else signal.SIGCONT)
            elapsed = time.monotonic() - t0
            if windows0 is None and elapsed > 60:
                streams = request(control, {"cmd": "status"}, 30)["streams"]
                windows0 = (elapsed, sum(s["windows"] for s in streams.values()))
            if rss5 is None and elapsed >= min(300, args.minutes * 30):
                rss5 = rss_mb(daemon.pid)
            time.sleep(1)
        status = request(control, {"cmd": "status"}, 30)
        rss_end = rss_mb(daemon.pid)
        elapsed = time.monotonic() - t0
    finally:
        stuck.send_signal(signal.SIGCONT)
        stuck.terminate()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    windows = sum(s["windows"] for s in status["streams"].values())
    rate = (windows - windows0[1]) / (elapsed - windows0[0]) if windows0 else float("nan")
    print(f"""| measure | value |
|---|---|
| duration | {elapsed / 60:.1f} min, 4 streams at 1× + 8 at 20× |
| RSS at {min(5, args.minutes / 2):g} min | {rss5:.1f} MB |
| RSS at the end | {rss_end:.1f} MB |
| RSS growth | {100 * (rss_end / rss5 - 1):+.1f} % |
| windows per second | {rate:.1f} |
| messages at the healthy subscriber | {gaps["messages"]} |
| seq gaps at the healthy subscriber (messages lost) | {gaps["lost"]} |
| stuck subscriber | stopped 30 s of every minute |""")
    os.remove(cfg)


if __name__ == "__main__":
    main()
