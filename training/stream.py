"""musicnn as a streaming encoder: each new frame's features computed once, not once per window.

A 3 s window at a 0.5 s hop shares five sixths of its frames with the one before, and musicnn's front
and mid-end are convolutions over time, so recomputing them for every window does six times the work.
Here they run as a step over new frames: ``Step`` takes the new (level-normalised, log-compressed)
frames with the context its convolutions need and the front-end maps of the frames before them, and
returns the new frames' front-end maps (kept for the next step) and their feature rows (front and
mid-end maps, 753 a frame; the shipped encoder passes on only those that vary once ``prune.py`` has left
out the filters that never fire). ``StreamModel`` is the rest of musicnn plus the genre head: max and
mean of a window's rows -> back end -> probabilities. ``rtgenre.encoder`` drives the step at run time and
in training alike, so the features a model learns from are the ones it is served.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.nn.functional import conv1d

from rtgenre.encoder import EncoderSpec, StreamEncoder

from . import musicnn, transfer
from .data import Track
from .prune import Pruned, varying_columns
from .timing import cpu_session, ms_per_run

# mel frames of context a new frame's front-end maps need (the 128-frame temporal filter, TF "same")
LEFT, RIGHT = 63, 64
MID = 9  # front-end frames each side of a mid-end output (three 7-frame convolutions)
WINDOW_FRAMES = musicnn.PATCH_FRAMES
EVAL_HOP_FRAMES = musicnn.PARAMS.frames(transfer.EVAL_HOP_S)
HOP_FRAMES = musicnn.PARAMS.frames(0.5)  # new frames a step takes at the runtime's default hop
PRUNING_KEY = "rtgenre.pruning"  # a folded graph's metadata: its blocks' kept filters and constants
PARITY_RTOL = 1e-5  # torch against ONNX Runtime, relative to the rows' largest value


def _valid(maps: Callable[[torch.Tensor], torch.Tensor], pad: tuple[int, int], x: torch.Tensor, left: int,
           right: int) -> torch.Tensor:  # fmt: skip
    """A front-end block's ``maps`` without padding over ``x`` cropped to what its kernel needs: (B, 1, T, F) ->
    (B, C, T')."""
    pad_l, pad_r = pad
    return maps(x[:, :, left - pad_l : -(right - pad_r) or None])  # constant offsets: any length exports


def _midend(m: musicnn.MidEnd, maps: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> list[torch.Tensor]:
    """The mid-end without padding over front-end ``maps`` (its first convolution's ``weight`` and ``bias`` given)."""
    h1 = m.bns[0](torch.relu(conv1d(maps, weight, bias)))
    h2 = m.bns[1](torch.relu(conv1d(h1, m.convs[1].weight, m.convs[1].bias))) + h1[:, :, 3:-3]
    h3 = m.bns[2](torch.relu(conv1d(h2, m.convs[2].weight, m.convs[2].bias))) + h2[:, :, 3:-3]
    return [h1[:, :, 6:-6], h2[:, :, 3:-3], h3]


class Step(nn.Module):
    """(x (1, n + LEFT + RIGHT, 96), front context (1, 2·MID, 561)) -> (front (1, n, 561), rows (1, n, 753)).

    The rows are those of the ``MID`` frames before the first new one onwards: the mid-end needs
    ``MID`` front-end frames after a frame to finish it. Every slice is a constant offset, so the
    exported graph takes any ``n``. The convolutions run without padding: the context is real audio.
    ``columns``: only those row columns (a shipped encoder leaves out the constant ones)."""

    def __init__(self, backbone: musicnn.Musicnn, columns: np.ndarray | None = None):
        super().__init__()
        self.backbone = backbone
        self.columns = None if columns is None else torch.from_numpy(np.asarray(columns, np.int64))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.backbone
        h = b.input_bn(x.unsqueeze(1))
        front = torch.cat([_valid(block.maps, block.pad, h, LEFT, RIGHT) for block in b.frontend], dim=1)  # (1, 561, n)
        maps = torch.cat([context.transpose(1, 2), front], dim=2)  # (1, 561, n + 2·MID)
        first = b.midend.convs[0]
        rows = torch.cat([maps[:, :, MID:-MID], *_midend(b.midend, maps, first.weight, first.bias)], dim=1)
        if self.columns is not None:
            rows = rows.index_select(1, self.columns)
        return front.transpose(1, 2), rows.transpose(1, 2)


class FoldedStep(nn.Module):
    """``Step`` of a pruned backbone as shipped: only the varying rows, and only the varying front maps as state.

    A pruned filter's map is a constant, so its share of the mid-end's first convolution is too, except where
    the context is the silence before the stream (zeros in the state, not the constant). One more state
    channel says which frames are real (1; 0 before the stream), and its weights are the constants' share:
    the same rows as ``Step`` with the varying columns, with a ninth of the state and of that convolution.
    (B, n + LEFT + RIGHT, 96), (B, 2·MID, kept + 1) -> (B, n, kept + 1), (B, n, width); any batch."""

    def __init__(self, backbone: musicnn.Musicnn):
        super().__init__()
        self.backbone = backbone
        columns, constants = varying_columns(backbone)
        n_front = sum(block.channels for block in backbone.frontend)
        fixed = np.flatnonzero(~np.isnan(constants[:n_front]))
        first = backbone.midend.convs[0]
        with torch.no_grad():
            real = (first.weight[:, fixed] * torch.from_numpy(constants[fixed].astype(np.float32))[:, None]).sum(1)
            weight = torch.cat([first.weight[:, columns[columns < n_front]], real[:, None]], dim=1)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", first.bias.detach().clone())

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.backbone
        h = b.input_bn(x.unsqueeze(1))
        front = torch.cat([_valid(kept_maps(block), block.pad, h, LEFT, RIGHT) for block in b.frontend], dim=1)
        front = torch.cat([front, torch.ones_like(front[:, :1])], dim=1)  # (B, kept + 1, n): these frames are real
        maps = torch.cat([context.transpose(1, 2), front], dim=2)
        rows = torch.cat([maps[:, :-1, MID:-MID], *_midend(b.midend, maps, self.weight, self.bias)], dim=1)
        return front.transpose(1, 2), rows.transpose(1, 2)


def kept_maps(block: musicnn.Timbral) -> Callable[[torch.Tensor], torch.Tensor]:
    """A block's maps that vary: a pruned block's kept filters, every filter of another."""
    return block.kept_maps if isinstance(block, Pruned) else block.maps


def pruning(backbone: musicnn.Musicnn) -> list[dict]:
    """Per front-end block, the filters a folded step computes and the others' constants: what its graph carries
    for ``base.py`` (the graph itself no longer holds the constant maps)."""
    out = []
    for block in backbone.frontend:
        if isinstance(block, Pruned):
            out.append({"kept": block.kept.tolist(), "dropped": block.dropped.tolist(),
                        "constant": block.constant.tolist()})  # fmt: skip
        else:
            out.append({"kept": list(range(block.channels)), "dropped": [], "constant": []})
    return out


def pruning_of(path: Path) -> list[dict] | None:
    """A folded graph's ``pruning`` (from its metadata); None for a graph that is not folded."""
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[PRUNING_KEY]) if PRUNING_KEY in props else None


class StreamModel(nn.Module):
    """A window's feature rows (B, frames, 753) -> genre logits: musicnn's pooling and back end, the head.

    ``backbone``'s front and mid-end are what the bundle's encoder runs (``Step``); ``spec`` says how, and
    ``columns`` which row columns it passes on (None: all)."""

    def __init__(
        self, backbone: musicnn.Musicnn, head: nn.Linear, spec: EncoderSpec, columns: np.ndarray | None = None
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.spec = spec
        self.columns = columns

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        pooled = torch.stack([rows.amax(dim=1), rows.mean(dim=1)], dim=2).flatten(1)
        return self.head(self.backbone.backend(pooled))

    def narrowed(self) -> StreamModel:
        """The same model on the rows' varying columns only: a pruned filter's map is a constant, so its
        pooled max and mean are too, and their share of the dense layer folds into its bias. The shipped
        form: a stream's frame ring holds a third of the values, the window model pools a third."""
        columns, constants = varying_columns(self.backbone)
        if self.columns is not None or len(columns) == len(constants):
            return self  # narrowed already, or nothing to leave out
        keep = np.stack([2 * columns, 2 * columns + 1], axis=1).ravel()  # pooled: max and mean interleaved
        fixed = np.setdiff1d(np.arange(2 * len(constants)), keep)
        b = copy.deepcopy(self.backbone).eval()
        bn, dense = b.pool_bn, b.dense
        with torch.no_grad():
            value = torch.from_numpy(np.repeat(constants, 2)[fixed].astype(np.float32))
            gain = bn.weight[fixed] / torch.sqrt(bn.running_var[fixed] + bn.eps)
            scaled = (value - bn.running_mean[fixed]) * gain + bn.bias[fixed]  # the pool batch norm of the constants
            narrow_bn = nn.BatchNorm1d(len(keep), eps=bn.eps).eval()
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(narrow_bn, name).copy_(getattr(bn, name)[keep])
            narrow_dense = nn.Linear(len(keep), dense.out_features)
            narrow_dense.weight.copy_(dense.weight[:, keep])
            narrow_dense.bias.copy_(dense.bias + dense.weight[:, fixed] @ scaled)
        b.pool_bn, b.dense = narrow_bn, narrow_dense
        n_front = sum(block.channels for block in b.frontend)
        spec = replace(self.spec, width=len(columns), front_width=int((columns < n_front).sum()) + 1)  # FoldedStep's
        return StreamModel(b, self.head, spec, columns).eval()


def encoder_spec(backbone: musicnn.Musicnn, reference: float) -> EncoderSpec:
    """The encoder of ``backbone`` with every row column, its frames put at ``reference`` mean power."""
    front = sum(b.channels for b in backbone.frontend)
    return EncoderSpec(left=LEFT, right=RIGHT, mid=MID, front_width=front,
                       width=front + 3 * backbone.midend.convs[0].out_channels, reference_power=reference,
                       level_frames=WINDOW_FRAMES)  # fmt: skip


def step_module(backbone: musicnn.Musicnn, narrow: bool) -> nn.Module:
    """The encoder step a bundle runs: all rows (``Step``), or a narrowed model's (``FoldedStep``)."""
    return (FoldedStep(backbone) if narrow else Step(backbone)).eval()


def export_step(backbone: musicnn.Musicnn, path: Path, frames: int = HOP_FRAMES, narrow: bool = False) -> float:
    """Write the step graph (``step_module``) to ``path``, with a batch axis (one call steps many streams); returns
    the largest |torch - ONNX Runtime| over steps of 1 and ``frames`` frames of 1 and 3 streams, relative to the
    largest value (rows reach tens). A folded graph carries its ``pruning`` in its metadata."""
    step = step_module(backbone, narrow)
    n_mels = musicnn.PARAMS.n_mels
    front = step.weight.shape[1] if narrow else sum(b.channels for b in backbone.frontend)
    axes = {"x": {0: "batch", 1: "frames"}, "context": {0: "batch"}, "front": {0: "batch", 1: "new"},
            "rows": {0: "batch", 1: "new"}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(step, (torch.zeros(2, frames + LEFT + RIGHT, n_mels), torch.zeros(2, 2 * MID, front)),
                          str(path), input_names=["x", "context"], output_names=["front", "rows"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)  # fmt: skip
    if narrow:
        graph = onnx.load(str(path))
        onnx.helper.set_model_props(graph, {PRUNING_KEY: json.dumps(pruning(backbone))})
        onnx.save(graph, str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, batch in ((1, 1), (frames, 1), (frames, 3)):
        x = rng.uniform(0, 3, (batch, n + LEFT + RIGHT, n_mels)).astype(np.float32)
        ctx = rng.uniform(0, 1, (batch, 2 * MID, front)).astype(np.float32)
        with torch.no_grad():
            ref = step(torch.from_numpy(x), torch.from_numpy(ctx))
        got = session.run(None, {"x": x, "context": ctx})
        worst = max(worst, *(float(np.abs(g - r.numpy()).max() / max(1.0, np.abs(r.numpy()).max()))
                             for g, r in zip(got, ref, strict=True)))  # fmt: skip
    if worst > PARITY_RTOL:
        raise RuntimeError(f"encoder ONNX parity check failed: max |diff| / max |value| {worst:.2e} > {PARITY_RTOL:g}")
    return worst


def step_ms(path: Path, frames: int = HOP_FRAMES, seconds: float = 2.0, batch: int = 1) -> float:
    """Milliseconds of one encoder call stepping ``batch`` streams ``frames`` new frames, ONNX Runtime on one thread."""
    session = cpu_session(path)
    feed = {"x": np.zeros((batch, frames + LEFT + RIGHT, musicnn.PARAMS.n_mels), np.float32),
            "context": np.zeros([batch, 2 * MID, session.get_inputs()[1].shape[2]], np.float32)}  # fmt: skip
    return ms_per_run(session, feed, seconds)


class Encoder:
    """A backbone's streaming encoder, exported once and run through the runtime's own ``StreamEncoder``."""

    def __init__(self, backbone: musicnn.Musicnn, spec: EncoderSpec, narrow: bool = False):
        self.spec = spec
        with tempfile.TemporaryDirectory() as d:
            export_step(backbone, Path(d) / "encoder.onnx", narrow=narrow)
            self._session = cpu_session(Path(d) / "encoder.onnx")

    def rows(self, mel: np.ndarray) -> np.ndarray:
        """A whole track's feature rows, as a stream of it gets them."""
        return StreamEncoder(self.spec, self._session, mel.shape[1]).whole(mel)[0]


def pooled(rows: np.ndarray) -> np.ndarray:
    """The back end's input of every window (1.5 s hop) of a track's rows: max and mean, interleaved as musicnn's."""
    w = transfer.patches(rows, WINDOW_FRAMES, EVAL_HOP_FRAMES)
    return np.stack([w.max(axis=1), w.mean(axis=1)], axis=2).reshape(len(w), -1).astype(np.float32)


def track_features(backbone: musicnn.Musicnn, spec: EncoderSpec, tracks: list[Track], mels: list[np.ndarray],
                   cache: Path | None, log=print, kind: str = "pooled",
                   variant: tuple[str, Callable[[int], np.ndarray]] | None = None) -> list[np.ndarray]:  # fmt: skip
    """Per track, cached by track, backbone and normalisation: the pooled windows of its streamed rows
    (``kind`` "pooled"), or the lowest and highest value of every row column (``kind`` "range", (2, width)).
    ``variant``: a name and the log-mel of track ``i`` to encode instead of ``mels[i]`` (an augmented copy)."""
    encoder = Encoder(backbone, spec)
    weights = sum(v.double().sum().item() for v in backbone.state_dict().values())
    name, mel_of = variant or ("", mels.__getitem__)
    tag = f"stream-{kind}|{spec.reference_power:.6g}|{spec.level_frames}|{weights}" + (f"|{name}" if name else "")

    def compute(i: int) -> np.ndarray:
        rows = encoder.rows(mel_of(i))
        return pooled(rows) if kind == "pooled" else np.stack([rows.min(axis=0), rows.max(axis=0)])

    return transfer.per_track(tracks, mels, cache, tag, compute, log, f"streamed {kind} {name}".rstrip())


@torch.no_grad()
def predict(model: StreamModel, mels: list[np.ndarray]) -> list[np.ndarray]:
    """Window probabilities (1.5 s hop) of every track: streamed rows, then the window model."""
    model.eval()
    encoder = Encoder(model.backbone, model.spec, model.columns is not None)
    out = []
    for mel in mels:
        x = torch.from_numpy(transfer.patches(encoder.rows(mel), WINDOW_FRAMES, EVAL_HOP_FRAMES))
        out.append(torch.cat([torch.softmax(model(x[j : j + 64]), dim=1) for j in range(0, len(x), 64)]).numpy())
    return out
