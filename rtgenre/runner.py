"""One configured stream's source on a thread of its own, reopened with backoff when it fails (a file's blocks
are delivered by the daemon's one ``Pacer`` thread while its runner sleeps).

The runner only feeds its pipeline's audio ring; the daemon's scheduler thread does everything
after that (windows, batched inference, smoothing, publishing), so a source that blocks or fails
can stall nothing but itself.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from .audio import FfmpegSource, FileSource, Source
from .backoff import Backoff
from .capture import Capture, select_device
from .config import StreamSection
from .errors import RtgenreError
from .feed import Publisher
from .model import Bundle
from .osc import OscOutput
from .pacer import Pacer
from .pipeline import StreamPipeline
from .web import Hub

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# a file stream's blocks: a live source's latency is not at stake, and each block wakes its thread and takes
# the GIL (hundreds of streams at 0.02 s blocks were 10 000 wake-ups a second, starving the scheduler)
FILE_BLOCK_S = 0.25


class StreamRunner:
    """One stream: its source on a thread of its own, reopened with backoff when it fails."""

    def __init__(self, section: StreamSection, bundle: Bundle, publisher: Publisher, provider: str,
                 osc: list[str] = (), hub: Hub | None = None, backlog_s: float | None = None,
                 pacer: Pacer | None = None):  # fmt: skip
        self.section = section
        self.pacer = pacer or Pacer()  # paces a file stream: the daemon's one for all of them
        self.pipeline = StreamPipeline(bundle, section, publisher, provider, backlog_s)
        targets = [*osc, *section.osc]
        self.osc = OscOutput(targets, bundle.meta.labels) if targets else None
        self.pipeline.outputs += [o.send for o in (self.osc, hub) if o is not None]
        self.state = "starting"
        self.error: str | None = None
        self.backoff = Backoff(BACKOFF_S)  # its delays start over once a source delivers; status reports the total
        self.finished = False  # a file without loop reached its end
        self._source: Source | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{section.id}", daemon=True)

    @property
    def id(self) -> str:
        return self.section.id

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._source is not None:
            self._source.stop()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def status(self) -> dict:
        """The source's own status (a capture's device state, say) while it runs, else the runner's."""
        source = self._source.status() if self._source is not None else {}
        state = source.get("state", self.state) if self.state == "running" else self.state
        osc = {"osc_dropped": self.osc.dropped} if self.osc else {}  # datagrams the kernel would not take
        return {
            "kind": self.section.source,
            **source,
            "state": state,
            "error": self.error,
            "failures": self.backoff.total,
            **osc,
        }

    def _feed(self, block: np.ndarray) -> None:
        self.pipeline.feed(block, self._source.newest_sample_time())
        self.backoff.reset()  # it delivers: the next failure waits the shortest delay again

    def _open(self) -> Source:
        s, sr = self.section, self.pipeline.sample_rate
        if s.source == "device":
            return Capture(select_device(s.device), sr)
        if s.source == "file":
            return FileSource(s.path, sr, block_seconds=FILE_BLOCK_S)
        return FfmpegSource(s.url, sr, stall_s=s.stall_timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._source = source = self._open()
                if self._stop.is_set():  # stopped while it opened: stop() saw no source to stop
                    source.stop()
                self.state, self.error = "running", None
                if self.section.source == "file":
                    self.pacer.run(source, self._feed, self.pipeline.sample_rate, self.section.speed)
                else:
                    for block in source:  # a live source paces itself
                        if self._stop.is_set():
                            return
                        self._feed(block)
                if self._stop.is_set():
                    return
                if self.section.source == "file" and not self.section.loop:
                    self.state, self.finished = "ended", True
                    return
                if self.section.source == "url":
                    raise RtgenreError(f"{self.section.url}: the stream ended")
            except RtgenreError as e:
                delay = self.backoff.next_delay()
                self.state, self.error = "retrying", str(e)
                log.warning("stream %s: %s; retrying in %g s", self.id, e, delay)
                self._stop.wait(delay)
