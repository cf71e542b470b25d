"""Lyrics as evidence at run time: the lyric model bundle, lyric files, and the fusion rule.

The lyric model (MiniLM + genre head, ONNX, tokenised with the `tokenizers` package) knows fewer
genres than the audio model and was trained on other songs, so it is combined as independent
evidence rather than retrained jointly: each genre both models know is weighted by the lyric
model's likelihood ratio p(genre | lyrics) / p(genre), raised to ``weight`` (0 ignores lyrics,
1 is naive Bayes); genres it does not know keep their audio probability.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import ModelError, RtgenreError
from .model import MODELS_DIR, check_files, read_meta

LYRICS_FORMAT = "rtgenre-lyrics/1"
DEFAULT_LYRICS_MODEL = MODELS_DIR / "lyrics-minilm"
_LRC_TAG = re.compile(r"\[[^\]]*\]")


def read_lyrics(path: str | Path) -> str:
    """Plain text, or LRC with its [mm:ss.xx] and [ar:...] tags removed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RtgenreError(f"{path}: cannot read lyrics ({e})") from None
    if path.suffix.lower() == ".lrc":
        text = "\n".join(_LRC_TAG.sub("", line).strip() for line in text.splitlines())
    text = " ".join(text.split())
    if not text:
        raise RtgenreError(f"{path}: the lyrics file is empty")
    return text


def lyrics_beside(audio: str | Path) -> Path | None:
    """``song.txt`` or ``song.lrc`` next to ``song.wav``, if there is one."""
    for suffix in (".txt", ".lrc"):
        candidate = Path(audio).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


class LyricModel:
    """The lyric genre model bundle (MiniLM + head in ONNX, `tokenizers`), checked like an audio bundle."""

    def __init__(self, path: str | Path | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        root = Path(path) if path else DEFAULT_LYRICS_MODEL
        meta = read_meta(root, "lyric model")
        if meta.get("format") != LYRICS_FORMAT:
            raise ModelError(f"lyric model {root}: format {meta.get('format')!r}, expected {LYRICS_FORMAT!r}")
        check_files(root, "lyric model", meta.get("files"), ("lyrics.onnx", "tokenizer.json"))
        try:
            self.labels: list[str] = [str(g) for g in meta["labels"]]
            prior = np.asarray(meta["prior"], float)
            if prior.shape != (len(self.labels),) or not np.isfinite(prior).all() or (prior <= 0).any():
                raise ValueError("prior must be one positive number per label")
            self.prior = prior / prior.sum()
            self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(int(meta["max_tokens"]))
            self.session = ort.InferenceSession(str(root / "lyrics.onnx"), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - tokenizers and ORT raise their own types for a broken file
            first = (str(e).splitlines() or [""])[0]
            raise ModelError(f"lyric model {root}: {type(e).__name__}: {first}") from None

    def probs(self, text: str) -> np.ndarray:
        """Genre probabilities over ``self.labels``."""
        enc = self.tokenizer.encode(text)
        ids = np.asarray([enc.ids], np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]

    def evidence(self, text: str, labels: tuple[str, ...], weight: float) -> np.ndarray:
        """Per audio label, the factor the lyrics multiply its probability by."""
        ratio = (self.probs(text) / self.prior) ** weight
        return np.array([ratio[self.labels.index(g)] if g in self.labels else 1.0 for g in labels])


def fuse(audio: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Audio probabilities reweighted by the lyrics' per-label factors (``LyricModel.evidence``), renormalised."""
    fused = audio * evidence
    return fused / fused.sum()
