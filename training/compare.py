"""The family comparison's outputs: inference cost per window and the results table."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rtgenre.frontend import MelParams

from .data import GENRES
from .evaluate import SLICE_SECONDS
from .export import export_onnx


def window_cost(family: str, params: MelParams, window_s: float) -> float:
    """Milliseconds per window in ONNX Runtime on one thread, batches of 32 (the runtime's path)."""
    import onnxruntime as ort

    from .models import build

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        export_onnx(build(family, params.n_mels, len(GENRES)).eval(), path, params.frames(window_s), params.n_mels)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).normal(-30, 20, (32, params.frames(window_s), params.n_mels)).astype(np.float32)
        session.run(None, {"mel": x})
        t0 = time.perf_counter()
        for _ in range(10):
            session.run(None, {"mel": x})
        return (time.perf_counter() - t0) / 320 * 1e3


def write_results(out: Path, rows: dict, folds: int, seeds: int, tracks: list, budget: str) -> None:
    def stat(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ({max(values):.3f})"

    head = "| family | " + " | ".join(f"{s:g} s slices" for s in SLICE_SECONDS)
    lines = [head + " | track acc | track macro-F1 | ms / window | × real time | train time / seed |",
             "|---|" + "---|" * (len(SLICE_SECONDS) + 5)]  # fmt: skip
    for family, row in rows.items():
        runs = row["runs"]
        slices = [stat([r["scores"].slice_acc.get(f"{s:g}s", float("nan")) for r in runs]) for s in SLICE_SECONDS]
        realtime = 500 / row["ms_per_window"]  # one window per 0.5 s hop
        lines.append(f"| {family} | " + " | ".join(slices) + f" | {stat([r['scores'].track_acc for r in runs])} | "
                     f"{stat([r['scores'].macro_f1 for r in runs])} | {row['ms_per_window']:.2f} | {realtime:.0f}× | "
                     f"{np.mean([r['wall_s'] for r in runs]) / 60:.1f} min |")  # fmt: skip
    per_genre = ["| genre | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for g in GENRES:
        cells = [f"{np.mean([r['scores'].per_genre_f1.get(g, float('nan')) for r in row['runs']]):.2f}"
                 for row in rows.values()]  # fmt: skip
        per_genre.append(f"| {g} | " + " | ".join(cells) + " |")
    n = len(tracks)
    (out / "RESULTS.md").write_text(f"""# Model families on GTZAN (track-level {folds}-fold cross-validation)

{n} tracks of the fault-filtered train + valid parts ({sum(t.kind == "clip" for t in tracks)} of them 2–3 s clips),
stratified {folds}-fold cross-validation by track, {seeds} seed(s) per family; training budget per run:
{budget}. Cells are the mean over seeds
with the best seed in brackets. Slice accuracy scores non-overlapping slices of the 30 s tracks
with the model trained on 3 s windows; track accuracy averages a track's 3 s windows (1.5 s hop;
a clip is one looped window). ms / window is ONNX Runtime on one CPU thread in batches of 32;
× real time is what one core sustains at the runtime's 0.5 s hop. Train time is the sum of
the epochs over all folds of one seed on 2 CPU cores. Folds are not artist-disjoint.

{chr(10).join(lines)}

Per-genre track-level F1 (mean over seeds):

{chr(10).join(per_genre)}

Confusion matrices (best seed): `confusion_<family>.png`; training curves: `curves_<family>.png`.
""")
    (out / "results.json").write_text(json.dumps(
        {f: {"ms_per_window": r["ms_per_window"], "runs": [{"seed": x["seed"], "wall_s": x["wall_s"],
             "cv": x["scores"].to_json()} for x in r["runs"]]} for f, r in rows.items()}, indent=1))  # fmt: skip
