"""The base a user's bundle starts from: a shipped streaming bundle's encoder, and musicnn's own back end.

``fit`` serves new labels through the base bundle's ``encoder.onnx`` unchanged (same graph, same rows, same
cost), and trains a back end on its rows with the shipped default's recipe: musicnn's tag-trained back end
(from the wheel, never fitted to GTZAN) fine-tuned under a new head. The encoder leaves out the front-end
filters that never fire and passes on only the row columns that vary, so the wheel's back end is recovered
in that narrowed form: the kept filters are read from the graph (each pruned block's channel ``order``),
the constant maps of the others from its ``front`` output, and the recovered torch step must compute the
graph's rows (``check``) before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from rtgenre.errors import ModelError
from rtgenre.model import Bundle, load_bundle

from . import musicnn, stream
from .prune import Pruned
from .timing import cpu_session

PARITY_RTOL = 1e-4  # torch step against the base's graph, relative to the rows' largest value


@dataclass(frozen=True)
class Base:
    bundle: Bundle
    net: str
    model: stream.StreamModel  # the wheel's back end, narrowed to the encoder's rows; a placeholder head


def _kept_filters(encoder: Path, blocks: int) -> list[np.ndarray]:
    """Per front-end block, the filters the encoder computes (the rest are constant), from its channel orders."""
    found = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(encoder)).graph.initializer}
    kept = []
    for b in range(blocks):
        order, weight = found.get(f"backbone.frontend.{b}.order"), found.get(f"backbone.frontend.{b}.conv.weight")
        if order is None or weight is None:
            raise ModelError(f"{encoder}: not a pruned musicnn encoder (no channel order for front-end block {b})")
        kept.append(np.argsort(order)[: len(weight)])  # order = argsort(kept ++ dropped)
    return kept


def load_base(spec: str | Path | None, wheel: Path) -> Base:
    """The base bundle (a shipped name or a directory; None: the default) and its back end from ``wheel``."""
    bundle = load_bundle(spec)
    enc = bundle.meta.encoder
    if enc is None:
        raise ModelError(f"base {bundle.path.name}: has no streaming encoder (encoder.onnx); use musicnn-gtzan")
    net = bundle.meta.extra.get("training", {}).get("config", {}).get("net", "MSD_musicnn")
    full = musicnn.from_checkpoint(musicnn.read_wheel(wheel, net))
    path = bundle.path / "encoder.onnx"
    kept = _kept_filters(path, len(full.frontend))
    session = cpu_session(path)
    n_mels = bundle.meta.frontend.n_mels
    silence = {"x": np.zeros((1, 1 + enc.left + enc.right, n_mels), np.float32),
               "context": np.zeros((1, 2 * enc.mid, enc.front_width), np.float32)}  # fmt: skip
    front = session.run(None, silence)[0][0, 0]  # a dropped filter's map is its constant whatever the input
    start = 0
    for i, block in enumerate(full.frontend):
        full.frontend[i] = Pruned(block, kept[i], front[start : start + block.channels])
        start += block.channels
    head = nn.Linear(full.embedding_size, len(bundle.meta.labels))
    model = stream.StreamModel(full, head, replace(enc, width=enc.front_width + 3 * full.midend.convs[0].out_channels))
    model = model.narrowed()
    if model.spec != enc:
        raise ModelError(f"base {bundle.path.name}: its encoder's rows are not those of {net} pruned as it says")
    check(model, session, n_mels)
    return Base(bundle, net, model)


def check(model: stream.StreamModel, session, n_mels: int) -> None:
    """The recovered step computes the base graph's rows: the back end is trained for the rows it is served."""
    s = model.spec
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (1, 20 + s.left + s.right, n_mels)).astype(np.float32)
    ctx = rng.uniform(0, 1, (1, 2 * s.mid, s.front_width)).astype(np.float32)
    with torch.no_grad():
        ref = stream.Step(model.backbone, model.columns)(torch.from_numpy(x), torch.from_numpy(ctx))[1].numpy()
    got = session.run(None, {"x": x, "context": ctx})[1]
    if got.shape != ref.shape:
        raise ModelError(f"the base encoder's rows {got.shape} are not the wheel's musicnn's {ref.shape}")
    worst = float(np.abs(got - ref).max() / max(1.0, np.abs(ref).max()))
    if worst > PARITY_RTOL:
        raise ModelError(f"the base encoder's rows are not the wheel's musicnn's (max rel diff {worst:.1e})")
