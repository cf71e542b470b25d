"""The daemon's control socket: requests in, one JSON reply out, whatever a client sends.

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

import zmq

from .errors import RtgenreError
from .feed import check_endpoint

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
