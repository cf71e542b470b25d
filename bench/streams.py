"""How many real-time streams one CPU core sustains, and whether the daemon's memory stays flat.

Streams per core: N streams, each handed one hop of real GTZAN audio per step, go through the
daemon's path (streaming mel, one batched inference call for all due windows, smoothing,
publishing on a real socket); N is sustained when a step takes less than the hop it represents.
The baseline, measured in the same run, is the seed projects' per-stream loop: at every hop
recompute the window's mel with librosa and run the torch model on that one window.

Memory: a real `rtgenre serve` with 16 looping file streams at 20× real time; its resident set
after 1 minute against after 10 (``--minutes``).

    python bench/streams.py [--data ../shared/data] [--minutes 10]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from throughput import baseline_model, naive_classify_window, tracks  # noqa: E402

from rtgenre.audio import FileSource  # noqa: E402
from rtgenre.feed import Publisher  # noqa: E402
from rtgenre.model import Classifier, load_bundle  # noqa: E402
from rtgenre.pipeline import StreamPipeline, StreamSettings  # noqa: E402

torch.set_num_threads(1)
HOP_S = 0.5


def step_time(bundle, clf, pub: Publisher, audio: list[np.ndarray], n: int, steps: int = 20) -> float:
    """Mean seconds for one hop of all ``n`` streams through the daemon's path."""
    pipes = [StreamPipeline(bundle, StreamSettings(stream_id=f"s{i}", hop_s=HOP_S), pub) for i in range(n)]
    hop = int(HOP_S * 22050)
    warm = int(bundle.meta.window_s / HOP_S) + 1
    times = []
    for k in range(warm + steps):
        t0 = time.perf_counter()
        due = []
        for i, p in enumerate(pipes):
            y = audio[i % len(audio)]
            start = (k * hop + i * 997) % (len(y) - hop)
            p.feed(y[start : start + hop])
            due += [(p, w) for w in p.windows()]
        if due:
            probs = clf.predict(np.stack([w.mel for _, w in due]))
            for (p, w), pr in zip(due, probs, strict=True):
                p.emit([w], pr[None])
        if k >= warm:
            times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def naive_step_time(bundle, model, audio: list[np.ndarray], n: int) -> float:
    win = int(bundle.meta.window_s * 22050)
    t0 = time.perf_counter()
    for i in range(n):
        y = audio[i % len(audio)]
        naive_classify_window(bundle, model, y[i * 997 % (len(y) - win) :][:win])
    return time.perf_counter() - t0


def sustained(measure, lo: int, hi: int) -> int:
    """Largest n in [lo, hi] whose step fits in one hop (binary search on a monotone cost)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if measure(mid) < HOP_S else (lo, mid - 1)
    return lo


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def memory_run(files: list[Path], minutes: float) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    streams = [{"id": f"s{i}", "source": "file", "path": str(files[i % len(files)]), "loop": True, "speed": 20}
               for i in range(16)]  # fmt: skip
    cfg = {"feed": {"endpoint": "tcp://127.0.0.1:5597"}, "control": {"endpoint": "tcp://127.0.0.1:5596"},
           "metrics": {"port": 0}, "provider": "cpu", "streams": streams}  # fmt: skip
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    bundle = load_bundle()
    clf = Classifier(bundle, "cpu", threads=1)
    model = baseline_model(bundle)
    files = tracks(args.data, 8)
    audio = [np.concatenate(list(FileSource(str(f), 22050, 30.0))) for f in files]
    pub = Publisher("tcp://127.0.0.1:5598", hwm=10_000)
    ours = sustained(lambda n: step_time(bundle, clf, pub, audio, n), 1, 2000)
    naive = sustained(lambda n: naive_step_time(bundle, model, audio, n), 1, 2000)
    print(
        f"one CPU core, {clf.provider}, model {bundle.meta.name}, {bundle.meta.window_s:g} s windows, {HOP_S} s hop\n"
    )
    print("| measure | rtgenre | naive baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| real-time streams sustained on one core | {ours} | {naive} | {ours / naive:.1f}× |")
    step_ms = step_time(bundle, clf, pub, audio, ours) * 1e3
    pub.close()
    print(f"| one hop of {ours} streams takes | {step_ms:.0f} ms of {HOP_S * 1e3:.0f} | | |")
    if args.minutes > 0:
        one, end = memory_run(files, args.minutes)
        print(
            f"| `serve` RSS, 16 streams at 20×: 1 min → {args.minutes:g} min | {one:.0f} MB → {end:.0f} MB "
            f"({(end - one) / one:+.1%}) | | |"
        )


if __name__ == "__main__":
    main()
