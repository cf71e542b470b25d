"""ONNX export with a parity check, and the bundle the runtime loads (model, filterbank, meta)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from rtgenre.frontend import MelParams
from rtgenre.model import ModelMeta, sha256_of

from .stream import StreamModel, export_step, step_ms
from .timing import cpu_session, ms_per_run

PARITY_ATOL = 1e-4


class WithSoftmax(nn.Module):
    """The graph the runtime runs: log-mel window in, probabilities out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(mel), dim=1)


def export_onnx(model: nn.Module, path: Path, n_frames: int, n_mels: int) -> float:
    """Write ``path``; returns the largest |torch - ONNX Runtime| over test windows of 1 and 3 s."""
    wrapped = WithSoftmax(model).eval()
    dummy = torch.zeros(2, n_frames, n_mels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(path),
            input_names=["mel"],
            output_names=["probs"],
            dynamic_axes={"mel": {0: "batch", 1: "frames"}, "probs": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    rng = np.random.default_rng(0)
    for frames in (n_frames // 3, n_frames):
        x = (rng.normal(-30, 20, (4, frames, n_mels))).astype(np.float32)
        with torch.no_grad():
            ref = wrapped(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(session.run(None, {"mel": x})[0] - ref).max()))
    if worst > PARITY_ATOL:
        raise RuntimeError(f"ONNX parity check failed: max |diff| {worst:.2e} > {PARITY_ATOL:g}")
    return worst


def onnx_ms_per_window(path: Path, frames: int, n_mels: int, seconds: float = 2.0) -> float:
    """Milliseconds per window in ONNX Runtime on one thread, batches of 32 (the runtime's path)."""
    feed = {"mel": np.random.default_rng(0).normal(-30, 20, (32, frames, n_mels)).astype(np.float32)}
    return ms_per_run(cpu_session(path), feed, seconds) / 32


def write_bundle(
    out: Path,
    model: nn.Module,
    name: str,
    labels: tuple[str, ...],
    params: MelParams,
    filterbank: np.ndarray,
    window_s: float,
    hop_s: float,
    extra: dict,
    card: str,
    encoder: Path | None = None,
) -> ModelMeta:
    """A bundle of ``model``; a ``stream.StreamModel`` brings its encoder (exported from its backbone, or the graph
    ``encoder`` that computed the rows it learnt from, copied as it is), and its cost per window is then the window
    model's plus one encoder step per hop."""
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, StreamModel):
        model = model.narrowed()
    spec = model.spec if isinstance(model, StreamModel) else None
    width = spec.width if spec else params.n_mels
    parity = export_onnx(model, out / "model.onnx", params.frames(window_s), width)
    ms = onnx_ms_per_window(out / "model.onnx", params.frames(window_s), width)
    graphs = ("model.onnx",)
    if spec:
        if encoder is None:
            extra = {
                **extra,
                "encoder_parity_max_rel_diff": export_step(
                    model.backbone, out / "encoder.onnx", params.frames(hop_s), model.columns is not None
                ),
            }
        else:
            shutil.copyfile(encoder, out / "encoder.onnx")
        extra = {**extra, "encoder_ms_per_hop": round(step_ms(out / "encoder.onnx", params.frames(hop_s)), 3)}
        ms += extra["encoder_ms_per_hop"]
        graphs += ("encoder.onnx",)
    np.save(out / "filterbank.npy", filterbank.astype(np.float32))
    meta = ModelMeta(
        name=name,
        labels=labels,
        frontend=params,
        window_s=window_s,
        hop_s=hop_s,
        files={f: sha256_of(out / f) for f in (*graphs, "filterbank.npy")},
        extra={**extra, "onnx_parity_max_abs_diff": parity, "ms_per_window": round(ms, 3)},
        encoder=spec,
    )
    (out / "meta.json").write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(card)
    return meta
