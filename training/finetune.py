"""Fine-tuning musicnn's later layers for genre, from cached inputs of the first trained layer.

The frozen-backbone head (``transfer``) keeps musicnn's tag-trained back end; here the back end
(``part="backend"``: pooled features -> dense 200 -> head) or the mid-end too (``part="midend"``:
front-end maps -> three 1-D convs -> pooling -> back end -> head; ``part="stream"``: the same from the
streaming encoder's front-end maps, ``midstream``) learn genre. What stays frozen is
computed once per patch and cached, so an epoch costs only the trained layers. Pretrained layers
learn at a tenth of the head's rate and their batch-norm statistics stay as musicnn learnt them:
451 tracks are too few to re-estimate them without forgetting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import midstream, musicnn
from .data import GENRES
from .transfer import TransferModel

PARTS = ("backend", "midend")  # what `finetune --part` offers; "stream" is a `thin` recipe's


@dataclass(frozen=True)
class FinetuneConfig:
    part: str = "backend"  # "backend" (from pooled features), "midend" (from the front end's maps) or "stream"
    epochs: int = 10
    patches_per_epoch: int = 4096
    batch: int = 64
    lr_head: float = 1e-3
    lr_pretrained: float = 1e-4
    weight_decay: float = 1e-3
    seed: int = 0
    mixup: float = 0.0  # Beta(a, a) mixing of a batch's patches and their labels (0: none)
    adversary: float = 0.0  # weight of a reversed-gradient artist classifier within each genre (0: none)


class Tail(nn.Module):
    """The trained part of a musicnn copy, from its cached input to genre logits."""

    def __init__(self, backbone: musicnn.Musicnn, part: str, n_classes: int = len(GENRES)):
        super().__init__()
        self.backbone = copy.deepcopy(backbone)
        self.part = part
        self.head = nn.Linear(self.backbone.embedding_size, n_classes)
        self.stream_pool = midstream.StreamPool(self.backbone) if part == "stream" else None

    def pretrained(self) -> list[nn.Parameter]:
        b = self.backbone
        layers = [b.pool_bn, b.dense, b.dense_bn] + ([b.midend] if self.part in ("midend", "stream") else [])
        return [p for layer in layers for p in layer.parameters()]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.stream_pool is not None:
            pooled = self.stream_pool(x)
        else:
            pooled = self.backbone.pool(x.float()) if self.part == "midend" else x
        return self.backbone.backend(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.dropout(self.embed(x)))

    def train(self, mode: bool = True) -> Tail:
        """Dropout follows ``mode``; batch norm always uses musicnn's statistics."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


def patch_weights(feats: list[np.ndarray], labels: list[int], tracks: np.ndarray | None = None) -> np.ndarray:
    """Sampling weights: every genre the same whatever its tracks, and within a genre every track the same whatever
    its patch count (or as ``tracks`` weighs them)."""
    tracks = np.ones(len(feats)) if tracks is None else np.asarray(tracks, float)
    per_genre = np.bincount(labels, weights=tracks)
    w = np.concatenate([np.full(len(f), t / (len(f) * per_genre[y])) for f, y, t in zip(feats, labels, tracks,
                                                                                         strict=True)])  # fmt: skip
    return w / w.sum()


class _Reversed(torch.autograd.Function):
    """Identity forward, negated gradient backward: the embedding learns to defeat what reads it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


class ArtistAdversary(nn.Module):
    """Tells a patch's artist from its embedding among the artists of its own genre only, so that the reversed
    gradient removes what tells one artist from another within a genre, not what tells genres apart (rock has
    four artists: a back end that knows them learns them instead of rock)."""

    def __init__(self, size: int, artists: np.ndarray, labels: np.ndarray, n_classes: int):
        super().__init__()
        self.artist_of = torch.from_numpy(artists)  # per patch
        genre_of = np.zeros(artists.max() + 1, int)
        genre_of[artists] = labels
        self.allowed = torch.from_numpy(genre_of[None, :] == np.arange(n_classes)[:, None])  # (genre, artist)
        self.linear = nn.Linear(size, len(genre_of))

    def loss(self, embedding: torch.Tensor, idx: np.ndarray, y: torch.Tensor) -> torch.Tensor:
        logits = self.linear(_Reversed.apply(embedding)).masked_fill(~self.allowed[y], float("-inf"))
        return nn.functional.cross_entropy(logits, self.artist_of[idx])


def fit(backbone: musicnn.Musicnn, feats: list[np.ndarray], labels: list[int], cfg: FinetuneConfig,
        n_classes: int = len(GENRES), track_weights: np.ndarray | None = None,
        groups: list[str] | None = None) -> Tail:  # fmt: skip
    """Train a tail of ``backbone`` on the patches of the given tracks (a fixed budget, no early stopping: no
    peeking); ``labels`` index ``n_classes`` classes, ``track_weights`` weigh tracks within their genre,
    ``groups`` name each track's artist (for ``cfg.adversary``)."""
    if cfg.adversary and groups is None:
        raise ValueError("the artist adversary needs each track's artist")
    if cfg.adversary and cfg.mixup:
        raise ValueError("the artist adversary reads unmixed patches: mixup and adversary are one or the other")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tail = Tail(backbone, cfg.part, n_classes)
    for p in tail.backbone.parameters():
        p.requires_grad_(False)
    pretrained = tail.pretrained()
    for p in pretrained:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        [{"params": pretrained, "lr": cfg.lr_pretrained}, {"params": tail.head.parameters(), "lr": cfg.lr_head}],
        weight_decay=cfg.weight_decay,
    )
    x = np.concatenate(feats)
    y = torch.from_numpy(np.concatenate([np.full(len(f), label) for f, label in zip(feats, labels, strict=True)]))
    w = patch_weights(feats, labels, track_weights)
    adversary = None
    if cfg.adversary:
        keys = list(zip(labels, groups, strict=True))  # an artist filed under two genres is two groups
        ids = {k: n for n, k in enumerate(dict.fromkeys(keys))}
        artists = np.concatenate([np.full(len(f), ids[k]) for f, k in zip(feats, keys, strict=True)])
        adversary = ArtistAdversary(tail.backbone.embedding_size, artists, y.numpy(), n_classes)
        opt.add_param_group({"params": adversary.parameters(), "lr": cfg.lr_head})
    tail.train()
    for _ in range(cfg.epochs):
        drawn = rng.choice(len(x), size=cfg.patches_per_epoch, p=w)
        for idx in (drawn[j : j + cfg.batch] for j in range(0, len(drawn), cfg.batch)):
            xb, yb = torch.from_numpy(x[idx]), y[idx]
            if cfg.mixup:
                lam, other = float(rng.beta(cfg.mixup, cfg.mixup)), torch.from_numpy(rng.permutation(len(idx)))
                logits = tail(lam * xb + (1 - lam) * xb[other])
                loss = lam * nn.functional.cross_entropy(logits, yb) + (1 - lam) * nn.functional.cross_entropy(
                    logits, yb[other])  # fmt: skip
            elif adversary is not None:
                embedding = tail.embed(xb)
                loss = nn.functional.cross_entropy(tail.head(tail.backbone.dropout(embedding)), yb)
                loss = loss + cfg.adversary * adversary.loss(embedding, idx, yb)
            else:
                loss = nn.functional.cross_entropy(tail(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return tail.eval()


@torch.no_grad()
def probs(tail: Tail, feats: np.ndarray) -> np.ndarray:
    tail.eval()
    x = torch.from_numpy(feats)
    return torch.cat([torch.softmax(tail(x[j : j + 64]), dim=1) for j in range(0, len(x), 64)]).numpy()


def installed(model: TransferModel, tail: Tail) -> TransferModel:
    """The whole graph with the fine-tuned layers: level norm, musicnn (its tuned copy), the new head."""
    out = TransferModel(tail.backbone, model.norm, "penultimate", len(GENRES))
    out.head.load_state_dict(tail.head.state_dict())
    return out.eval()
