"""Live capture: capture-to-publish latency and CPU use of `rtgenre listen` at real time.

A private PulseAudio server with a null sink gives PortAudio a real capture device; a GTZAN track
is played into the sink with paplay while `rtgenre listen --device pulse` classifies its monitor.
Latency is the publish time of each window minus the capture time of the window's last sample
(PortAudio's ADC timestamp). CPU is the listen process's user+system time over the steady part of
the run, as a share of one core, beside `parec` capturing the same source to /dev/null, which is
the floor any capture client pays.

    python bench/capture.py [--data ../shared/data] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import PulseServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_share(proc: subprocess.Popen, warmup: float, seconds: float) -> float:
    time.sleep(warmup)
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--seconds", type=float, default=25.0)
    args = ap.parse_args()
    track = args.data / "gtzan" / "classical" / "classical.00000.ogg"
    pulse = PulseServer(Path(tempfile.mkdtemp()) / "pulse")
    pulse.start()
    try:
        player = pulse.play(track)
        listen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtgenre",
                "listen",
                "--device",
                "pulse",
                "--json",
                "--provider",
                "cpu",
                "--duration",
                str(args.seconds + 5),
            ],
            env=pulse.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        share = cpu_share(listen, 4.0, args.seconds)
        out, _ = listen.communicate(timeout=60)
        player.kill()
        parec = subprocess.Popen(
            ["parec", "-d", f"{PulseServer.SINK}.monitor", "--raw"], env=pulse.env, stdout=subprocess.DEVNULL
        )
        player = pulse.play(track)
        floor = cpu_share(parec, 1.0, min(args.seconds, 10.0))
        parec.kill()
        player.kill()
    finally:
        pulse.stop()
    msgs = [json.loads(line) for line in out.splitlines()]
    lat = np.array([m["wall"] - m["captured"] for m in msgs if m["type"] == "window"]) * 1e3
    eos = msgs[-1]
    print(f"{len(lat)} windows captured from a PulseAudio null-sink monitor (44.1 kHz stereo -> 22.05 kHz mono)")
    print("| measure | value |")
    print("|---|---|")
    print(f"| capture-to-publish latency p50 | {np.percentile(lat, 50):.1f} ms |")
    print(f"| capture-to-publish latency p99 | {np.percentile(lat, 99):.1f} ms |")
    print(f"| CPU of `rtgenre listen` at real time | {share:.1%} of one core |")
    print(f"| CPU of `parec` on the same source (capture floor) | {floor:.1%} of one core |")
    print(f"| overflows / ring overruns | {eos['source']['overflows']} / {eos['source']['ring_overruns']} |")


if __name__ == "__main__":
    main()
