"""Pruning musicnn's front end: most of its filters never fire on music.

musicnn applies ReLU before batch norm and max-pools over frequency, so a filter whose ReLU output is
zero everywhere has a constant map (the batch norm's offset). Over GTZAN's 451 train + valid tracks
only 64 of the 561 front-end filters ever vary; computing the others was most of the encoder's work.
A pruned copy computes the varying ones and holds the rest at their constant: on the music it was
judged on, the same rows. ``slim`` goes further: it drops varying filters too, those whose maps the
others stand in for best (the mid-end's first convolution refitted to the rest by least squares), for
a cheaper encoder whose rows a back end is then trained on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from . import musicnn

RIDGE = 1e-9  # on the maps' covariance in ``slim``'s least squares: a map that copies another leaves it invertible


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


@dataclass
class Moments:
    """Sums over real music's frames of the kept front-end maps at the mid-end's seven lags (``z``) and of the
    mid-end's first convolution's outputs scaled by its batch norm's gain (``y``): what refitting that
    convolution to fewer maps needs (``slim``), and every front-end map's mean (a dropped map's constant)."""

    columns: np.ndarray  # the front-end maps (row columns) ``z`` holds, the kept filters'
    n: int = 0
    frames: int = 0
    z: np.ndarray | None = None
    y: np.ndarray | None = None
    zz: np.ndarray | None = None
    zy: np.ndarray | None = None
    yy: np.ndarray | None = None
    front: np.ndarray | None = None

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mz, my = self.z / self.n, self.y / self.n
        return (self.zz / self.n - np.outer(mz, mz), self.zy / self.n - np.outer(mz, my),
                self.yy / self.n - np.outer(my, my))  # fmt: skip


def moments(backbone: musicnn.Musicnn, fronts: Iterable[np.ndarray]) -> Moments:
    """``Moments`` of a pruned ``backbone`` over tracks' front-end maps (each (frames, 561): a stream's rows'
    front columns)."""
    first = backbone.midend.convs[0]
    w, b = first.weight.detach().double().numpy(), first.bias.detach().double().numpy()  # (64, 561, 7), (64,)
    gain = _gain(backbone)
    columns = np.concatenate([start + block.kept for start, block in zip(_starts(backbone), backbone.frontend,
                                                                          strict=True)])  # fmt: skip
    m, lags = Moments(columns), w.shape[2]
    for front in fronts:
        x = np.asarray(front, np.float64)
        t = len(x) - lags + 1
        y = (sum(x[k : k + t] @ w[:, :, k].T for k in range(lags)) + b) * gain
        z = np.concatenate([x[k : k + t, columns] for k in range(lags)], axis=1)  # lag-major
        parts = {"z": z.sum(0), "y": y.sum(0), "zz": z.T @ z, "zy": z.T @ y, "yy": y.T @ y, "front": x.sum(0)}
        for name, value in parts.items():
            setattr(m, name, value if getattr(m, name) is None else getattr(m, name) + value)
        m.n, m.frames = m.n + t, m.frames + len(x)
    return m


def slim(backbone: musicnn.Musicnn, full: musicnn.Musicnn, m: Moments, cost: float) -> musicnn.Musicnn:
    """A copy of the pruned ``backbone`` (of ``full``, unpruned) computing at most ``cost`` of its front end's
    multiply-adds: one filter at a time, the one whose map the others stand in for best per multiply-add it
    costs goes, its map held at its mean over ``m``'s music, and the mid-end's first convolution is fitted again
    by least squares to reproduce its outputs (weighted by its batch norm's gain) from the maps that are left.
    Every block keeps a filter. Unlike ``prune`` it changes the rows a little (the mid-end's, and the dropped
    maps'), so a back end is trained on the slimmed encoder's rows."""
    czz, czy, cyy = m.covariances()
    kept = [(b, int(c)) for b, block in enumerate(backbone.frontend) for c in block.kept]
    k, lags = len(kept), len(czz) // len(kept)
    price = np.array([filter_cost(full.frontend[b]) for b, _ in kept], float)

    def lagged(chosen: list[int]) -> np.ndarray:
        return np.concatenate([lag * k + np.array(chosen) for lag in range(lags)])

    def fitted(chosen: list[int]) -> np.ndarray:  # the first convolution's least-squares weights on those maps
        j = lagged(chosen)
        return np.linalg.solve(czz[np.ix_(j, j)] + RIDGE * np.eye(len(j)), czy[j])

    def residual(chosen: list[int]) -> float:
        return float(np.trace(cyy) - np.trace(czy[lagged(chosen)].T @ fitted(chosen)))

    chosen = list(range(k))
    while price[chosen].sum() > cost * price.sum():
        droppable = [c for c in chosen if sum(kept[s][0] == kept[c][0] for s in chosen) > 1]
        if not droppable:
            break
        chosen.remove(min(droppable, key=lambda c: residual([s for s in chosen if s != c]) / price[c]))
    first = backbone.midend.convs[0]
    refit = fitted(chosen) / _gain(backbone)[None]  # (lags · chosen, 64), undone the gain
    old = first.weight.detach().double().numpy()
    weight, mean = old.copy(), m.front / m.frames
    columns = m.columns[chosen]
    for lag in range(lags):
        weight[:, columns, lag] = refit[lag * len(chosen) : (lag + 1) * len(chosen)].T
    bias = first.bias.detach().double().numpy() + (old - weight)[:, columns].sum(2) @ mean[columns]  # same mean output
    out = copy.deepcopy(full)
    for b, block in enumerate(backbone.frontend):
        constant = np.zeros(block.channels)
        constant[block.dropped.numpy()] = block.constant.numpy()
        keep = [c for s, (bb, c) in enumerate(kept) if bb == b and s in chosen]
        gone = [c for s, (bb, c) in enumerate(kept) if bb == b and s not in chosen]
        constant[gone] = mean[_starts(backbone)[b] + np.array(gone, int)]
        out.frontend[b] = Pruned(full.frontend[b], np.array(keep), constant)
    out.midend.convs[0].weight.data.copy_(torch.from_numpy(weight.astype(np.float32)))
    out.midend.convs[0].bias.data.copy_(torch.from_numpy(bias.astype(np.float32)))
    return out.eval()


def filter_cost(block: musicnn.Timbral) -> int:
    """One filter's multiply-adds per frame: its kernel at every position across the mel bands (the direct
    convolution's count, which ``--front-cost`` budgets; the graph computes a wide filter's in fewer,
    ``musicnn.spectral_filter``)."""
    time, bands = block.conv.kernel_size
    return time * bands * (musicnn.PARAMS.n_mels - bands + 1)


def front_cost(backbone: musicnn.Musicnn) -> int:
    """The front end's multiply-adds per frame, over the filters it computes."""
    return sum(filter_cost(block) * len(block.conv.weight) for block in backbone.frontend)


def _gain(backbone: musicnn.Musicnn) -> np.ndarray:
    """The scale of the mid-end's first batch norm: how much each of that convolution's outputs counts after it."""
    bn = backbone.midend.bns[0]
    return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()


def _starts(backbone: musicnn.Musicnn) -> list[int]:
    """Each front-end block's first row column."""
    return list(np.cumsum([0] + [block.channels for block in backbone.frontend[:-1]]))
