"""Many streams on one model: the `serve` daemon.

Each stream's source runs on its own thread and only feeds its pipeline's audio ring. One
scheduler thread turns every stream's buffered audio into windows, batches all due windows into
one inference call, then smooths and publishes. A stream that fails is reported on the feed and
retried with backoff; nothing it does can stop the others. SIGHUP reloads the config (an invalid
one is rejected and the old one keeps running), SIGTERM ends every stream with an end-of-stream
message and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .api import Model, load_model
from .config import ConfigError, ServeConfig, StreamSection, load_config
from .control import Commands, ControlSocket
from .errors import RtgenreError
from .feed import Curve, Publisher, check_stream_id
from .latency import percentile_ms
from .messages import to_json
from .metrics import serve_metrics
from .model import Bundle, Classifier, release_encoder_sessions
from .notify import notify, watchdog_interval
from .pacer import Pacer
from .pipeline import classify_due, due_windows, finish
from .runner import StreamRunner
from .web import Hub, WebServer, upload_result

log = logging.getLogger(__name__)

TICK_S = 0.01
SNAPSHOT_S = 1.0  # how often the metrics endpoint's view of the status is refreshed
SLICE_STREAMS = 64  # streams per scheduler slice: the control socket is answered between slices
SKIP_QUIET_S = 10.0  # skips after this long without any start a new burst, logged again


class Daemon:
    """`rtgenre serve`: every configured stream on one model, one batching scheduler loop, reload on SIGHUP,
    end-of-stream for all on SIGTERM, the control socket and metrics."""

    def __init__(self, config_path: str | Path):
        self.config_path = Path(config_path)
        self.config = load_config(self.config_path)
        self.bundle, self.classifier = self._load_model(self.config)  # the one loader: api.load_model
        for s in self.config.streams:
            check_stream_id(s.id)  # every stream id is checked before anything is bound
        self.started = time.time()
        self.publisher = self._publisher(self.config)
        try:
            self.control = ControlSocket(self.config.control.endpoint, Commands(self))
        except RtgenreError:
            self.publisher.close()
            raise
        self.runners: dict[str, StreamRunner] = {}
        self.pacer = Pacer()  # every file stream's blocks, from one thread
        self.ended: dict[str, dict] = {}  # streams that finished: their last status
        self.reloads = 0
        self._skips_seen, self._last_skip = 0, float("-inf")  # skipped windows logged, once per burst
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._snapshot = self.status()
        self.hub = Hub()
        self.web: WebServer | None = None
        try:
            if self.config.metrics.port:
                try:
                    serve_metrics(self.config.metrics.address, self.config.metrics.port, self._status_snapshot)
                except OSError as e:
                    raise RtgenreError(
                        f"metrics on {self.config.metrics.address}:{self.config.metrics.port}: {e.strerror}"
                    ) from None
            w = self.config.web
            if w.port:
                self.web = WebServer(w.address, w.port, self.hub, self._classify_upload, w.max_upload_mb)
        except RtgenreError:
            self.publisher.close()
            self.control.close()
            raise

    def _classify_upload(self, path: Path) -> dict:
        """The web page's upload form: the file through the daemon's model (an ORT session runs concurrently)."""
        return upload_result(Model(self.bundle, self.classifier), path)

    # -- setup ----------------------------------------------------------------------------
    @staticmethod
    def _load_model(cfg: ServeConfig) -> tuple[Bundle, Classifier]:
        model = load_model(cfg.model, cfg.provider, cfg.threads)
        return model.bundle, model.classifier

    @staticmethod
    def _publisher(cfg: ServeConfig) -> Publisher:
        f = cfg.feed
        curve = None
        if f.curve_secret_key or f.curve_authorized_keys:
            if not (f.curve_secret_key and f.curve_authorized_keys):
                raise ConfigError("feed: curve_secret_key and curve_authorized_keys go together")
            curve = Curve(f.curve_secret_key, f.curve_authorized_keys)
        return Publisher(f.endpoint, f.hwm, f.heartbeat, curve, tuple(f.connect))

    def _start(self, section: StreamSection) -> None:
        runner = StreamRunner(section, self.bundle, self.publisher, self.classifier.provider, self.config.osc,
                              self.hub, self.config.backlog, self.pacer)  # fmt: skip
        self.runners[section.id] = runner
        self.ended.pop(section.id, None)
        runner.start()

    def _end(self, runner: StreamRunner, reason: str) -> None:
        """Stop a stream and publish its end, classifying what it still had buffered."""
        runner.stop()
        runner.join(1.0)
        runner.state = "ended"  # not "running": status and rtgenre_stream_up must say it is gone
        finish(runner.pipeline, self.classifier, reason, runner.status())
        if runner.osc:
            runner.osc.close()
        self.ended[runner.id] = {**runner.status(), **to_json(runner.pipeline.stats()), "reason": reason}
        del self.runners[runner.id]

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (SIGHUP reloads the config); returns the exit code."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        for section in self.config.streams:
            self._start(section)
        notify("READY=1", f"STATUS={self._summary()}")
        log.info(
            "serving %d streams with %s on %s", len(self.runners), self.classifier.provider, self.publisher.endpoint
        )
        ping = watchdog_interval()
        last_ping = last_snapshot = 0.0
        while not self._stop.is_set():
            self._tick()
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            if self.config.metrics.port and time.monotonic() - last_snapshot >= SNAPSHOT_S:
                self._snapshot, last_snapshot = self.status(), time.monotonic()  # only metrics read it
            self.control.poll(int(TICK_S * 1000))
            if ping and time.monotonic() - last_ping >= ping:
                notify("WATCHDOG=1", f"STATUS={self._summary()}")
                last_ping = time.monotonic()
        notify("STOPPING=1")
        for runner in list(self.runners.values()):
            runner.stop()
        for runner in list(self.runners.values()):
            self._end(runner, "shutdown")
        self.publisher.close()
        self.control.close()
        if self.web is not None:
            self.web.close()
        return 0

    def _tick(self) -> None:
        """One scheduler step: the due windows of every stream, a slice of streams at a time (the control socket
        answered between slices), each slice's encoder steps and windows batched; then ends and heartbeats."""
        runners = list(self.runners.values())
        for start in range(0, len(runners), SLICE_STREAMS):
            part = [r.pipeline for r in runners[start : start + SLICE_STREAMS]]
            classify_due(self.classifier, due_windows(part, self.config.encoder_batch))
            self.control.poll(0)
        self._log_skips(runners)
        for runner in runners:
            if runner.finished:
                self._end(runner, "end of file")
            elif runner.pipeline.heartbeat_due():
                runner.pipeline.heartbeat(runner.status())

    def _log_skips(self, runners: list[StreamRunner]) -> None:
        """One line per burst of skipped audio (the first skip after a quiet spell); the counts are in status."""
        skipped = sum(r.pipeline.windower.skipped_windows for r in runners)
        if skipped > self._skips_seen:
            now = time.monotonic()
            if now - self._last_skip >= SKIP_QUIET_S:
                behind = sum(r.pipeline.windower.skipped_windows > 0 for r in runners)
                log.warning("the daemon is behind: skipping audio older than %g s (%d of %d streams so far; "
                            "skipped_windows in status)", self.config.backlog, behind, len(runners))  # fmt: skip
            self._skips_seen, self._last_skip = skipped, now

    # -- reload ---------------------------------------------------------------------------
    def reload(self) -> None:
        """Apply a changed config; a config or model that does not load leaves everything as it was."""
        try:
            new = load_config(self.config_path)
            for s in new.streams:
                check_stream_id(s.id)
            model_changed = (new.model, new.provider, new.threads) != (
                self.config.model, self.config.provider, self.config.threads)  # fmt: skip
            loaded = self._load_model(new) if model_changed else None
        except RtgenreError as e:
            log.error("reload rejected, the running config stays: %s", e)
            notify(f"STATUS=reload rejected: {e}")
            return
        for section in ("feed", "control", "metrics"):
            if getattr(new, section) != getattr(self.config, section):
                log.warning("config: changes to '%s' take effect at the next restart", section)
        restart_all = False
        if loaded is not None:
            bundle, classifier = loaded
            old = self.bundle.meta
            restart_all = (bundle.meta.frontend, bundle.meta.labels, bundle.meta.window_s) != (
                old.frontend, old.labels, old.window_s)  # fmt: skip
            self.bundle, self.classifier = bundle, classifier
            release_encoder_sessions(keep=bundle)
            log.info("model reloaded: %s on %s", bundle.meta.name, classifier.provider)
        wanted = {s.id: s for s in new.streams}
        for sid, runner in list(self.runners.items()):
            if sid not in wanted:
                self._end(runner, "removed from the config")
            elif restart_all or wanted[sid] != runner.section:
                self._end(runner, "reconfigured")
        for sid, section in wanted.items():
            if sid not in self.runners and (sid not in self.ended or section != self._ended_section(sid)):
                self._start(section)
        self.config = replace(new, feed=self.config.feed, control=self.config.control, metrics=self.config.metrics)
        self.reloads += 1
        notify(f"STATUS=reloaded; {self._summary()}")
        log.info("config reloaded: %s", self._summary())

    def _ended_section(self, sid: str) -> StreamSection | None:
        return next((s for s in self.config.streams if s.id == sid), None)

    # -- status ---------------------------------------------------------------------------
    def status(self) -> dict:
        """What `rtgenre status` and the metrics endpoint read: daemon, feed and every stream, live or ended."""
        streams = {}
        for sid, r in self.runners.items():
            current = to_json(r.pipeline.current())
            streams[sid] = {**r.status(), **to_json(r.pipeline.stats()), "genre_state": current.pop("state"),
                            **current, "latency_histogram": r.pipeline.latency_histogram.to_json()}  # fmt: skip
        for sid, s in self.ended.items():
            streams.setdefault(sid, s)
        p = self.publisher
        return {
            "pid": os.getpid(),
            "model": self.bundle.meta.name,
            "provider": self.classifier.provider,
            "uptime_s": round(time.time() - self.started, 1),
            "reloads": self.reloads,
            "feed": {"endpoint": p.endpoint, "sent": p.sent, "subscribers": p.subscribers},
            "streams": streams,
            "latency_ms_p50": percentile_ms(self._latencies(), 50),
            "latency_ms_p99": percentile_ms(self._latencies(), 99),
        }

    def _status_snapshot(self) -> dict:
        """The status as of the last tick, for threads other than the scheduler (metrics)."""
        return self._snapshot

    def _latencies(self) -> np.ndarray:
        return np.concatenate([np.zeros(0)] + [r.pipeline.latencies.values() for r in self.runners.values()])

    def _summary(self) -> str:
        running = sum(r.state == "running" for r in self.runners.values())
        return f"{running}/{len(self.runners)} streams running, {self.classifier.provider}"
