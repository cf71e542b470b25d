"""Cost of every shipped model on one CPU core: milliseconds per window with the front end included.

For each bundle: the streaming front end's cost per 0.5 s hop of real audio at the model's rate,
its streaming encoder's (a bundle with ``encoder.onnx``: musicnn's convolutions, once per frame),
ONNX Runtime's cost per window (one thread, batches of 32, the daemon's path), their sum, and
what one core sustains at a 0.5 s hop (× real time). The default model is the baseline the
ratios are taken against, measured in the same run.

    python bench/models.py [--data ../shared/data]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rtgenre.audio import FileSource  # noqa: E402
from rtgenre.model import DEFAULT_MODEL, Classifier, load_bundle, shipped_models  # noqa: E402

HOP_S = 0.5


def frontend_ms_per_hop(bundle, audio: Path) -> tuple[float, float]:
    """Milliseconds per hop of the streaming front end, and of the streaming encoder (0 without one)."""
    rate = bundle.meta.frontend.sample_rate
    y = FileSource(str(audio), rate, block_seconds=30.0).whole()
    hop = int(HOP_S * rate)
    stream, encoder = bundle.frontend().stream(), bundle.stream_encoder()
    blocks = [y[i : i + hop] for i in range(0, len(y) - hop, hop)]
    fe = enc = 0.0
    for b in blocks:
        t0 = time.perf_counter()
        mel, level = stream.push(b)
        t1 = time.perf_counter()
        if encoder is not None:
            encoder.push(mel, level)
        fe, enc = fe + t1 - t0, enc + time.perf_counter() - t1
    return fe / len(blocks) * 1e3, enc / len(blocks) * 1e3


def model_ms_per_window(bundle, repeats: int) -> float:
    clf = Classifier(bundle, "cpu", threads=1)
    p = bundle.meta.frontend
    x = np.random.default_rng(0).normal(-30, 20, (32, p.frames(bundle.meta.window_s), bundle.input_width))
    clf.predict(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        clf.predict(x)
    return (time.perf_counter() - t0) / (32 * repeats) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    audio = args.data / "gtzan" / "rock" / "rock.00000.ogg"
    rows = {}
    for name in shipped_models():
        bundle = load_bundle(name)
        (fe, enc), nn = frontend_ms_per_hop(bundle, audio), model_ms_per_window(bundle, args.repeats)
        rows[name] = (fe, enc, nn, fe + enc + nn, sum(f.stat().st_size for f in bundle.path.iterdir()) / 1e6)
    base = rows[DEFAULT_MODEL.name][3]
    print("| model | front end ms / hop | encoder ms / hop | model ms / window | total ms / window | "
          "× real time (0.5 s hop) | cost vs default | size |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name, (fe, enc, nn, total, size) in rows.items():
        print(
            f"| {name} | {fe:.3f} | {enc:.2f} | {nn:.2f} | {total:.2f} | {HOP_S * 1e3 / total:.0f}× | "
            f"{total / base:.1f}× | {size:.1f} MB |"
        )


if __name__ == "__main__":
    main()
