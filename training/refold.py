"""A bundle's streaming encoder rewritten in the current graph form, serving the same rows.

Bundles written before the encoder folded its constant front-end maps (``stream.FoldedStep``) and took a
batch axis run one stream per call and carry 561 maps of state per frame; those written before the front
end's cheaper order (``musicnn.Timbral``: batch norm after the max over frequency, time-only filters as
banded products, wide ones in the DFT's basis) run it at full cost. ``refold`` recovers the pruned backbone
from the wheel and the old graph (``base.load_base``), exports the step as today's code writes it, and
replaces the graph only if a stream of the same frames gets the same rows from both; the window model, and
so every verdict, is unchanged.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from rtgenre.encoder import StreamEncoder
from rtgenre.errors import ModelError
from rtgenre.model import MAX_BATCH, ModelMeta, sha256_of

from . import stream
from .base import load_base
from .export import onnx_ms_per_window
from .timing import cpu_session

ROWS_RTOL = 1e-5  # old graph against new over a stream, relative to the rows' largest value


def stream_rows(spec, session, mel: np.ndarray, block: int = 31) -> np.ndarray:
    """A stream's rows of ``mel`` handed over ``block`` frames at a time, as the runtime does."""
    enc = StreamEncoder(spec, session, mel.shape[1])
    level = np.zeros(block, np.float32)
    parts = [enc.push(mel[i : i + block], level[: len(mel[i : i + block])])[0] for i in range(0, len(mel), block)]
    return np.concatenate([*parts, enc.flush()[0]])


def refold(bundle_dir: Path, wheel: Path) -> dict:
    """Rewrite ``bundle_dir``'s encoder.onnx as today's code writes it (folded, a batch axis); returns what changed."""
    base = load_base(bundle_dir, wheel)
    path = base.bundle.path / "encoder.onnx"
    meta, old = base.bundle.meta, base.bundle.meta.encoder
    hop = meta.frontend.frames(meta.hop_s)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "encoder.onnx"
        parity = stream.export_step(base.model.backbone, tmp, hop, narrow=True)
        folded = cpu_session(tmp)
        new = replace(old, front_width=folded.get_inputs()[1].shape[2])  # the folded state: varying maps + "real"
        mel = np.random.default_rng(0).uniform(-60, 0, (20 * hop, meta.frontend.n_mels)).astype(np.float32)
        a, b = stream_rows(old, cpu_session(path), mel), stream_rows(new, folded, mel)
        worst = float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))
        if a.shape != b.shape or worst > ROWS_RTOL:
            raise ModelError(f"{bundle_dir}: the rewritten encoder's rows differ from the old one's ({worst:.1e})")
        ms_old, ms_new = stream.step_ms(path, hop), stream.step_ms(tmp, hop)
        ms_batch = stream.step_ms(tmp, hop, batch=MAX_BATCH) / MAX_BATCH
        shutil.copyfile(tmp, path)
    extra = dict(meta.extra)
    window_ms = onnx_ms_per_window(base.bundle.onnx_path, meta.frontend.frames(meta.window_s), new.width)
    extra.update(encoder_ms_per_hop=round(ms_new, 3), encoder_ms_per_hop_batched=round(ms_batch, 3),
                 encoder_parity_max_rel_diff=parity, ms_per_window=round(window_ms + ms_new, 3))  # fmt: skip
    files = {**meta.files, "encoder.onnx": sha256_of(path)}
    refolded = ModelMeta(meta.name, meta.labels, meta.frontend, meta.window_s, meta.hop_s, files, extra, new)
    (base.bundle.path / "meta.json").write_text(json.dumps(refolded.to_json(), indent=2) + "\n")
    return {"bundle": str(base.bundle.path), "front_width": [old.front_width, new.front_width],
            "encoder_ms_per_hop": [round(ms_old, 3), round(ms_new, 3)],
            "encoder_ms_per_hop_batched": round(ms_batch, 3), "rows_max_rel_diff": worst}  # fmt: skip
