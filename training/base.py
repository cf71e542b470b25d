"""The base a user's bundle starts from: a shipped streaming bundle's encoder, and musicnn's own back end.

``fit`` serves new labels through the base bundle's ``encoder.onnx`` unchanged (same graph, same rows, same
cost), and trains a back end on its rows with the shipped default's recipe: musicnn's tag-trained back end
(from the wheel, never fitted to GTZAN) fine-tuned under a new head. The encoder leaves out the front-end
filters that never fire and passes on only the row columns that vary, so the wheel's back end is recovered
in that narrowed form: the kept filters and the constant maps of the others are read from the graph (a folded
graph's metadata; an unfolded one's channel orders and ``front`` output), and the recovered torch step must
compute the graph's rows (``check``) before any training starts.
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
from .prune import Pruned, varying_columns
from .timing import cpu_session

PARITY_RTOL = 1e-4  # torch step against the base's graph, relative to the rows' largest value


@dataclass(frozen=True)
class Base:
    bundle: Bundle
    net: str
    model: stream.StreamModel  # the wheel's back end, narrowed to the encoder's rows; a placeholder head


def _pruning(encoder: Path, full: musicnn.Musicnn, session, n_mels: int, spec) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per front-end block, the filters the encoder computes and every filter's constant (those it does not
    compute): from a folded graph's metadata, or from an unfolded one's channel orders and ``front`` output."""
    if (blocks := stream.pruning_of(encoder)) is not None:
        out = []
        for block, b in zip(full.frontend, blocks, strict=True):
            constant = np.zeros(block.channels)
            constant[b["dropped"]] = b["constant"]
            out.append((np.array(b["kept"]), constant))
        return out
    found = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(encoder)).graph.initializer}
    silence = {"x": np.zeros((1, 1 + spec.left + spec.right, n_mels), np.float32),
               "context": np.zeros((1, 2 * spec.mid, spec.front_width), np.float32)}  # fmt: skip
    front = session.run(None, silence)[0][0, 0]  # a dropped filter's map is its constant whatever the input
    out, start = [], 0
    for b, block in enumerate(full.frontend):
        order, weight = found.get(f"backbone.frontend.{b}.order"), found.get(f"backbone.frontend.{b}.conv.weight")
        if order is None or weight is None:
            raise ModelError(f"{encoder}: not a pruned musicnn encoder (no channel order for front-end block {b})")
        out.append((np.argsort(order)[: len(weight)], front[start : start + block.channels]))  # order: kept ++ dropped
        start += block.channels
    return out


def _refitted_first_conv(encoder: Path, backbone: musicnn.Musicnn) -> None:
    """A slimmed encoder (``prune.slim``) refitted the mid-end's first convolution: the graph carries it, over the
    kept maps and the constants' share (``weight``, ``bias``: folded) or over every map (unfolded); the maps a
    folded graph leaves out keep the wheel's weights, as slimming does."""
    found = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(encoder)).graph.initializer}
    first = backbone.midend.convs[0]
    if stream.pruning_of(encoder) is None:
        weight, bias = found.get("backbone.midend.convs.0.weight"), found.get("backbone.midend.convs.0.bias")
        columns = np.arange(first.in_channels)
    else:
        weight, bias = found.get("weight"), found.get("bias")
        columns = varying_columns(backbone)[0]
        columns = columns[columns < first.in_channels]
        weight = None if weight is None else weight[:, :-1]
    if weight is None or bias is None:
        return  # the wheel's (an older graph's initializers may be folded under other names)
    if weight.shape != (first.out_channels, len(columns), first.kernel_size[0]) or bias.shape != first.bias.shape:
        raise ModelError(f"{encoder}: its mid-end's first convolution {weight.shape} does not fit its kept maps")
    first.weight.data[:, columns] = torch.from_numpy(weight.copy())
    first.bias.data.copy_(torch.from_numpy(bias.copy()))


def load_base(spec: str | Path | None, wheel: Path) -> Base:
    """The base bundle (a shipped name or a directory; None: the default) and its back end from ``wheel``."""
    bundle = load_bundle(spec)
    enc = bundle.meta.encoder
    if enc is None:
        raise ModelError(f"base {bundle.path.name}: has no streaming encoder (encoder.onnx); use musicnn-gtzan")
    net = bundle.meta.extra.get("training", {}).get("config", {}).get("net", "MSD_musicnn")
    full = musicnn.from_checkpoint(musicnn.read_wheel(wheel, net))
    path = bundle.path / "encoder.onnx"
    session = cpu_session(path)
    n_mels = bundle.meta.frontend.n_mels
    for i, (kept, constant) in enumerate(_pruning(path, full, session, n_mels, enc)):
        full.frontend[i] = Pruned(full.frontend[i], kept, constant)
    _refitted_first_conv(path, full)
    head = nn.Linear(full.embedding_size, len(bundle.meta.labels))
    front = sum(b.channels for b in full.frontend)
    every = replace(enc, front_width=front, width=front + 3 * full.midend.convs[0].out_channels)
    model = stream.StreamModel(full, head, every).narrowed()
    if replace(model.spec, front_width=enc.front_width) != enc:
        raise ModelError(f"base {bundle.path.name}: its encoder's rows are not those of {net} pruned as it says")
    model.spec = enc  # an unfolded graph's state is every front-end map
    check(model, session, n_mels)
    return Base(bundle, net, model)


def check(model: stream.StreamModel, session, n_mels: int) -> None:
    """The recovered step computes the base graph's rows: the back end is trained for the rows it is served.
    The context is of real frames: every constant map at its constant (a folded graph's state: its varying maps
    and a 1 for "real")."""
    s = model.spec
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (1, 20 + s.left + s.right, n_mels)).astype(np.float32)
    columns, constants = varying_columns(model.backbone)
    n_front = len(constants) - 3 * model.backbone.midend.convs[0].out_channels
    full = np.where(np.isnan(constants[:n_front]), 0.0, constants[:n_front])
    full = np.broadcast_to(full, (1, 2 * s.mid, n_front)).astype(np.float32).copy()
    varying = columns[columns < n_front]
    full[..., varying] = rng.uniform(0, 1, (1, 2 * s.mid, len(varying)))
    ctx = full if s.front_width == n_front else np.concatenate([full[..., varying], np.ones((1, 2 * s.mid, 1))], axis=2)
    with torch.no_grad():
        ref = stream.Step(model.backbone, model.columns)(torch.from_numpy(x), torch.from_numpy(full))[1].numpy()
    got = session.run(None, {"x": x, "context": ctx.astype(np.float32)})[1]
    if got.shape != ref.shape:
        raise ModelError(f"the base encoder's rows {got.shape} are not the wheel's musicnn's {ref.shape}")
    worst = float(np.abs(got - ref).max() / max(1.0, np.abs(ref).max()))
    if worst > PARITY_RTOL:
        raise ModelError(f"the base encoder's rows are not the wheel's musicnn's (max rel diff {worst:.1e})")
