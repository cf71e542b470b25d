"""musicnn's VGG-like taggers (``MSD_vgg``, ``MTT_vgg`` in the musicnn wheel) in torch: a second pretrained view.

Five 3×3 convolutions of 128 filters (ReLU, batch norm, max pooling) over a 3 s patch of musicnn's
log-compressed mel, trained on the same tags as musicnn but with square filters instead of musicnn's
timbral and temporal ones, so it may hear what musicnn's miss. The port follows the TensorFlow graph
(``musicnn/models.py`` ``vgg``): "same" convolutions, "valid" pooling ((4, 1) then (2, 2) strides 2,
then (4, 4)), batch-norm epsilon 1e-3, the dense layer on the NHWC-flattened last pool. A patch's
feature is the flattened last pool (256) with the mean and max over time and frequency of the fourth
(256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import musicnn, transfer
from .data import Track

FILTERS = 128
POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
NETS = ("MSD_vgg", "MTT_vgg")
BATCH = 16


class Vgg(nn.Module):
    """log-compressed mel patches (B, 187, 96) -> (tag logits (B, 50), feature (B, 512))."""

    def __init__(self, classes: int = 50):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=musicnn.EPS)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else FILTERS, FILTERS, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(FILTERS, eps=musicnn.EPS) for _ in range(5)])
        self.pools = nn.ModuleList([nn.MaxPool2d(size, stride) for size, stride in POOLS])
        self.dense = nn.Linear(2 * FILTERS, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.input_bn(x.unsqueeze(1))  # (B, 1, time, mel), TF's NHWC with the channel first
        for conv, bn, pool in zip(self.convs, self.bns, self.pools, strict=True):
            fourth = h
            h = pool(bn(torch.relu(conv(h))))
        flat = h.permute(0, 2, 3, 1).flatten(1)  # TF flattens (time, mel, channel)
        summary = torch.cat([fourth.mean(dim=(2, 3)), fourth.amax(dim=(2, 3))], dim=1)
        return self.dense(flat), torch.cat([flat, summary], dim=1)


def from_checkpoint(v: dict[str, np.ndarray]) -> Vgg:
    """The torch network of a VGG checkpoint's variables (TF names: ``1CNN``…``5CNN``, ``batch_normalization[_k]``)."""
    model = Vgg(v["dense/bias"].shape[0])
    with torch.no_grad():
        for i, conv in enumerate(model.convs):
            conv.weight.copy_(torch.from_numpy(v[f"{i + 1}CNN/kernel"].transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(v[f"{i + 1}CNN/bias"]))
        for k, bn in enumerate([model.input_bn, *model.bns]):
            name = "batch_normalization" + (f"_{k}" if k else "")
            for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                              ("running_var", "moving_variance")):  # fmt: skip
                getattr(bn, attr).copy_(torch.from_numpy(v[f"{name}/{key}"]))
        model.dense.weight.copy_(torch.from_numpy(v["dense/kernel"].T.copy()))
        model.dense.bias.copy_(torch.from_numpy(v["dense/bias"]))
    return model.eval()


def compressed(db: np.ndarray) -> np.ndarray:
    """musicnn's input from dB mel power: log10(1 + 10000 · power)."""
    return np.log10(1.0 + 10000.0 * np.power(10.0, db.astype(np.float64) / 10.0)).astype(np.float32)


@torch.no_grad()
def track_features(wheel: Path, net: str, tracks: list[Track], mels: list[np.ndarray], cache: Path | None,
                   log=print) -> list[np.ndarray]:  # fmt: skip
    """Per track, cached: the feature of every 3 s patch at the 1.5 s hop the pooled musicnn windows use."""
    model = from_checkpoint(musicnn.read_wheel(wheel, net))
    n, hop = transfer.PARAMS.frames(transfer.WINDOW_S), transfer.PARAMS.frames(transfer.EVAL_HOP_S)

    def compute(i: int) -> np.ndarray:
        x = torch.from_numpy(transfer.patches(compressed(mels[i]), n, hop))
        return np.concatenate([model(x[j : j + BATCH])[1].numpy() for j in range(0, len(x), BATCH)])

    return transfer.per_track(tracks, mels, cache, f"vgg|{net}|{sum(p.sum().item() for p in model.parameters())}",
                              compute, log, f"{net} features")  # fmt: skip
