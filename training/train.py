"""Training loop: class-balanced sampling of random windows, mel-domain augmentation, mixup,
optional early stopping on the track-level accuracy of an inner validation split, checkpoints to resume.

The inner validation split is carved out of the training tracks of each run, so early stopping
never looks at the tracks a cross-validation fold reports.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rtgenre.frontend import fit_window

from .augment import DEFAULT_RECIPE, RECIPES, AugmentConfig, augment, crop, mixup
from .data import GENRES
from .models import build, fit_standardize


@dataclass(frozen=True)
class TrainConfig:
    family: str = "cnn"
    window_s: float = 3.0
    epochs: int = 30  # at most; early stopping may end sooner
    patience: int = 6  # epochs without a better inner-validation track accuracy, in the second half
    windows_per_epoch: int = 2048
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    # inner validation tracks per genre, for early stopping; off by default: on GTZAN the tracks it holds out
    # cost more than stopping saves (results/recipe-parts)
    val_fraction: float = 0.0
    seed: int = 0
    threads: int = 2
    augment: AugmentConfig = RECIPES[DEFAULT_RECIPE]
    level_norm: bool = False  # refer each window to its mean power in the graph: the same verdict at any level
    distill: float = 0.0  # share of a labelled window's target taken from its teacher's soft label (Example.soft)


@dataclass
class Example:
    mel: np.ndarray  # (frames, n_mels) of the whole track
    label: int  # for an unlabelled track, its teacher's verdict (used only to balance the sampling)
    soft: np.ndarray | None = None  # a teacher's probabilities of the track's patches, one per ``soft_hop`` frames
    soft_hop: int = 1
    labelled: bool = True  # False: the target is the teacher's soft label alone

    def target(self, start: int, eye: np.ndarray, distill: float) -> np.ndarray:
        """The training target of the window starting at frame ``start``."""
        if self.soft is None:
            return eye[self.label]
        soft = self.soft[min(round(start / self.soft_hop), len(self.soft) - 1)]
        share = 1.0 if not self.labelled else distill
        return (1.0 - share) * eye[self.label] + share * soft.astype(np.float32)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weight per track so that every genre is drawn equally often."""
    counts = np.bincount(labels, minlength=len(GENRES)).astype(float)
    w = 1.0 / counts[labels]
    return w / w.sum()


def inner_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (fit, validate): ``fraction`` of each genre's tracks, at least one where a genre
    has three or more; none at all when ``fraction`` is 0."""
    rng = np.random.default_rng(seed + 7919)
    fit, val = [], []
    for g in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == g]
        rng.shuffle(idx)
        k = 0 if fraction <= 0 or len(idx) < 3 else max(1, round(fraction * len(idx)))
        val += idx[:k]
        fit += idx[k:]
    return sorted(fit), sorted(val)


def train(
    examples: list[Example], cfg: TrainConfig, n_frames: int, checkpoint: Path | None = None, log=print
) -> tuple[nn.Module, list[dict]]:
    """Train one model; returns it (at its best inner-validation epoch, or its last without an inner split) and
    the per-epoch history."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    fit_idx, val_idx = inner_split([e.label for e in examples], cfg.val_fraction, cfg.seed)
    fit = [examples[i] for i in fit_idx]
    val = [examples[i] for i in val_idx]
    # channels-last: the 2-D conv families train about 1.6x faster on CPU (no-op for the others)
    model = build(cfg.family, fit[0].mel.shape[1], len(GENRES), cfg.level_norm).to(memory_format=torch.channels_last)
    fit_standardize(model, [e.mel for e in fit])
    labels = np.array([e.label for e in fit])
    weights = balanced_weights(labels)
    steps = max(1, cfg.windows_per_epoch // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    history: list[dict] = []
    best: tuple = (-1.0, None, 0)  # (inner-val accuracy, weights, epoch index)
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history, best, start = state["history"], state["best"], state["epoch"]
        log(f"resumed from {checkpoint} after epoch {start}")
    eye = np.eye(len(GENRES), dtype=np.float32)
    a = cfg.augment
    settle = cfg.epochs // 2  # the one-cycle rate peaks at 30 %: judge epochs only once it has come down
    for epoch in range(start, cfg.epochs):
        if best[1] is not None and epoch - best[2] > cfg.patience:
            log(f"early stop after epoch {epoch}: no better inner-validation accuracy for {cfg.patience} epochs")
            break
        model.train()
        t0, total = time.time(), 0.0
        bar = tqdm(range(steps), desc=f"{cfg.family} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not sys.stderr.isatty())  # fmt: skip
        for _ in bar:
            pick = rng.choice(len(fit), cfg.batch_size, p=weights)
            windows, targets = [], []
            for i in pick:  # crop then augment, window by window: the random draws of earlier runs, kept
                w, start = crop(fit[i].mel, n_frames, rng, a.stretch)
                windows.append(augment(w, a, rng))
                targets.append(fit[i].target(start, eye, cfg.distill))
            x, y = mixup(np.stack(windows), np.stack(targets), a.mixup_alpha, rng)
            logits = model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
            loss = torch.sum(-torch.from_numpy(y) * torch.log_softmax(logits, dim=1), dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        val_acc = track_accuracy(model, val, n_frames) if val else float("nan")
        history.append({"epoch": epoch + 1, "loss": total / steps, "val_track_acc": val_acc,
                        "seconds": time.time() - t0})  # fmt: skip
        if epoch + 1 >= settle and (not val or val_acc >= best[0]):
            best = (val_acc, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
        judged = f"inner-val track acc {val_acc:.3f}" if val else "no inner validation"
        log(f"{cfg.family} epoch {epoch + 1}/{cfg.epochs} loss {total / steps:.3f} {judged} ({time.time() - t0:.1f} s)")
        if checkpoint is not None:  # written aside, then renamed: a run killed mid-write keeps the last one
            partial = checkpoint.with_suffix(".partial")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "history": history,
                        "best": best, "epoch": epoch + 1}, partial)  # fmt: skip
            partial.replace(checkpoint)
    model.load_state_dict(best[1])
    model.eval()
    return model.to(memory_format=torch.contiguous_format), history


def load_checkpoint(path: Path, family: str, n_mels: int, n_classes: int, level_norm: bool = False) -> nn.Module:
    """The model a run's checkpoint (``train(checkpoint=...)``) holds, ready for evaluation."""
    model = build(family, n_mels, n_classes, level_norm)
    model.load_state_dict(torch.load(path, weights_only=False)["model"])
    return model.eval()


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


def track_accuracy(model: nn.Module, examples: list[Example], n_frames: int) -> float:
    probs = predict_tracks(model, [e.mel for e in examples], n_frames, n_frames // 2)
    return float(np.mean([p.mean(0).argmax() == e.label for p, e in zip(probs, examples, strict=True)]))
