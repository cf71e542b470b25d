"""Pruning musicnn's front end: most of its filters never fire on music.

musicnn applies ReLU before batch norm and max-pools over frequency, so a filter whose ReLU output is
zero everywhere has a constant map (the batch norm's offset). Over GTZAN's 451 train + valid tracks
only 64 of the 561 front-end filters ever vary; computing the others was most of the encoder's work.
A pruned copy computes the varying ones and holds the rest at their constant: on the music it was
judged on, the same rows.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from . import musicnn


class Pruned(musicnn.Timbral):
    """A front-end block keeping only some of its filters; the others' maps are a constant."""

    def __init__(self, block: musicnn.Timbral, keep: np.ndarray, constants: np.ndarray):
        time, bands = block.conv.kernel_size
        super().__init__(len(keep), bands, block.pad, time)
        self.conv.weight.data.copy_(block.conv.weight.data[keep])
        self.conv.bias.data.copy_(block.conv.bias.data[keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(self.bn, name).data.copy_(getattr(block.bn, name).data[keep])
        self.kept = np.asarray(keep)  # the filters it computes, in the order it computes them
        dropped = np.setdiff1d(np.arange(block.channels), keep)
        self.register_buffer("dropped", torch.from_numpy(dropped))
        self.register_buffer("constant", torch.from_numpy(constants[dropped].astype(np.float32)))
        # the kept maps then the constant ones, back in the original channel order
        self.register_buffer("order", torch.from_numpy(np.argsort(np.concatenate([keep, dropped]))))

    @property
    def channels(self) -> int:
        return len(self.order)

    def kept_maps(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, F) -> (B, kept, T')
        return super().maps(x)

    def maps(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, F) -> (B, C, T'), C as before pruning
        kept = self.kept_maps(x)
        constant = torch.zeros_like(kept[:, :1]) + self.constant[None, :, None]  # no shape arithmetic: exports
        return torch.cat([kept, constant], dim=1).index_select(1, self.order)


def prune(backbone: musicnn.Musicnn, ranges: list[np.ndarray], tolerance: float = 1e-4) -> musicnn.Musicnn:
    """A copy of ``backbone`` without the front-end filters whose maps stay constant (within ``tolerance``) over
    real music, given each track's row ``ranges`` (``track_features`` "range"): on that music the copy computes
    the same rows, at a fraction of the cost."""
    lo = np.min([r[0] for r in ranges], axis=0)
    spread = np.max([r[1] for r in ranges], axis=0) - lo
    pruned = copy.deepcopy(backbone)
    start = 0
    for i, block in enumerate(backbone.frontend):
        n = block.channels
        live = np.flatnonzero(spread[start : start + n] > tolerance)
        pruned.frontend[i] = Pruned(block, live if len(live) else np.argmax(spread[start : start + n])[None],
                                    lo[start : start + n])  # fmt: skip
        start += n
    return pruned.eval()


def kept(backbone: musicnn.Musicnn) -> str:
    """What pruning kept, for cards and logs: "61/204, 60/204, …" filters per front-end block."""
    return ", ".join(f"{len(b.conv.weight)}/{b.channels}" for b in backbone.frontend)


def varying_columns(backbone: musicnn.Musicnn) -> tuple[np.ndarray, np.ndarray]:
    """The row columns that vary (every front-end map a pruned block kept, every mid-end map), and every
    column's constant (NaN where it varies)."""
    columns, constants, start = [], [], 0
    for block in backbone.frontend:
        value = np.full(block.channels, np.nan)
        if isinstance(block, Pruned):
            value[block.dropped.numpy()] = block.constant.numpy()
        columns.append(start + np.flatnonzero(np.isnan(value)))
        constants.append(value)
        start += block.channels
    mid = 3 * backbone.midend.convs[0].out_channels
    return np.concatenate([*columns, start + np.arange(mid)]), np.concatenate([*constants, np.full(mid, np.nan)])
