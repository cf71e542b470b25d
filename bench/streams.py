"""How many real-time streams one CPU core sustains in a real `rtgenre serve`, what batching the encoder buys,
what overload does, and whether the daemon's memory stays flat.

Streams per core (``serving.py``): a real `serve` pinned to one core with N looping GTZAN file streams at
real time, its feed read by a subscriber and its control socket asked for its status every second from the
other core; N is sustained when the feed carries ≥ 95 % of the windows real time asks, latency p50 (``wall``
− ``captured``) is ≤ 2 s and every status answer comes within 2 s (bisection in steps of 20 streams). For
the default model with the batched encoder (``encoder_batch: 8``) and one stream per call (``1``), and for
crnn2d; then the default at twice its sustained count (skips counted, status answered). The naive baseline,
measured in the same run in this process, is the seed projects' per-stream loop on crnn2d: at every hop
recompute the window's mel with librosa and run the torch model on that one window.

Memory (``--minutes``, 0 skips it): a real `serve` with 16 looping file streams at 20× real time; its resident
set after 1 minute against after ``--minutes``.

    python bench/streams.py [--data ../shared/data] [--seconds 15] [--minutes 10]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import serving  # noqa: E402
import torch  # noqa: E402
from serving import Load, rss_mb  # noqa: E402
from streaming import step_times, sustained  # noqa: E402
from throughput import MODEL, baseline_model, naive_classify_window, tracks  # noqa: E402

from rtgenre.audio import FileSource  # noqa: E402
from rtgenre.feed import Publisher  # noqa: E402
from rtgenre.model import Classifier, load_bundle  # noqa: E402

torch.set_num_threads(1)


def naive_step_time(bundle, model, audio: list[np.ndarray], n: int) -> float:
    win = int(bundle.meta.window_s * 22050)
    t0 = time.perf_counter()
    for i in range(n):
        y = audio[i % len(audio)]
        naive_classify_window(bundle, model, y[i * 997 % (len(y) - win) :][:win])
    return time.perf_counter() - t0


def memory_run(files: list[Path], minutes: float) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    streams = [{"id": f"s{i}", "source": "file", "path": str(files[i % len(files)]), "loop": True, "speed": 20}
               for i in range(16)]  # fmt: skip
    cfg = {"feed": {"endpoint": "tcp://127.0.0.1:5597"}, "control": {"endpoint": "tcp://127.0.0.1:5596"},
           "metrics": {"port": 0}, "web": {"port": 0}, "provider": "cpu", "model": MODEL,
           "streams": streams}  # fmt: skip
    (tmp / "config.yaml").write_text(json.dumps(cfg))
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # as systemd/rtgenre.service runs it
    proc = subprocess.Popen([sys.executable, "-m", "rtgenre", "serve", "--config", str(tmp / "config.yaml")], env=env)
    try:
        time.sleep(60)
        one = rss_mb(proc.pid)
        time.sleep(max(0.0, minutes * 60 - 60))
        return one, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def load_row(name: str, n: int, load: Load) -> str:
    return (f"| {name} | {n} | {load.fed:.0%} | {load.latency_p50_s:.2f} s / {load.latency_p99_s:.2f} s | "
            f"{load.status_max_s:.2f} s | {load.skipped} | {load.rss_mb / load.streams:.2f} MB |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--seconds", type=float, default=15.0, help="Measured seconds of each serve run.")
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    files = [f.resolve() for f in tracks(args.data, 8)]
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) - {0} or {0})  # the subscriber off the daemon's core
    print(f"one CPU core for `serve` (taskset -c 0), {serving.HOP_S} s hop, {args.seconds:g} s measured a run\n")
    print(
        "| model, encoder calls | streams sustained | feed (of real time) | latency p50 / p99 | "
        "status, slowest | windows skipped | RSS per stream |"
    )
    print("|---|---|---|---|---|---|---|")
    found = {}
    for name, model, lo, hi, batch in (("musicnn-gtzan, 8 streams a call", "musicnn-gtzan", 100, 500, 8),
                                       ("musicnn-gtzan, 1 stream a call", "musicnn-gtzan", 100, 500, 1),
                                       ("crnn2d-gtzan", "crnn2d-gtzan", 200, 1000, 8)):  # fmt: skip
        n, runs = serving.sustained(files, model, lo, hi, seconds=args.seconds, settings={"encoder_batch": batch})
        found[name] = n
        at = next((r for r in runs if r.streams == n), None) or serving.run(n, files, model, args.seconds)
        print(load_row(name, n, at))
    n = found["musicnn-gtzan, 8 streams a call"]
    over = serving.run(2 * n, files, "musicnn-gtzan", args.seconds)
    print(load_row("musicnn-gtzan at twice that (overload)", 2 * n, over))
    before = found["musicnn-gtzan, 1 stream a call"]
    print(f"\nbatched encoder against one stream a call: {n} / {before} = {n / max(before, 1):.2f}×")
    os.sched_setaffinity(0, {0})
    bundle = load_bundle(MODEL)
    clf = Classifier(bundle, "cpu", threads=1)
    audio = [FileSource(str(f), 22050, 30.0).whole() for f in files]
    pub = Publisher("tcp://127.0.0.1:5598", hwm=10_000)
    ours = sustained(lambda k: step_times(bundle, clf, pub, audio, k).mean(), 1, 2000)
    pub.close()
    naive = sustained(lambda k: naive_step_time(bundle, baseline_model(bundle), audio, k), 1, 2000)
    print(
        f"\n{MODEL} in this process (the scheduler's path, no source threads): {ours} streams; naive baseline "
        f"{naive}: {ours / naive:.1f}×"
    )
    if args.minutes > 0:
        one, end = memory_run(files, args.minutes)
        print(
            f"`serve` RSS, 16 streams at 20×: 1 min → {args.minutes:g} min: {one:.0f} MB → {end:.0f} MB "
            f"({(end - one) / one:+.1%})"
        )


if __name__ == "__main__":
    main()
