"""A model at longer hops: how often the verdict changes, and the cost per second of audio on one core.

A stream pays for one window per hop, so a longer hop buys streams per core with fewer windows per
verdict. For each hop: how many 30 s GTZAN tracks get the same verdict as at the first hop through the
runtime (``rtgenre.load_model(...).classify``; a shipped model was trained on these tracks, so its
accuracy on them would flatter it, but a verdict that does not change cannot change accuracy either:
the disagreement bounds the accuracy a hop can cost), the cost of one second of audio (the streaming
front end plus ONNX Runtime per window, measured as bench/models.py measures them) and what one core
sustains (× real time). Ratios are against the first hop, measured in the same run.

    python bench/hop.py [--model musicnn-gtzan] [--hops 0.5,1.5,3] [--data ../shared/data]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's training package

import rtgenre  # noqa: E402
from models import HOP_S, frontend_ms_per_hop, model_ms_per_window  # noqa: E402
from training.data import find_tracks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="musicnn-gtzan")
    ap.add_argument("--hops", default="0.5,1.5,3")
    ap.add_argument("--every", type=int, default=2, help="Every n-th of the 30 s tracks (2: half of them).")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    hops = [float(h) for h in args.hops.split(",")]
    model = rtgenre.load_model(args.model)
    tracks = find_tracks(args.data / "gtzan")[:: args.every]
    # the front end and a streaming encoder cost the same per second of audio whatever the hop
    front_ms_per_s = sum(frontend_ms_per_hop(model.bundle, args.data / "gtzan" / "rock" / "rock.00000.ogg")) / HOP_S
    window_ms = model_ms_per_window(model.bundle, repeats=5)
    verdicts = {hop: [model.classify(t.path, hop_s=hop).genre for t in tracks] for hop in hops}
    first = verdicts[hops[0]]
    print(f"{args.model}: {len(tracks)} tracks of 30 s, {window_ms:.2f} ms per window, front end (and encoder) "
          f"{front_ms_per_s:.2f} ms per second of audio (one core)\n")  # fmt: skip
    print(f"| hop | same verdict as at {hops[0]:g} s | ms per second of audio | × real time | cost vs first |")
    print("|---|---|---|---|---|")
    for hop in hops:
        same = sum(a == b for a, b in zip(verdicts[hop], first, strict=True))
        ms = front_ms_per_s + window_ms / hop
        cost = ms / (front_ms_per_s + window_ms / hops[0])
        print(f"| {hop:g} s | {same / len(tracks):.3f} ({same}/{len(tracks)}) | {ms:.2f} | {1e3 / ms:.0f}× | "
              f"{cost:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
