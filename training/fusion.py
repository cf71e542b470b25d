"""Audio + lyrics fusion, and the experiment that asks whether it beats either modality alone.

One fusion module serves every audio encoder: the audio side is any module that maps its input to
an embedding (an MLP over Spotify audio descriptors for the paired tcc_ceds songs, the CNN's
embedding for log-mel windows, `fusion_mel.py`). Two fusion layers: concatenation + MLP, and a gate that
learns per example how much to trust each modality (its weights are what the report plots).
Missing lyrics (instrumentals) use a learned empty-lyrics embedding, and training drops the lyrics
at random, so a fused model still works on audio alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from .crossval import assign_folds, out_of_fold
from .lyrics import TopLayers


class MLPEncoder(nn.Module):
    def __init__(self, n_in: int, dim: int = 64, dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.ReLU())
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Fusion(nn.Module):
    """(audio embedding, lyric embedding, has_lyrics) -> class logits.

    ``kind``: ``concat`` (concatenate, MLP) or ``gated`` (a softmax gate over the two projected
    modalities; ``last_gate`` keeps the audio/lyrics weights of the last batch).
    """

    def __init__(self, audio: nn.Module, lyric_dim: int, n_classes: int, kind: str = "gated",
                 dim: int = 64, lyric_dropout: float = 0.3):  # fmt: skip
        super().__init__()
        if kind not in ("concat", "gated"):
            raise ValueError(f"unknown fusion {kind!r}")
        self.kind = kind
        self.audio = audio
        self.lyrics = nn.Sequential(nn.Linear(lyric_dim, dim), nn.ReLU())
        self.audio_proj = nn.Linear(audio.dim, dim)
        self.empty = nn.Parameter(torch.zeros(lyric_dim))  # the embedding of "no lyrics"
        self.lyric_dropout = lyric_dropout
        self.gate = nn.Linear(2 * dim, 2)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * dim if kind == "concat" else dim, n_classes))
        self.last_gate: torch.Tensor | None = None

    def forward(self, audio_in: torch.Tensor, lyric_emb: torch.Tensor, has_lyrics: torch.Tensor) -> torch.Tensor:
        keep = has_lyrics.bool()
        if self.training and self.lyric_dropout > 0:
            keep = keep & (torch.rand(len(keep)) >= self.lyric_dropout)
        lyric_emb = torch.where(keep[:, None], lyric_emb, self.empty.expand_as(lyric_emb))
        a = self.audio_proj(self.audio(audio_in))
        t = self.lyrics(lyric_emb)
        if self.kind == "concat":
            return self.head(torch.cat([a, t], dim=1))
        w = torch.softmax(self.gate(torch.cat([a, t], dim=1)), dim=1)
        self.last_gate = w.detach()
        return self.head(w[:, :1] * a + w[:, 1:] * t)


class Single(nn.Module):
    """One modality alone: encoder + linear head (the baselines fusion must beat)."""

    def __init__(self, encoder: nn.Module, n_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(encoder.dim, n_classes))

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(*x))


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-3
    seed: int = 0
    encoder_lr_scale: float = 0.05  # fine-tuned transformer layers learn at this fraction of ``lr``


def param_groups(model: nn.Module, cfg: FitConfig) -> list[dict]:
    """Pretrained transformer layers at a small learning rate, everything new at the full one."""
    slow = {id(p) for m in model.modules() if isinstance(m, TopLayers) for p in m.parameters()}
    fast = [p for p in model.parameters() if id(p) not in slow]
    pretrained = [p for p in model.parameters() if id(p) in slow]
    return [{"params": fast}, {"params": pretrained, "lr": cfg.lr * cfg.encoder_lr_scale}]


def fit(model: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor, cfg: FitConfig,
        n_classes: int | None = None) -> nn.Module:  # fmt: skip
    """Class-weighted cross-entropy with AdamW on small in-memory tensors."""
    torch.manual_seed(cfg.seed)
    counts = torch.bincount(y, minlength=n_classes or int(y.max()) + 1).float()
    loss_fn = nn.CrossEntropyLoss(weight=counts.sum() / (len(counts) * counts.clamp(min=1)))
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
            loss = loss_fn(model(*[x[idx] for x in inputs]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@dataclass
class CVResult:
    name: str
    acc: list[float]
    macro_f1: list[float]
    per_genre_f1: dict[str, list[float]]
    gates: list[np.ndarray]  # gated fusion: each test example's (audio, lyrics) weights

    def summary(self) -> tuple[float, float, float, float]:
        return float(np.mean(self.acc)), float(np.std(self.acc)), float(np.mean(self.macro_f1)), float(
            np.std(self.macro_f1))  # fmt: skip


@torch.no_grad()
def predict(model: nn.Module, inputs: list[torch.Tensor], batch: int = 256) -> np.ndarray:
    """Class probabilities, in batches: a fold of log-mel windows at once would not fit in memory."""
    model.eval()
    n = len(inputs[0])
    return np.concatenate([torch.softmax(model(*[x[i : i + batch] for x in inputs]), dim=1).numpy()
                           for i in range(0, n, batch)])  # fmt: skip


def cross_validate(
    name: str, make, inputs: list[np.ndarray], labels: np.ndarray, genres: list[str], folds: int = 5,
    cfg: FitConfig = FitConfig(), groups: np.ndarray | None = None,
) -> CVResult:  # fmt: skip
    """Stratified k-fold CV of ``make()`` (a fresh model per fold) on the same folds for every model.

    ``groups`` (a track id per example, as for the windows of a track) keeps every group on one side
    of each split and scores a group by the mean of its examples' probabilities."""
    result = CVResult(name, [], [], {g: [] for g in genres}, [])
    tensors = [torch.as_tensor(x) for x in inputs]
    y = torch.as_tensor(labels)
    fold = assign_folds(labels, folds, cfg.seed, groups)

    def fit_fold(train_idx: np.ndarray) -> nn.Module:
        torch.manual_seed(cfg.seed)  # the initial weights too: fold 1's once came from an unseeded generator
        return fit(make(), [x[train_idx] for x in tensors], y[train_idx], cfg, len(genres))

    def predict_fold(model: nn.Module, held: np.ndarray) -> np.ndarray:
        # songs in one batch, so a gated model's last_gate holds every test song; windows in chunks
        probs = predict(model, [x[held] for x in tensors], len(held) if groups is None else 256)
        if isinstance(model, Fusion) and model.last_gate is not None and groups is None:
            result.gates.append(np.column_stack([model.last_gate.numpy(), labels[held]]))
        return probs

    probs, truth = np.stack(out_of_fold(fold, fit_fold, predict_fold)), labels
    if groups is not None:  # a group lies in one fold: its mean is scored in that fold
        _, first, which = np.unique(groups, return_index=True, return_inverse=True)
        probs = np.stack([probs[which == j].mean(0) for j in range(len(first))])
        truth, fold = labels[first], fold[first]
    for k in range(folds):
        pred, true = probs[fold == k].argmax(1), truth[fold == k]
        result.acc.append(float((pred == true).mean()))
        result.macro_f1.append(float(f1_score(true, pred, average="macro")))
        for g, v in zip(genres, f1_score(true, pred, labels=range(len(genres)), average=None, zero_division=0),
                        strict=True):  # fmt: skip
            result.per_genre_f1[g].append(float(v))
    return result
