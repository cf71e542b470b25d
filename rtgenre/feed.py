"""The ZeroMQ feed: framing, publisher and subscriber (the messages themselves: ``messages``).

Each message is one frame, ``genre.<stream> <json>``, so a CONFLATE subscriber works. The
publisher is an XPUB socket with non-blocking sends and libzmq's own per-subscriber queues: a
subscriber that stops reading loses messages from its own full queue and nobody else does (with
``XPUB_NODROP`` one full queue would refuse the message to every subscriber). The publisher cannot
see those per-queue losses; each subscriber sees its own as gaps in ``seq``. Reading the
subscription messages XPUB delivers also tells the publisher how many subscribers it has.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import zmq
import zmq.auth

from .errors import FeedError
from .messages import SCHEMA_VERSION, Envelope, to_json

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
TOPIC_PREFIX = "genre."
DRAIN_S = 0.05  # the (un)subscriptions are read at most this often: a poll per message cost a busy daemon a tenth
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
    """One frame; a non-finite number is a ValueError, never bare NaN (which is not JSON)."""
    return f"{TOPIC_PREFIX}{stream} ".encode() + json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def decode(frame: bytes) -> tuple[str, dict]:
    """A frame as (stream id, message)."""
    topic, _, payload = frame.partition(b" ")
    return topic.decode()[len(TOPIC_PREFIX) :], json.loads(payload)


@dataclass(frozen=True)
class Curve:
    """CurveZMQ for a publisher: its secret key file and a directory of the client public keys
    allowed to subscribe (``rtgenre keygen`` makes both). Anyone else receives nothing."""

    secret_key: str
    authorized_keys: str


def load_keypair(path: str) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise FeedError(f"{path}: cannot read a CurveZMQ key ({e})") from None
    if secret is None:
        raise FeedError(f"{path}: holds no secret key (use the .key_secret file rtgenre keygen wrote)")
    return public, secret


def load_public_key(path: str) -> bytes:
    try:
        return zmq.auth.load_certificate(path)[0]
    except (OSError, ValueError) as e:
        raise FeedError(f"{path}: cannot read a CurveZMQ public key ({e})") from None


class Publisher:
    """The feed's one XPUB socket: stamps each message with its stream's seq and never blocks on a subscriber."""

    def __init__(
        self, endpoint: str, hwm: int = 1000, heartbeat_s: float = 1.0, curve: Curve | None = None,
        connect: tuple[str, ...] = (),
    ):  # fmt: skip
        check_endpoint(endpoint)
        for e in connect:
            check_endpoint(e)
        self.endpoint = endpoint
        self.heartbeat_s = heartbeat_s
        self.sent = 0
        self.subscribers = 0
        self._seq: dict[str, int] = defaultdict(int)
        self._last: dict[str, float] = {}
        self._drained = float("-inf")
        ctx = zmq.Context.instance()
        self._auth = None
        self._sock = ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscription, so `subscribers` counts them all
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 2000)  # let queued end-of-stream messages out on close
        try:
            if curve is not None:
                self._secure(ctx, curve)
            self._sock.bind(endpoint)
            for e in connect:  # upstream proxies (rtgenre proxy) that gather several daemons
                self._sock.connect(e)
        except zmq.ZMQError as e:
            self.close()
            if e.errno == zmq.EADDRINUSE:
                raise FeedError(
                    f"endpoint {endpoint} is already in use (is another rtgenre publishing there?)"
                ) from None
            raise FeedError(f"cannot bind {endpoint}: {e.strerror}") from None
        except FeedError:
            self.close()
            raise

    def _secure(self, ctx: zmq.Context, curve: Curve) -> None:
        from zmq.auth.thread import ThreadAuthenticator  # here: it imports asyncio, 15 ms of every command's start-up

        public, secret = load_keypair(curve.secret_key)
        if not os.path.isdir(curve.authorized_keys):
            raise FeedError(f"{curve.authorized_keys}: no such directory of authorized client keys")
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=curve.authorized_keys)
        self._sock.curve_secretkey = secret
        self._sock.curve_publickey = public
        self._sock.curve_server = True

    def publish(self, stream: str, kind: str, body: dict) -> dict:
        """Stamp, encode and send one message without ever blocking; returns what was sent."""
        now = time.monotonic()
        if now - self._drained >= DRAIN_S:
            self._drain_subscriptions()
            self._drained = now
        msg = {**to_json(Envelope(SCHEMA_VERSION, kind, stream, self._seq[stream], time.time())), **body}
        self._seq[stream] += 1
        self._last[stream] = now
        try:
            frame = encode(stream, msg)
        except ValueError as e:  # a bug upstream; the pipeline contains NaN probabilities before they get here
            log.error("stream %s: %s message withheld: %s", stream, kind, e)
            return msg
        self._sock.send(frame, zmq.NOBLOCK)  # never blocks: a full subscriber queue drops its own copy
        self.sent += 1
        return msg

    def heartbeat_due(self, stream: str) -> bool:
        return time.monotonic() - self._last.get(stream, 0.0) >= self.heartbeat_s

    def wait_for_subscriber(self, timeout_s: float, count: int = 1) -> bool:
        """Block up to ``timeout_s`` until ``count`` subscriptions arrived (a publisher cannot reach late joiners)."""
        deadline = time.monotonic() + timeout_s
        while self.subscribers < count and time.monotonic() < deadline:
            if self._sock.poll(50):
                self._drain_subscriptions()
        return self.subscribers >= count

    def _drain_subscriptions(self) -> None:
        while self._sock.poll(0):
            frame = self._sock.recv()
            if frame[:1] == b"\x01":
                self.subscribers += 1
            elif frame[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def close(self) -> None:
        self._sock.close()
        if self._auth is not None:
            self._auth.stop()


def subscribe(
    endpoint: str, stream: str | None = None, timeout_s: float | None = None,
    server_key: str | None = None, client_key: str | None = None,
) -> Iterator[tuple[str, dict]]:  # fmt: skip
    """Yield (stream, message) from a feed; stops after ``timeout_s`` without a message.
    ``server_key`` (the publisher's public key) and ``client_key`` (our secret key) speak CurveZMQ."""
    check_endpoint(endpoint)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key or client_key:
        if not (server_key and client_key):
            sock.close()
            raise FeedError("CurveZMQ needs both the server's public key and this client's secret key")
        try:
            sock.curve_serverkey = load_public_key(server_key)
            sock.curve_publickey, sock.curve_secretkey = load_keypair(client_key)
        except FeedError:
            sock.close()
            raise
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


def keygen(directory: str, name: str) -> tuple[str, str]:
    """Write a CurveZMQ key pair: ``name.key`` (public, to share) and ``name.key_secret``."""
    os.makedirs(directory, exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    return public, secret


def proxy(frontend: str, backend: str) -> None:
    """Forward every daemon that connects to ``frontend`` to the subscribers of ``backend``."""
    ctx = zmq.Context.instance()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    try:
        for sock, endpoint in ((xsub, check_endpoint(frontend)), (xpub, check_endpoint(backend))):
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as e:
                raise FeedError(f"cannot bind {endpoint}: {e.strerror}") from None
        zmq.proxy(xsub, xpub)
    except zmq.ContextTerminated:
        pass
    finally:
        xsub.close(0)
        xpub.close(0)
