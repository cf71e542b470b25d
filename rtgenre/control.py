"""The daemon's control socket and the commands it answers: requests in, one JSON reply out, whatever a
client sends.

A ROUTER socket rather than REP: REP has a strict recv/send state machine, so a request of two
frames left it unable to reply and killed the daemon. ROUTER takes any frame shape (each gets an
error reply) and lets a slow request (encoding lyrics) finish on a worker thread and be answered
later, so the batching loop never waits for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import zmq

from .config import LyricsSection, ServeConfig, check_number
from .errors import RtgenreError
from .feed import check_endpoint
from .lyrics import LyricModel
from .model import Bundle
from .runner import StreamRunner

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 256 * 1024  # a song's lyrics are a few kB; anything larger is refused with an error reply
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # libzmq drops a peer sending more: bounds the memory one client can take

Reply = dict | Future  # a reply now, or a future one from the worker
Handler = Callable[[dict], Reply]


def parse(frames: list[bytes]) -> dict:
    """The request in a message body, or ValueError saying what is wrong with it."""
    if len(frames) != 1:
        raise ValueError(f"a request is one frame, not {len(frames)}")
    if len(frames[0]) > MAX_REQUEST_BYTES:
        raise ValueError(f"request of {len(frames[0])} bytes is over the {MAX_REQUEST_BYTES}-byte limit")
    try:
        request = json.loads(frames[0])
    except RecursionError:
        raise ValueError("request JSON is nested too deeply") from None
    if not isinstance(request, dict):
        raise ValueError('a request is a JSON object such as {"cmd": "status"}')
    return request


class ControlSocket:
    """Answers each request through ``handler``; a handler may return a Future (work on the worker thread)."""

    def __init__(self, endpoint: str, handler: Handler):
        self.endpoint = endpoint
        self._handler = handler
        self._sock = zmq.Context.instance().socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._pending: list[tuple[list[bytes], Future]] = []
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="control")
        try:
            self._sock.bind(check_endpoint(endpoint))
        except zmq.ZMQError as e:
            self.close()
            raise RtgenreError(f"control endpoint {endpoint}: {e.strerror}") from None

    def poll(self, timeout_ms: int) -> None:
        """Answer what has arrived (waiting up to ``timeout_ms``) and what the worker has finished."""
        if self._sock.poll(timeout_ms):
            while self._sock.poll(0):
                self._receive(self._sock.recv_multipart())
        for envelope, future in [p for p in self._pending if p[1].done()]:
            self._pending.remove((envelope, future))
            try:
                reply = future.result()
            except Exception as e:  # noqa: BLE001 - a failed request is an error reply, never a dead daemon
                reply = self._failure(e)
            self._send(envelope, reply)

    def _receive(self, frames: list[bytes]) -> None:
        # a REQ client's envelope is [identity, b""]; a DEALER may send [identity, body] with no delimiter
        cut = frames.index(b"", 1) + 1 if b"" in frames[1:] else 1
        envelope, body = frames[:cut], frames[cut:]
        try:
            reply = self._handler(parse(body))
        except ValueError as e:
            reply = {"error": f"bad request: {e}"}
        except Exception as e:  # noqa: BLE001
            reply = self._failure(e)
        if isinstance(reply, Future):
            self._pending.append((envelope, reply))
        else:
            self._send(envelope, reply)

    @staticmethod
    def _failure(e: Exception) -> dict:
        if isinstance(e, RtgenreError | ValueError):
            return {"error": str(e)}
        log.exception("control request failed")
        return {"error": f"internal error: {type(e).__name__}: {e}"}

    def _send(self, envelope: list[bytes], reply: dict) -> None:
        try:
            self._sock.send_multipart([*envelope, json.dumps(reply, allow_nan=False).encode()], zmq.NOBLOCK)
        except zmq.ZMQError:  # the client left, or does not read its replies: its loss alone
            pass

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
        self._sock.close()


class Served(Protocol):
    """What the commands need of the daemon (``daemon.Daemon`` is one): the control module does not import it."""

    runners: dict[str, StreamRunner]
    config: ServeConfig
    bundle: Bundle
    control: ControlSocket

    def status(self) -> dict: ...


class Commands:
    """The control protocol over a running daemon: ``status``, and ``lyrics`` for a live stream.

    The lyric model loads on the first lyrics request: it is large, and most daemons never use it.
    """

    def __init__(self, daemon: Served):
        self._daemon = daemon
        self._lyric_model: LyricModel | None = None

    def __call__(self, request: dict) -> Reply:
        cmd = request.get("cmd")
        if cmd == "status":
            return self._daemon.status()
        if cmd == "lyrics":
            return self.lyrics(request)
        return {"error": f"unknown command {str(cmd)[:64]!r} (known: status, lyrics)"}

    def lyrics(self, request: dict) -> Reply:
        """``{"cmd": "lyrics", "stream": ID, "text": "..." | null, "weight": W}``: the lyrics of
        what a live stream plays now (null clears them); W defaults to the config's lyrics.weight.

        Encoding runs on the control worker thread, so the streams keep their cadence meanwhile; a clear
        goes the same way, so it never overtakes lyrics still being encoded."""
        d = self._daemon
        stream, text = request.get("stream"), request.get("text")
        runner = d.runners.get(stream) if isinstance(stream, str) else None
        if runner is None:
            return {"error": f"no running stream {str(stream)[:64]!r}"}
        if text is not None and not isinstance(text, str):
            raise ValueError("text must be a string, or null to clear the lyrics")
        weight = check_number(request.get("weight", d.config.lyrics.weight), LyricsSection, "weight")
        pipeline, labels, model_path = runner.pipeline, d.bundle.meta.labels, d.config.lyrics.model

        def encode() -> dict:  # on the worker thread: the only one that touches the lyric model
            if text is None:
                pipeline.lyrics = None
            else:
                if self._lyric_model is None:
                    self._lyric_model = LyricModel(model_path)
                pipeline.lyrics = self._lyric_model.evidence(text, labels, weight)
            return {"ok": True, "stream": runner.id, "lyrics": text is not None}

        return d.control.worker.submit(encode)
