"""Model families by name. Every model maps log-mel windows (batch, frames, n_mels) to logits."""

from __future__ import annotations

import torch
from torch import nn


class Standardize(nn.Module):
    """Fixed dB -> unit scale from training-set statistics: the same for every window, unlike
    per-window normalisation, which would make a window's features depend on its content."""

    def __init__(self, mean: float = -20.0, std: float = 20.0):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(pool)
    )


class CNN(nn.Module):
    """A small 2-D CNN: about 20 MFLOPs for a 3 s window, so one core runs hundreds of windows a
    second. Global average+max pooling over time lets it take any window length of 1–3 s."""

    def __init__(self, n_mels: int, n_classes: int, width: int = 16, dropout: float = 0.3):
        super().__init__()
        w = width
        self.norm = Standardize()
        self.features = nn.Sequential(
            conv_block(1, w, (4, 4)),
            conv_block(w, 2 * w, (2, 2)),
            conv_block(2 * w, 4 * w, (2, 2)),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.norm(x).transpose(1, 2).unsqueeze(1))  # (B, C, mels, time)
        h = h.flatten(2)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


FAMILIES = {"cnn": CNN}


def build(family: str, n_mels: int, n_classes: int) -> nn.Module:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[family](n_mels, n_classes)
