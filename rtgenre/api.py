"""The library API: a model by name, and a verdict for a file or an array, as `rtgenre classify` gives.

    import rtgenre
    model = rtgenre.load_model("musicnn-gtzan")      # or a bundle directory; None: the default
    result = model.classify("song.ogg")              # or model.classify(samples, sample_rate=44100)
    result.genre, result.confidence, result.window_probs

The audio goes through the same streaming front end and windows as a live stream, so a file's
verdict here is the one `replay` ends with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .audio import ArraySource, FileSource, Resampler, Source, to_mono
from .errors import AudioError
from .messages import Window as WindowMessage
from .messages import parse
from .model import Bundle, Classifier, available_models, load_bundle
from .pipeline import StreamPipeline, StreamSettings, run_source

BLOCK_S = 5.0  # large blocks batch many windows into one inference call

__all__ = ["Model", "Result", "available_models", "load_model"]


@dataclass(frozen=True)
class Result:
    """A file's or array's verdict, as `rtgenre classify` prints it, plus every window's probabilities."""

    genre: str | None  # None: silent throughout, or shorter than 0.5 s (``state`` says which)
    confidence: float
    probs: dict[str, float] | None  # the mean of the non-silent windows' probabilities
    state: str  # "genre", "silence" or "too short"
    padded: bool  # shorter than one window: its frames were looped to fill it
    truncated: bool  # the file was cut short (a warning is logged): classified from what remains
    window_times: list[tuple[float, float]]  # audio seconds of each window
    window_probs: np.ndarray  # (windows, labels); a silent window's row is NaN
    duration_s: float  # of the input, as its header (or the array) says

    def to_json(self) -> dict:
        return {"genre": self.genre, "confidence": self.confidence, "probs": self.probs, "state": self.state,
                "windows": len(self.window_times), "padded": self.padded, "truncated": self.truncated}  # fmt: skip


class Model:
    """A loaded, verified bundle and its ONNX Runtime session."""

    def __init__(self, bundle: Bundle, classifier: Classifier):
        self.bundle = bundle
        self.classifier = classifier
        self.labels = bundle.meta.labels
        self.name = bundle.meta.name

    def classify(
        self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None,
        window_s: float | None = None, hop_s: float | None = None,
    ) -> Result:  # fmt: skip
        """The verdict and per-window probabilities of a file, or of samples (mono, or frames × channels)."""
        rate = self.bundle.meta.frontend.sample_rate
        source: Source
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise AudioError("an array needs its sample_rate")
            y = to_mono(np.asarray(audio, np.float32))
            if not np.isfinite(y).all():
                raise AudioError("samples: NaN or infinite values")
            source = ArraySource([Resampler(sample_rate, rate)(y, last=True)], rate)
        else:
            source = FileSource(os.fspath(audio), rate, BLOCK_S)
        pipeline = StreamPipeline(self.bundle, StreamSettings(window=window_s, hop=hop_s), None,
                                  self.classifier.provider, whole_file=True)  # fmt: skip
        windows: list[WindowMessage] = []

        def keep(msg: dict) -> None:
            if msg["type"] == WindowMessage.type:
                windows.append(parse(msg))

        pipeline.outputs.append(keep)
        eos = parse(run_source(source, pipeline, self.classifier, realtime=False))
        v = eos.verdict
        nan = [float("nan")] * len(self.labels)
        probs = np.array([list(m.probs.values()) if m.probs else nan for m in windows], np.float32)
        return Result(v.genre, v.confidence, v.probs, v.state, v.padded, bool(eos.source.get("truncated")),
                      [(m.t0, m.t1) for m in windows], probs.reshape(len(windows), len(self.labels)),
                      source.info.duration_s or 0.0)  # fmt: skip


def load_model(name_or_dir: str | os.PathLike | None = None, device: str = "cpu", threads: int = 1) -> Model:
    """A shipped model by name (``available_models()``) or a bundle directory; ``device`` cpu, cuda or auto."""
    bundle = load_bundle(name_or_dir)
    return Model(bundle, Classifier(bundle, device, threads))
