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
from streaming import HOP_S, step_times, sustained  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    bundle = load_bundle(MODEL)
    clf = Classifier(bundle, "cpu", threads=1)
    model = baseline_model(bundle)
    files = tracks(args.data, 8)
    audio = [FileSource(str(f), 22050, 30.0).whole() for f in files]
    pub = Publisher("tcp://127.0.0.1:5598", hwm=10_000)
    ours = sustained(lambda n: step_times(bundle, clf, pub, audio, n).mean(), 1, 2000)
    naive = sustained(lambda n: naive_step_time(bundle, model, audio, n), 1, 2000)
    print(
        f"one CPU core, {clf.provider}, model {bundle.meta.name}, {bundle.meta.window_s:g} s windows, {HOP_S} s hop\n"
    )
    print("| measure | rtgenre | naive baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| real-time streams sustained on one core | {ours} | {naive} | {ours / naive:.1f}× |")
    step_ms = step_times(bundle, clf, pub, audio, ours).mean() * 1e3
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
