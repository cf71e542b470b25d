"""One stream end to end: windows (``windows.py``) -> smoothing -> messages on the feed, and the
drivers that run streams (``classify_due``, ``finish``, ``run_source``).

Window extraction and classification are separate steps (``windows()`` then ``emit()``) so a
scheduler can batch the windows due from many streams into one inference call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .audio import Source
from .encoder import ENCODER_BATCH, step_together
from .feed import Publisher, check_stream_id
from .latency import Histogram, Recent
from .limits import limits
from .lyrics import fuse
from .messages import GENRE, SILENCE, TOO_SHORT, Body, Eos, Heartbeat, SmoothedFields, Stats, Verdict, to_json
from .messages import Window as WindowMessage
from .model import MAX_BATCH, MAX_WINDOW_S, MIN_HOP_S, MIN_WINDOW_S, Bundle, Classifier, check_hop, check_window
from .pacer import due_at
from .smoothing import Smoother, SmoothingConfig
from .windows import Window, Windower

log = logging.getLogger(__name__)

BACKLOG_S = 1.5  # audio a daemon's stream may wait for the scheduler before the oldest is skipped


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """A stream's id, window, hop (seconds; None: the model's own) and smoothing. A configured stream's entry
    (``config.StreamSection``) is one, with its source: the config loader enforces the bounds given here."""

    id: str = "default"
    window: float | None = field(default=None, metadata=limits(MIN_WINDOW_S, MAX_WINDOW_S))
    hop: float | None = field(default=None, metadata=limits(MIN_HOP_S, MAX_WINDOW_S))
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    audio_buffer_s: float = field(default=10.0, metadata={"config": False})  # not a config key


Output = Callable[[dict], None]
"""Another receiver of a stream's messages (``OscOutput.send``, ``Hub.send``, a CLI printer); must never block."""


class StreamPipeline:
    """One stream from samples to messages: its windows, smoothing, the whole stream's verdict and stats.

    It never calls the model itself, so a scheduler can batch the windows of many streams into one call."""

    def __init__(self, bundle: Bundle, settings: StreamSettings, publisher: Publisher | None = None, provider: str = "",
                 backlog_s: float | None = None, whole_file: bool = False):  # fmt: skip
        self.id = check_stream_id(settings.id)
        self.settings = settings
        self.labels = bundle.meta.labels
        self.model = bundle.meta.name
        self.provider = provider
        self.publisher = publisher
        self.sample_rate = bundle.meta.frontend.sample_rate
        self.window_s = check_window(bundle.meta.window_s if settings.window is None else settings.window)
        self.hop_s = check_hop(bundle.meta.hop_s if settings.hop is None else settings.hop, self.window_s)
        self.windower = Windower(bundle.frontend(), self.window_s, self.hop_s, settings.smoothing.silence_dbfs,
                                 settings.audio_buffer_s, bundle.stream_encoder(provider), backlog_s,
                                 whole_file)  # fmt: skip
        self._smoother = Smoother(len(self.labels), settings.smoothing)
        self._sum = np.zeros(len(self.labels))
        self._voiced = 0
        self._silent = 0
        self._padded = False
        self.lyrics: np.ndarray | None = None  # per-label factors from the song's lyrics (see lyrics.py)
        self.outputs: list[Output] = []  # what else gets every message: OSC targets, the web page
        self._warned_nonfinite = False
        self.latencies = Recent()  # seconds from a hop's last sample handed over to its message sent
        self.latency_histogram = Histogram()

    def feed(self, block: np.ndarray, newest_sample_time: float | None = None) -> None:
        """Hand over mono samples at the model rate (see ``Windower.feed``)."""
        self.windower.feed(block, newest_sample_time)

    def windows(self, final: bool = False, prepare: bool = True) -> list[Window]:
        """The windows the audio handed over so far completed (see ``Windower.windows``)."""
        return self.windower.windows(final, prepare)

    def emit(self, windows: list[Window], probs: np.ndarray) -> list[dict]:
        """Smooth, account and publish the classified windows; returns the messages."""
        msgs = []
        lyrics = self.lyrics  # once: the control worker may replace it meanwhile
        for w, audio in zip(windows, probs, strict=True):
            p = audio if lyrics is None else fuse(audio, lyrics)
            if not np.isfinite(p).all():  # a bug upstream (model, lyrics): contained here, never published
                if not self._warned_nonfinite:
                    log.error("stream %s: non-finite probabilities; the window is dropped and smoothing reset", self.id)
                    self._warned_nonfinite = True
                self._smoother.reset()
                continue
            silent = w.silent
            s = self._smoother.update(None if silent else p, self.hop_s)
            if silent:
                self._silent += 1
            else:
                self._sum += p
                self._voiced += 1
            self._padded |= w.padded
            top = None if silent else int(np.argmax(p))
            body = WindowMessage(
                t0=w.t0,
                t1=w.t1,
                captured=round(w.captured, 6),
                probs=None if silent else self._named(p),
                top=None if top is None else self.labels[top],
                confidence=0.0 if top is None else round(float(p[top]), 6),
                **self._smoothed_fields(s),
                level_dbfs=round(w.level_dbfs, 1),
                padded=w.padded,
                model=self.model,
                provider=self.provider,
                lyrics=lyrics is not None,
                audio_probs=self._named(audio) if lyrics is not None and not silent else None,
            )
            msgs.append(self._send(body))
            latency = time.monotonic() - w.arrived
            self.latencies.add(latency)
            self.latency_histogram.add(latency)
        return msgs

    def current(self) -> SmoothedFields:
        """The smoothed state now, as the messages carry it."""
        return SmoothedFields(**self._smoothed_fields(self._smoother.current()))

    def heartbeat_due(self) -> bool:
        return self.publisher is not None and self.publisher.heartbeat_due(self.id)

    def heartbeat(self, source: dict | None = None) -> dict:
        """The current state for subscribers that joined late or heard nothing for a while."""
        body = Heartbeat(t=round(self.windower.audio_time, 3), **self._smoothed_fields(self._smoother.current()),
                         source=source or {}, stats=self.stats())  # fmt: skip
        return self._send(body)

    def end(self, reason: str = "end of stream", source: dict | None = None) -> dict:
        """Every way a stream ends publishes this: the reason and the whole stream's verdict."""
        return self._send(Eos(reason=reason, verdict=self.verdict(), source=source or {}, stats=self.stats()))

    def verdict(self) -> Verdict:
        """Track-level result: the mean of the non-silent windows' probabilities."""
        lyrics = self.lyrics is not None
        if self._voiced == 0:
            state = TOO_SHORT if self.windower.too_short else SILENCE
            return Verdict(None, 0.0, None, state, self._silent, self._padded, lyrics)
        mean = self._sum / self._voiced
        top = int(np.argmax(mean))
        return Verdict(self.labels[top], round(float(mean[top]), 6), self._named(mean), GENRE,
                       self._voiced + self._silent, self._padded, lyrics)  # fmt: skip

    def stats(self) -> Stats:
        p50, p99 = self.latencies.percentiles_ms(50, 99)
        return Stats(
            windows=self.windower.emitted,
            audio_overruns=self.windower.audio.overruns,
            frame_overruns=self.windower.frames.overruns,
            skipped_windows=self.windower.skipped_windows,
            latency_ms_p50=p50,
            latency_ms_p99=p99,
            provider=self.provider,
        )

    def _smoothed_fields(self, s) -> dict:
        return {
            "smoothed": None if s.probs is None else self._named(s.probs),
            "smoothed_top": None if s.top is None else self.labels[s.top],
            "smoothed_confidence": round(s.confidence, 6),
            "state": s.state,
        }

    def _named(self, p: np.ndarray) -> dict[str, float]:
        return {label: round(float(x), 6) for label, x in zip(self.labels, p, strict=True)}

    def _send(self, body: Body) -> dict:
        """The message as JSON-ready dict: published (stamped with the envelope) when there is a feed."""
        if self.publisher is None:
            msg = {"type": body.type, "stream": self.id, **to_json(body)}
        else:
            msg = self.publisher.publish(self.id, body.type, to_json(body))
        for output in self.outputs:
            output(msg)
        return msg


def paced(blocks: Iterable[np.ndarray], sample_rate: int, speed: float = 1.0) -> Iterator[np.ndarray]:
    """Release blocks at ``speed`` times real time by the audio clock (samples delivered so far),
    not by a sleep per block, so the pace does not drift however long the stream."""
    start = time.monotonic()
    delivered = 0
    for block in blocks:
        delay = due_at(start, delivered, sample_rate, speed) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        delivered += len(block)
        yield block


def classify_due(classifier: Classifier, due: Iterable[tuple[StreamPipeline, list[Window]]]) -> None:
    """Classify and emit the windows due from any number of streams: one inference call per window length.

    The one step every driver shares: ``run_source`` with one stream, the daemon's scheduler with all."""
    by_length: dict[int, list[tuple[StreamPipeline, Window]]] = {}
    for pipeline, windows in due:
        for w in windows:
            by_length.setdefault(len(w.mel), []).append((pipeline, w))
    for items in by_length.values():
        for start in range(0, len(items), MAX_BATCH):  # stacked a batch at a time: the copy stays in cache
            batch = items[start : start + MAX_BATCH]
            probs = classifier.predict(np.stack([w.mel for _, w in batch]))
            for (pipeline, w), p in zip(batch, probs, strict=True):
                pipeline.emit([w], p[None])


def due_windows(pipelines: Iterable[StreamPipeline], encoder_batch: int = ENCODER_BATCH
                ) -> list[tuple[StreamPipeline, list[Window]]]:  # fmt: skip
    """Every stream's completed windows, the new frames of all their encoders stepped together (up to
    ``encoder_batch`` streams a call): what a scheduler hands ``classify_due``."""
    pipelines = list(pipelines)
    for p in pipelines:
        p.windower.prepare()
    step_together([p.windower.encoder for p in pipelines if p.windower.encoder is not None], encoder_batch)
    return [(p, p.windows(prepare=False)) for p in pipelines]


def finish(pipeline: StreamPipeline, classifier: Classifier, reason: str, source: dict) -> dict:
    """End a stream: classify what it still buffers, then publish its end-of-stream message."""
    classify_due(classifier, [(pipeline, pipeline.windows(final=True))])
    return pipeline.end(reason, source)


def run_source(source: Source, pipeline: StreamPipeline, classifier: Classifier, realtime: bool) -> dict:
    """Drive one source through the pipeline to its end; returns the end-of-stream message (messages go to
    the pipeline's publisher and outputs). ``realtime`` paces a file like a live source; live sources pace
    themselves."""
    for block in paced(source, pipeline.sample_rate) if realtime else source:
        pipeline.feed(block, source.newest_sample_time())
        classify_due(classifier, [(pipeline, pipeline.windows())])
        if pipeline.heartbeat_due():
            pipeline.heartbeat(source.status())
    return finish(pipeline, classifier, source.end_reason, source.status())
