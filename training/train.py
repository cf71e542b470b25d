"""Training loop: class-balanced sampling of random windows, cheap augmentation, fixed epochs.

No early stopping on a held-out fold: the number of epochs is a fixed hyper-parameter, so the
cross-validation figures are not tuned to the folds they report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rtgenre.frontend import fit_window

from .data import GENRES
from .models import build


@dataclass(frozen=True)
class TrainConfig:
    family: str = "cnn"
    window_s: float = 3.0
    epochs: int = 30
    windows_per_epoch: int = 2048
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    gain_db: float = 6.0  # random gain: in fixed-reference dB it is an additive shift
    freq_masks: int = 2
    freq_mask_max: int = 12
    time_masks: int = 2
    time_mask_max: int = 20
    mixup_alpha: float = 0.2
    seed: int = 0
    threads: int = 2


@dataclass
class Example:
    mel: np.ndarray  # (frames, n_mels) of the whole track
    label: int


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weight per track so that every genre is drawn equally often."""
    counts = np.bincount(labels, minlength=len(GENRES)).astype(float)
    w = 1.0 / counts[labels]
    return w / w.sum()


def random_window(mel: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(mel) <= n:
        return fit_window(np.roll(mel, -int(rng.integers(len(mel))), axis=0), n)
    start = int(rng.integers(len(mel) - n + 1))
    return mel[start : start + n]


def augment(x: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    x = x + rng.uniform(-cfg.gain_db, cfg.gain_db)
    floor = x.min()
    for _ in range(cfg.freq_masks):
        w = int(rng.integers(0, cfg.freq_mask_max + 1))
        f = int(rng.integers(0, x.shape[1] - w + 1))
        x[:, f : f + w] = floor
    for _ in range(cfg.time_masks):
        w = int(rng.integers(0, cfg.time_mask_max + 1))
        t = int(rng.integers(0, x.shape[0] - w + 1))
        x[t : t + w, :] = floor
    return x


def train(examples: list[Example], cfg: TrainConfig, n_frames: int, log=print) -> nn.Module:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    n_mels = examples[0].mel.shape[1]
    model = build(cfg.family, n_mels, len(GENRES))
    allframes = np.concatenate([e.mel for e in examples])
    model.norm.mean.fill_(float(allframes.mean()))
    model.norm.std.fill_(float(allframes.std()))
    labels = np.array([e.label for e in examples])
    weights = balanced_weights(labels)
    steps = max(1, cfg.windows_per_epoch // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    eye = np.eye(len(GENRES), dtype=np.float32)
    for epoch in range(cfg.epochs):
        model.train()
        t0, total = time.time(), 0.0
        for _ in range(steps):
            pick = rng.choice(len(examples), cfg.batch_size, p=weights)
            x = np.stack([augment(random_window(examples[i].mel, n_frames, rng), cfg, rng) for i in pick])
            y = eye[labels[pick]]
            if cfg.mixup_alpha > 0:
                lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, size=(len(x), 1)).astype(np.float32)
                perm = rng.permutation(len(x))
                x = lam[:, :, None] * x + (1 - lam[:, :, None]) * x[perm]
                y = lam * y + (1 - lam) * y[perm]
            logits = model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
            loss = torch.sum(-torch.from_numpy(y) * torch.log_softmax(logits, dim=1), dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        log(f"epoch {epoch + 1}/{cfg.epochs} loss {total / steps:.3f} ({time.time() - t0:.1f} s)")
    model.eval()
    return model


def track_windows(mel: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """The windows the runtime would classify in one track (a short track: one looped window)."""
    if len(mel) <= n_frames:
        return fit_window(mel, n_frames)[None]
    starts = range(0, len(mel) - n_frames + 1, hop)
    return np.stack([mel[s : s + n_frames] for s in starts])


@torch.no_grad()
def predict_tracks(model: nn.Module, mels: list[np.ndarray], n_frames: int, hop: int) -> list[np.ndarray]:
    """Window probabilities (windows, classes) for every track."""
    model.eval()
    out = []
    for mel in mels:
        x = torch.from_numpy(track_windows(mel, n_frames, hop))
        out.append(torch.softmax(model(x), dim=1).numpy())
    return out
