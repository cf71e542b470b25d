"""Metrics and report tables: window- and track-level accuracy, macro-F1, per-genre F1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from .data import GENRES


@dataclass(frozen=True)
class Scores:
    window_acc: float
    track_acc: float
    macro_f1: float  # track level, over the genres present
    per_genre_f1: dict[str, float]
    per_genre_n: dict[str, int]
    confusion: list[list[int]]

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def score(window_probs: list[np.ndarray], labels: list[int]) -> Scores:
    """Scores from each track's window probabilities; the track verdict is the mean window."""
    y = np.array(labels)
    win_correct = np.concatenate([p.argmax(1) == t for p, t in zip(window_probs, labels, strict=True)])
    pred = np.array([p.mean(0).argmax() for p in window_probs])
    present = sorted(set(labels))
    f1 = f1_score(y, pred, labels=present, average=None, zero_division=0)
    return Scores(
        window_acc=round(float(win_correct.mean()), 4),
        track_acc=round(float((pred == y).mean()), 4),
        macro_f1=round(float(f1.mean()), 4),
        per_genre_f1={GENRES[g]: round(float(v), 4) for g, v in zip(present, f1, strict=True)},
        per_genre_n={GENRES[g]: int((y == g).sum()) for g in present},
        confusion=confusion_matrix(y, pred, labels=range(len(GENRES))).tolist(),
    )


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
