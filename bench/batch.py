"""`rtgenre batch` against single-process classification of the same files (issue 15).

    python bench/batch.py [--tracks 60]

Baseline: one process, pinned to one core, classifying the files one after another through the library
API (what `rtgenre classify` does). Then `rtgenre batch` on a Dask LocalCluster of 1 worker process
(pinned to the same core, so the ratio is the cost of distributing) and of every core. Timing starts when
the cluster is up (its start-up, a few seconds once per run, is printed apart). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from rtgenre.api import load_model  # noqa: E402
from rtgenre.batch import BatchSettings, Progress, run_batch  # noqa: E402


class Timed(Progress):
    """The batch's own progress, quiet, remembering when the cluster was ready and how much audio went by."""

    def show(self) -> None:
        self.finished = time.monotonic()


def single(files: list[Path]) -> tuple[float, float]:
    model = load_model()
    model.classify(files[0])  # warm-up, as a worker's first file also loads the model
    t0 = time.perf_counter()
    audio = sum(model.classify(f).duration_s for f in files)
    return time.perf_counter() - t0, audio


def batch(files: list[Path], workers: int) -> tuple[float, float, float]:
    listing = Path(tempfile.mkdtemp()) / "files.txt"
    listing.write_text("\n".join(map(str, files)))
    bars: list[Timed] = []
    t0 = time.monotonic()
    run_batch([str(listing)], listing.parent / "out.parquet", BatchSettings(chunk=8), workers=workers,
              progress=lambda n: bars.append(Timed(n)) or bars[-1])  # fmt: skip
    bar = bars[0]
    return bar.finished - bar.started, bar.audio_s, bar.started - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", type=int, default=60)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gtzan")
    args = ap.parse_args()
    files = sorted(args.data.glob("*/*.ogg"))[: args.tracks]
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})
    base_s, audio = single(files)
    one_s, _, one_start = batch(files, 1)
    os.sched_setaffinity(0, set(cores))
    all_s, _, all_start = batch(files, len(cores))
    rows = [  # name, seconds, cluster start, worker processes
        ("single process, 1 core (classify)", base_s, None, 1),
        ("batch, 1 worker, same core", one_s, one_start, 1),
        (f"batch, {len(cores)} workers, {len(cores)} cores", all_s, all_start, len(cores)),
    ]
    print(f"{len(files)} GTZAN tracks, {audio / 60:.1f} min of audio, model crnn2d-gtzan\n")
    print("| run | files/s | audio h per core-hour | × single process | cluster start |")
    print("|---|---|---|---|---|")
    for name, secs, start, workers in rows:
        ratio = "–" if start is None else f"{base_s / secs:.2f}×"
        print(f"| {name} | {len(files) / secs:.1f} | {audio / secs / workers:.0f} | {ratio} | "
              f"{'–' if start is None else f'{start:.1f} s'} |")  # fmt: skip


if __name__ == "__main__":
    main()
