"""Fine-tuning the streaming encoder's mid-end on its cached front-end maps.

The back-end recipes (``thin``) train on the pooled rows of a frozen encoder; here the mid-end's three
convolutions learn genre too. What stays frozen is the front end, so each track's kept front-end maps
are recorded once from the shipped encoder's own steps (``FoldedStep``, through ``rtgenre.encoder``),
and a patch is the maps a window's rows need: its frames and ``MID`` each side, the flag that says
which frames are real (0 in the silence before the stream), and each row's weight in the window (a 2-3 s
clip is looped to a window, as the runtime does). ``StreamPool`` turns such patches into the back end's
pooled input exactly as the encoder and window model do, so what is trained is what the bundle runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtgenre.encoder import EncoderSpec, StreamEncoder

from . import musicnn, stream, transfer
from .data import Track
from .prune import varying_columns

MID = stream.MID
WINDOW = stream.WINDOW_FRAMES


class _Recording:
    """An encoder session that keeps every step's front-end maps (the new frames', in order)."""

    def __init__(self, session):
        self.session = session
        self.fronts: list[np.ndarray] = []

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, names, feed: dict) -> list[np.ndarray]:
        front, rows = self.session.run(names, feed)
        self.fronts.append(front[0])
        return [front, rows]


def narrow_spec(backbone: musicnn.Musicnn, spec: EncoderSpec) -> EncoderSpec:
    """``spec`` of the folded step: only the varying rows, the kept front maps and the real-frame flag as state."""
    columns, _ = varying_columns(backbone)
    n_front = sum(block.channels for block in backbone.frontend)
    return replace(spec, width=len(columns), front_width=int((columns < n_front).sum()) + 1)


def fronts(encoder: stream.Encoder, mel: np.ndarray) -> np.ndarray:
    """A whole track's kept front-end maps and real-frame flag as a stream of it computes them: (frames + MID,
    kept + 1), the last ``MID`` those of the silence after it that its last rows see."""
    recording = _Recording(encoder._session)
    StreamEncoder(encoder.spec, recording, mel.shape[1]).whole(mel)
    return np.concatenate(recording.fronts)[: len(mel) + MID]


def patches(maps: np.ndarray, hop: int = stream.EVAL_HOP_FRAMES) -> np.ndarray:
    """The windows ``transfer.patches`` cuts from a track's rows, as the maps those rows need: (windows,
    WINDOW + 2·MID, kept + 2), the last channel each row's weight in its window (0 where there is none)."""
    frames = len(maps) - MID
    padded = np.concatenate([np.zeros((MID, maps.shape[1]), np.float32), maps])  # the silence before the stream
    if frames <= WINDOW:  # a clip: its rows looped to a window
        weights = np.bincount(np.arange(WINDOW) % frames, minlength=WINDOW).astype(np.float32)
        starts = [0]
        padded = np.concatenate([padded, np.zeros((WINDOW - frames, maps.shape[1]), np.float32)])
    else:
        weights = np.ones(WINDOW, np.float32)
        starts = range(0, frames - WINDOW + 1, hop)
    column = np.concatenate([np.zeros(MID), weights, np.zeros(MID)]).astype(np.float32)[:, None]
    return np.stack([np.concatenate([padded[s : s + WINDOW + 2 * MID], column], axis=1) for s in starts])


def track_patches(backbone: musicnn.Musicnn, spec: EncoderSpec, tracks: list[Track], mels: list[np.ndarray],
                  cache: Path | None, log=print,
                  variant: tuple[str, Callable[[int], np.ndarray]] | None = None) -> list[np.ndarray]:  # fmt: skip
    """Per track, cached by track, backbone and normalisation: its window ``patches``; ``variant`` as in
    ``stream.track_features`` (an augmented copy's log-mel instead of ``mels[i]``)."""
    encoder = stream.Encoder(backbone, narrow_spec(backbone, spec), narrow=True)
    weights = sum(v.double().sum().item() for v in backbone.state_dict().values())
    name, mel_of = variant or ("", mels.__getitem__)
    tag = f"stream-patches|{spec.reference_power:.6g}|{spec.level_frames}|{weights}" + (f"|{name}" if name else "")
    return transfer.per_track(tracks, mels, cache, tag, lambda i: patches(fronts(encoder, mel_of(i))), log,
                              f"streamed mid-end patches {name}".rstrip())  # fmt: skip


class StreamPool(nn.Module):
    """Patches (B, WINDOW + 2·MID, kept + 2) -> the back end's pooled input (B, 2 · 753): the folded step's rows
    (its mid-end's first convolution derived from ``backbone``'s at every call, so training it trains what
    ``FoldedStep`` exports), max and mean over each window's rows by their weights, the pruned maps' constants."""

    def __init__(self, backbone: musicnn.Musicnn):
        super().__init__()
        self.backbone = backbone  # not a copy: its mid-end is what trains
        columns, constants = varying_columns(backbone)
        n_front = sum(block.channels for block in backbone.frontend)
        fixed = np.flatnonzero(~np.isnan(constants[:n_front]))
        self.register_buffer("kept", torch.from_numpy(columns[columns < n_front]))
        self.register_buffer("fixed", torch.from_numpy(fixed))
        self.register_buffer("fixed_value", torch.from_numpy(constants[fixed].astype(np.float32)))
        self.register_buffer("slots", torch.from_numpy(np.stack([2 * columns, 2 * columns + 1], axis=1).ravel()))
        self.register_buffer(
            "constant_pool", torch.from_numpy(np.nan_to_num(np.repeat(constants, 2)).astype(np.float32))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.backbone.midend
        first = m.convs[0]
        real = (first.weight[:, self.fixed] * self.fixed_value[:, None]).sum(1)
        weight = torch.cat([first.weight[:, self.kept], real[:, None]], dim=1)
        maps, w = x[:, :, :-1].transpose(1, 2), x[:, MID:-MID, -1]
        rows = torch.cat([maps[:, :-1, MID:-MID], *stream._midend(m, maps, weight, first.bias)], dim=1)
        top = rows.masked_fill(w[:, None] == 0, float("-inf")).amax(dim=2)
        mean = (rows * w[:, None]).sum(dim=2) / w.sum(dim=1, keepdim=True)
        pooled = torch.stack([top, mean], dim=2).flatten(1)
        return self.constant_pool.expand(len(x), -1).index_copy(1, self.slots, pooled)
