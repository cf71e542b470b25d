"""Genre from a pretrained musicnn embedding: a linear head on what the Million Song Dataset taught it.

451 GTZAN tracks by 190 artists are too few to learn genre from scratch; musicnn heard far more music.
The backbone stays frozen: its features of every 3 s patch (1.5 s hop) are computed once and cached, a
class-balanced logistic regression learns genre from them, and the head becomes a ``Linear`` layer on
the backbone in one ONNX graph.

The graph starts at dB log-mel (rtgenre's own numpy front end at musicnn's 16 kHz, 512-point FFT,
hop 256, 96 bands) and first rescales each window's power to a fixed reference, then applies
musicnn's log10(1 + 10000·power): the verdict is then the same at any input level (a quiet
microphone, a radio monitor turned down), while the silence gate still sees the true level.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtgenre.frontend import MelFrontend, MelParams, fit_window

from . import musicnn
from .data import GENRES, Track, track_mel
from .filterbank import mel_filterbank

WHEEL = "musicnn==0.1.0"
PARAMS = replace(musicnn.PARAMS, log="db")  # the bundle's front end: dB, converted in the graph
WINDOW_S = 3.0
EVAL_HOP_S = 1.5
# patches per forward pass: at 32, one timbral map (32 × 204 × 187 × 59 floats, 288 MB) is a fresh mmap each
# call and the kernel's page zeroing doubled the cost (76 against 32 ms a patch on one core); at 2 it reuses heap
PATCH_BATCH = 2


@dataclass(frozen=True)
class TransferConfig:
    net: str = "MSD_musicnn"
    features: str = "pooled"  # "pooled" (1506: max+mean of every front/mid-end map) or "penultimate" (200)
    c: float = 0.01  # inverse L2 strength of the logistic regression
    level_norm: bool = True  # rescale each window's power to the reference before musicnn's compression


def fetch_wheel(folder: Path) -> Path:
    """The musicnn wheel from PyPI (no dependencies: they are ancient and never installed)."""
    found = sorted(folder.glob("musicnn-0.1.0-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(folder)],
                       check=True)  # fmt: skip
        found = sorted(folder.glob("musicnn-0.1.0-*.whl"))
    return found[0]


class LevelNorm(nn.Module):
    """dB log-mel -> musicnn's compression of the window's power scaled to ``reference`` mean power
    (or unscaled, ``reference`` 0)."""

    def __init__(self, reference: float):
        super().__init__()
        self.register_buffer("reference", torch.tensor(float(reference)))

    def forward(self, db: torch.Tensor) -> torch.Tensor:
        power = torch.pow(10.0, db / 10.0)
        if self.reference > 0:
            power = power * (self.reference / power.mean(dim=(1, 2), keepdim=True).clamp_min(1e-10))
        return torch.log10(1.0 + 10000.0 * power)


class TransferModel(nn.Module):
    """dB log-mel window -> genre logits: level normalisation, frozen musicnn, linear head."""

    def __init__(self, backbone: musicnn.Musicnn, norm: LevelNorm, features: str, n_classes: int):
        super().__init__()
        self.norm = norm
        self.backbone = backbone
        self.features = features
        width = backbone.dense.in_features if features == "pooled" else backbone.embedding_size
        self.head = nn.Linear(width, n_classes)

    def embed(self, db: torch.Tensor) -> torch.Tensor:
        x = self.norm(db)
        return self.backbone.pooled(x) if self.features == "pooled" else self.backbone.embed(x)

    def front(self, db: torch.Tensor) -> torch.Tensor:
        """The frozen front end's maps, where fine-tuning the mid-end starts."""
        return self.backbone.front(self.norm(db))

    def forward(self, db: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(db))


def patches(mel: np.ndarray, n: int, hop: int) -> np.ndarray:
    """The 3 s patches of a track at ``hop`` frames (a clip: one looped patch)."""
    if len(mel) <= n:
        return fit_window(mel, n)[None]
    return np.stack([mel[s : s + n] for s in range(0, len(mel) - n + 1, hop)])


@torch.no_grad()
def predict(model: TransferModel, mels: list[np.ndarray], n: int, hop: int) -> list[np.ndarray]:
    """Patch probabilities (patches, classes) of every track through the whole graph."""
    model.eval()
    out = []
    for mel in mels:
        x = torch.from_numpy(patches(mel, n, hop).astype(np.float32))
        out.append(torch.cat([torch.softmax(model(x[j : j + PATCH_BATCH]), dim=1)
                              for j in range(0, len(x), PATCH_BATCH)]).numpy())  # fmt: skip
    return out


def reference_power(mels: list[np.ndarray], n: int, hop: int) -> float:
    """The median mean power of the training patches: where level normalisation puts every window."""
    means = [np.mean(10.0 ** (p / 10.0)) for mel in mels for p in patches(mel, n, hop)]
    return float(np.median(means))


def per_track(tracks: list[Track], mels: list[np.ndarray], cache: Path | None, tag: str,
              compute: Callable[[int], np.ndarray], log=print,
              what: str = "features") -> list[np.ndarray]:  # fmt: skip
    """``compute(i)`` of every track ``i``, cached as ``.npy`` by track, its log-mel and ``tag`` (what computed it)."""
    out = []
    for i, (track, mel) in enumerate(zip(tracks, mels, strict=True)):
        key = hashlib.sha256(f"{track.path.resolve()}|{mel.shape}|{float(mel.sum())}|{tag}".encode()).hexdigest()[:24]
        cached = cache / f"{key}.npy" if cache else None
        if cached is not None and cached.is_file():
            out.append(np.load(cached))
            continue
        feats = compute(i)
        if cached is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.save(cached, feats)
        out.append(feats)
        if i % 50 == 0:
            log(f"musicnn {what}: {i + 1}/{len(tracks)} tracks")
    return out


@torch.no_grad()
def track_features(model: TransferModel, tracks: list[Track], mels: list[np.ndarray], cache: Path | None,
                   log=print, front: bool = False) -> list[np.ndarray]:  # fmt: skip
    """Backbone features of every patch of every track (or, ``front``, the front end's maps in float16),
    cached by track, front end and normalisation."""
    model.eval()
    n, hop = PARAMS.frames(WINDOW_S), PARAMS.frames(EVAL_HOP_S)
    embed = (lambda x: model.front(x).half()) if front else model.embed
    kind = "front" if front else model.features
    tag = f"{kind}|{float(model.norm.reference):.6g}|{sum(p.sum().item() for p in model.backbone.parameters())}"

    def compute(mel: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(patches(mel, n, hop))
        return np.concatenate([embed(x[j : j + PATCH_BATCH]).numpy() for j in range(0, len(x), PATCH_BATCH)])

    return per_track(tracks, mels, cache, tag, lambda i: compute(mels[i]), log)


@dataclass
class Head:
    """A fitted class-balanced logistic regression, and its form as a torch ``Linear``."""

    weight: np.ndarray  # (classes, features), standardisation folded in
    bias: np.ndarray

    def probs(self, feats: np.ndarray) -> np.ndarray:
        z = feats @ self.weight.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fit_head(feats: list[np.ndarray], labels: list[int], c: float) -> Head:
    """Every track weighs the same whatever its patch count, and every genre the same whatever its track count."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate(feats).astype(np.float64)
    y = np.concatenate([np.full(len(f), label) for f, label in zip(feats, labels, strict=True)])
    per_genre = np.bincount(labels, minlength=len(GENRES)).astype(float)
    w = np.concatenate([np.full(len(f), 1.0 / (len(f) * per_genre[label])) for f, label in
                        zip(feats, labels, strict=True)])  # fmt: skip
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=3000)
    clf.fit((x - mean) / scale, y, sample_weight=w * len(labels))
    weight = np.zeros((len(GENRES), x.shape[1]))
    bias = np.full(len(GENRES), -1e4)  # a genre absent from training is never predicted
    weight[clf.classes_] = clf.coef_ / scale
    bias[clf.classes_] = clf.intercept_ - (clf.coef_ / scale) @ mean
    return Head(weight.astype(np.float32), bias.astype(np.float32))


@dataclass
class Fitted:
    """A recipe fitted on some tracks: patch probabilities of any track (by index), and its whole graph."""

    probs: Callable[[int], np.ndarray]
    model: Callable[[], TransferModel]


def build(wheel: Path, cfg: TransferConfig, reference: float) -> TransferModel:
    backbone = musicnn.from_checkpoint(musicnn.read_wheel(wheel, cfg.net))
    return TransferModel(backbone, LevelNorm(reference if cfg.level_norm else 0.0), cfg.features, len(GENRES))


def with_head(model: TransferModel, head: Head) -> TransferModel:
    model.head.weight.data.copy_(torch.from_numpy(head.weight))
    model.head.bias.data.copy_(torch.from_numpy(head.bias))
    return model.eval()


def collection_mels(tracks: list[Track], cache: Path | None) -> tuple[list[np.ndarray], MelParams, np.ndarray]:
    fb = mel_filterbank(PARAMS)
    frontend = MelFrontend(PARAMS, fb)
    return [track_mel(t, frontend, cache) for t in tracks], PARAMS, fb


def describe(cfg: TransferConfig) -> dict:
    return {**asdict(cfg), "window_s": WINDOW_S, "patch_hop_s": EVAL_HOP_S}
