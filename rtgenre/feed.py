"""The ZeroMQ feed: message schema, publisher and subscriber.

Each message is one frame, ``genre.<stream> <json>``, so a CONFLATE subscriber works. The
publisher is an XPUB socket with ``XPUB_NODROP`` and non-blocking sends: a slow or absent
subscriber can never block the pipeline, and every message that a full queue refuses is counted
in ``dropped`` instead of vanishing. Reading the subscription messages XPUB delivers also tells
the publisher how many subscribers it has.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator

import zmq

from .errors import FeedError

SCHEMA_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
TOPIC_PREFIX = "genre."
_ENDPOINT = re.compile(r"^(tcp://(\*|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})|ipc://.+)$")
_STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_endpoint(endpoint: str) -> str:
    m = _ENDPOINT.match(endpoint)
    if not m or (m.group(3) and not 0 < int(m.group(3)) < 65536):
        raise FeedError(f"malformed endpoint {endpoint!r}: expected tcp://HOST:PORT or ipc://PATH")
    return endpoint


def check_stream_id(stream: str) -> str:
    if not _STREAM_ID.match(stream):
        raise FeedError(f"invalid stream id {stream!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return stream


def encode(stream: str, body: dict) -> bytes:
    return f"{TOPIC_PREFIX}{stream} ".encode() + json.dumps(body, separators=(",", ":")).encode()


def decode(frame: bytes) -> tuple[str, dict]:
    topic, _, payload = frame.partition(b" ")
    return topic.decode()[len(TOPIC_PREFIX) :], json.loads(payload)


class Publisher:
    def __init__(self, endpoint: str, hwm: int = 1000, heartbeat_s: float = 1.0):
        check_endpoint(endpoint)
        self.endpoint = endpoint
        self.heartbeat_s = heartbeat_s
        self.sent = 0
        self.dropped = 0
        self.subscribers = 0
        self._seq: dict[str, int] = defaultdict(int)
        self._last: dict[str, float] = {}
        self._sock = zmq.Context.instance().socket(zmq.XPUB)
        self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 2000)  # let queued end-of-stream messages out on close
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self._sock.close(0)
            if e.errno == zmq.EADDRINUSE:
                raise FeedError(
                    f"endpoint {endpoint} is already in use (is another rtgenre publishing there?)"
                ) from None
            raise FeedError(f"cannot bind {endpoint}: {e.strerror}") from None

    def publish(self, stream: str, kind: str, body: dict) -> dict:
        """Stamp, encode and send one message without ever blocking; returns what was sent."""
        self._drain_subscriptions()
        msg = {
            "v": SCHEMA_VERSION,
            "type": kind,
            "stream": stream,
            "seq": self._seq[stream],
            "wall": time.time(),
            **body,
        }
        self._seq[stream] += 1
        self._last[stream] = time.monotonic()
        try:
            self._sock.send(encode(stream, msg), zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1
        return msg

    def heartbeat_due(self, stream: str) -> bool:
        return time.monotonic() - self._last.get(stream, 0.0) >= self.heartbeat_s

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` until someone subscribes (a publisher cannot reach late joiners)."""
        deadline = time.monotonic() + timeout_s
        while self.subscribers == 0 and time.monotonic() < deadline:
            if self._sock.poll(50):
                self._drain_subscriptions()
        return self.subscribers > 0

    def _drain_subscriptions(self) -> None:
        while self._sock.poll(0):
            frame = self._sock.recv()
            if frame[:1] == b"\x01":
                self.subscribers += 1
            elif frame[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def close(self) -> None:
        self._sock.close()


def subscribe(endpoint: str, stream: str | None = None, timeout_s: float | None = None) -> Iterator[tuple[str, dict]]:
    """Yield (stream, message) from a feed; stops after ``timeout_s`` without a message."""
    check_endpoint(endpoint)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    prefix = f"{TOPIC_PREFIX}{check_stream_id(stream)} " if stream else TOPIC_PREFIX
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as e:
        sock.close()
        raise FeedError(f"cannot connect to {endpoint}: {e.strerror}") from None
    try:
        while True:
            if not sock.poll(None if timeout_s is None else int(timeout_s * 1000)):
                return
            yield decode(sock.recv())
    finally:
        sock.close()


def request(endpoint: str, body: dict, timeout_s: float) -> dict:
    """One request to a daemon's control socket (REQ/REP); a clear error if nobody answers."""
    check_endpoint(endpoint)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(json.dumps(body).encode())
        if not sock.poll(int(timeout_s * 1000)):
            raise FeedError(f"no rtgenre daemon answered on {endpoint} within {timeout_s:g} s")
        return json.loads(sock.recv())
    finally:
        sock.close()
