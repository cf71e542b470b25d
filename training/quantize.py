"""int8 quantisation of a bundle's graph (ONNX Runtime static, calibrated on real windows).

Static quantisation fixes each activation's int8 scale from calibration windows, so the runtime
never measures ranges on the fly; the windows come from real training tracks, never from the
tracks that report its accuracy. The bundle keeps its front end and labels: only ``model.onnx``
changes, so the runtime plays it unchanged.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from rtgenre.model import Bundle, Classifier, ModelMeta, load_bundle, sha256_of

from .card import quantized_note
from .data import GENRES, find_tracks, track_mel
from .evaluate import score
from .export import onnx_ms_per_window
from .protocol import EVAL_HOP_S
from .transfer import patches


class Windows:
    """ONNX Runtime's calibration reader over an array of windows, a few at a time."""

    def __init__(self, windows: np.ndarray, batch: int = 8):
        self._batches = iter([windows[i : i + batch] for i in range(0, len(windows), batch)])

    def get_next(self) -> dict | None:
        x = next(self._batches, None)
        return None if x is None else {"mel": np.ascontiguousarray(x, np.float32)}


def quantize(bundle: Bundle, calibration: np.ndarray, out: Path) -> ModelMeta:
    """Write ``out``: ``bundle`` with an int8 graph calibrated on ``calibration`` (windows, frames, mels)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        prepared = Path(d) / "prepared.onnx"
        quant_pre_process(str(bundle.onnx_path), str(prepared))
        quantize_static(str(prepared), str(out / "model.onnx"), Windows(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.Percentile,
                        # only the convolutions (96 % of the work): level normalisation spans 1e-10..1e2 in
                        # power and the head's weights carry the features' scales, which no int8 scale holds
                        # (quantising them left 7 % and 30 % of windows agreeing with the float graph)
                        op_types_to_quantize=["Conv"])  # fmt: skip
    shutil.copyfile(bundle.path / "filterbank.npy", out / "filterbank.npy")
    m = bundle.meta
    meta = ModelMeta(out.name, m.labels, m.frontend, m.window_s, m.hop_s,
                     {f: sha256_of(out / f) for f in ("model.onnx", "filterbank.npy")},
                     m.extra)  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    return meta


def quantize_bundle(bundle: Bundle, data_root: Path, n_windows: int, cache: Path, out: Path) -> dict:
    """The int8 copy of ``bundle`` (a model of mel windows) calibrated on train-split windows of ``data_root``,
    written to ``out`` with its figures: agreement with the float model and accuracy on the valid split, cost."""
    frontend = bundle.frontend()
    tracks = find_tracks(data_root)
    n = bundle.meta.frontend.frames(bundle.meta.window_s)
    hop = bundle.meta.frontend.frames(EVAL_HOP_S)
    rng = np.random.default_rng(0)
    pool = np.concatenate([patches(track_mel(t, frontend, cache), n, hop) for t in tracks if t.split == "train"])
    calibration = pool[rng.choice(len(pool), min(n_windows, len(pool)), replace=False)]
    valid = [t for t in tracks if t.split == "valid"]
    windows = [patches(track_mel(t, frontend, cache), n, hop) for t in valid]
    labels = [GENRES.index(t.genre) for t in valid]
    quantize(bundle, calibration, out)
    fp, q8 = Classifier(bundle), Classifier(load_bundle(out))
    pairs = [(fp.predict(w), q8.predict(w)) for w in windows]
    p_fp, p_q8 = [a for a, _ in pairs], [b for _, b in pairs]
    figures = {
        "calibration_windows": len(calibration),
        "valid_window_agreement": round(
            float(np.mean(np.concatenate([a.argmax(1) == b.argmax(1) for a, b in pairs]))), 4
        ),
        "valid_track_agreement": round(float(np.mean([a.mean(0).argmax() == b.mean(0).argmax() for a, b in pairs])), 4),
        "valid_track_acc_float": score(p_fp, labels).track_acc,
        "valid_track_acc_int8": score(p_q8, labels).track_acc,
        "max_abs_prob_diff": round(float(max(np.abs(a - b).max() for a, b in pairs)), 4),
        "ms_per_window_float": bundle.meta.extra.get("ms_per_window"),
        "ms_per_window_int8": round(onnx_ms_per_window(out / "model.onnx", n, bundle.meta.frontend.n_mels), 3),
    }
    meta = load_bundle(out).meta
    meta = replace(meta, extra={**meta.extra, "int8": figures, "ms_per_window": figures["ms_per_window_int8"]})
    (out / "meta.json").write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    card = (bundle.path / "MODEL_CARD.md").read_text() if (bundle.path / "MODEL_CARD.md").is_file() else ""
    (out / "MODEL_CARD.md").write_text(card.replace(f"# Model card: {bundle.path.name}", f"# Model card: {out.name}")
                                       + quantized_note(figures))  # fmt: skip
    return {"name": meta.name, **figures}
