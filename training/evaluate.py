"""Metrics and report tables: window- and track-level accuracy, macro-F1, per-genre F1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from .data import GENRES

SLICE_SECONDS = (1.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class Scores:
    window_acc: float
    track_acc: float
    macro_f1: float  # track level, over the genres present
    per_genre_f1: dict[str, float]
    per_genre_n: dict[str, int]
    confusion: list[list[int]]
    slice_acc: dict[str, float] = field(default_factory=dict)  # "3s" -> accuracy of 3 s slices

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def score(window_probs: list[np.ndarray], labels: list[int], slice_acc: dict[str, float] | None = None,
          names: Sequence[str] = GENRES) -> Scores:  # fmt: skip
    """Scores from each track's window probabilities (``labels`` index ``names``); the track verdict is the mean
    window."""
    y = np.array(labels)
    win_correct = np.concatenate([p.argmax(1) == t for p, t in zip(window_probs, labels, strict=True)])
    pred = np.array([p.mean(0).argmax() for p in window_probs])
    present = sorted(set(labels))
    f1 = f1_score(y, pred, labels=present, average=None, zero_division=0)
    return Scores(
        window_acc=round(float(win_correct.mean()), 4),
        track_acc=round(float((pred == y).mean()), 4),
        macro_f1=round(float(f1.mean()), 4),
        per_genre_f1={names[g]: round(float(v), 4) for g, v in zip(present, f1, strict=True)},
        per_genre_n={names[g]: int((y == g).sum()) for g in present},
        confusion=confusion_matrix(y, pred, labels=range(len(names))).tolist(),
        slice_acc=slice_acc or {},
    )


LEVELS_DB = (0.0, -10.0, -20.0, -30.0, -40.0)  # input levels at which a valid split is scored


def level_accuracy(predict, mels: list[np.ndarray], labels: list[int], floor_db: float) -> dict[str, float]:
    """Track accuracy with the audio turned down by each of ``LEVELS_DB``: a gain is a shift of dB log-mel,
    floored where the front end floors power (``predict`` maps a list of mels to window probabilities)."""
    floor = np.float32(floor_db)
    return {f"{g:g} dB": score(predict([np.maximum(m + np.float32(g), floor) for m in mels]), labels).track_acc
            for g in LEVELS_DB}  # fmt: skip


def per_genre_table(columns: dict[str, Scores]) -> str:
    """Markdown: one row per genre, one F1 column per named evaluation."""
    names = list(columns)
    lines = ["| genre | " + " | ".join(f"{n} F1 (tracks)" for n in names) + " |", "|---|" + "---|" * len(names)]
    for g in GENRES:
        cells = [
            f"{s.per_genre_f1[g]:.2f} ({s.per_genre_n[g]})" if g in s.per_genre_f1 else "–" for s in columns.values()
        ]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(columns: dict[str, Scores]) -> str:
    lines = ["| evaluation | window acc | track acc | track macro-F1 |", "|---|---|---|---|"]
    for name, s in columns.items():
        lines.append(f"| {name} | {s.window_acc:.3f} | {s.track_acc:.3f} | {s.macro_f1:.3f} |")
    return "\n".join(lines)


def plot_confusion(confusion: list[list[int]], path: Path, title: str, names: Sequence[str] = GENRES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(confusion)
    size = max(5.5, 0.45 * len(names))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(histories: dict[str, list[dict]], path: Path) -> None:
    """Training loss and inner-validation track accuracy per epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in histories.items():
        epochs = [e["epoch"] for e in h]
        a.plot(epochs, [e["loss"] for e in h], label=name)
        b.plot(epochs, [e["val_track_acc"] for e in h], label=name)
    a.set(xlabel="epoch", ylabel="training loss (mixup)", title="loss")
    b.set(xlabel="epoch", ylabel="track accuracy", title="inner validation", ylim=(0, 1))
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
