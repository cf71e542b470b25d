"""Distillation: a small, fast student learns from the musicnn transfer teacher's soft labels.

The teacher (a linear head on the frozen musicnn, see ``transfer``) holds up far better on artists it
has not heard but costs ~30 ms a window; the student (crnn2d, ~1 ms) learns from the teacher's
probabilities of every 1.5 s patch of its training tracks and of unlabelled songs (``extra/``: not
GTZAN, never evaluated). The teacher of each run is fitted on that run's training tracks only, so
no cross-validation fold ever sees a teacher that heard its tracks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import transfer
from .data import Track
from .train import Example

Teacher = Callable[[Sequence[int]], list[Example]]


def make_teacher(
    tracks: list[Track], mels: list[np.ndarray], labels: list[int], extra: list[Track], extra_mels: list[np.ndarray],
    student_frames_per_patch: int, wheel: Path, cache: Path, log=print,
) -> Teacher:  # fmt: skip
    """The examples of a training run: its labelled tracks with the teacher's soft labels, plus the extra songs."""
    cfg = transfer.TransferConfig()
    teacher_mels, params, _ = transfer.collection_mels(tracks + extra, cache / "mel")
    n, hop = params.frames(transfer.WINDOW_S), params.frames(transfer.EVAL_HOP_S)
    model = transfer.build(wheel, cfg, transfer.reference_power(teacher_mels[: len(tracks)], n, hop))
    feats = transfer.track_features(model, tracks + extra, teacher_mels, cache / "musicnn", log)
    gtzan, unlabelled = feats[: len(tracks)], feats[len(tracks) :]
    hop_frames = student_frames_per_patch

    def examples(idx: Sequence[int]) -> list[Example]:
        head = transfer.fit_head([gtzan[i] for i in idx], [labels[i] for i in idx], cfg.c)
        out = [Example(mels[i], labels[i], head.probs(gtzan[i]), hop_frames) for i in idx]
        for mel, f in zip(extra_mels, unlabelled, strict=True):
            soft = head.probs(f)
            out.append(Example(mel, int(soft.mean(0).argmax()), soft, hop_frames, labelled=False))
        return out

    return examples
