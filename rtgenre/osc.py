"""Open Sound Control output, for the live-visual and lighting tools that speak OSC rather than ZeroMQ
(TouchDesigner, Max/MSP, Resolume, QLab, SuperCollider).

Every window and heartbeat of stream ``<s>`` becomes, at each target ``udp://HOST:PORT``::

    /rtgenre/<s>/genre   <smoothed genre, "" while none> <confidence 0-1>
    /rtgenre/<s>/probs   <one float per genre, in the order of /rtgenre/<s>/labels>
    /rtgenre/<s>/state   <"genre" | "uncertain" | "silence">
    /rtgenre/<s>/level   <window level, dBFS>            (windows only)
    /rtgenre/<s>/labels  <the genre names>                (first, then at most once a second: late listeners
                                                           learn the order of /probs)
    /rtgenre/<s>/eos     <reason> <genre, "" if none> <confidence>   (once, when the stream ends)

Datagrams go out on a non-blocking socket: a receiver that is absent or slow costs the pipeline nothing
(a datagram the kernel cannot take is dropped and counted, never waited for).
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Sequence

from pythonosc.osc_message_builder import OscMessageBuilder

from .errors import RtgenreError

log = logging.getLogger(__name__)

LABELS_EVERY_S = 1.0
_URL = re.compile(r"^udp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def parse_osc_url(url: str) -> tuple[str, int]:
    m = _URL.match(url)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise RtgenreError(f"OSC target {url!r}: expected udp://HOST:PORT")
    return m.group(1).strip("[]"), int(m.group(2))


def datagram(address: str, *args: str | float) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a, "s" if isinstance(a, str) else "f")
    return b.build().dgram


class OscOutput:
    """Sends a stream's feed messages as OSC to every target, never blocking."""

    def __init__(self, urls: Sequence[str], labels: Sequence[str]):
        self.targets = []
        for url in dict.fromkeys(urls):
            host, port = parse_osc_url(url)
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            except OSError as e:
                raise RtgenreError(f"OSC target {url!r}: {e.strerror or e}") from None
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.setblocking(False)
            self.targets.append((sock, info[4]))
        self.labels = tuple(labels)
        self.dropped = 0
        self._labels_sent = -LABELS_EVERY_S

    def __bool__(self) -> bool:
        return bool(self.targets)

    def send(self, msg: dict) -> None:
        """The OSC messages of one feed message (a dict as published)."""
        base = f"/rtgenre/{msg['stream']}"
        kind = msg["type"]
        if kind == "eos":
            v = msg["verdict"]
            self._out(datagram(f"{base}/eos", msg["reason"], v["genre"] or "", float(v["confidence"])))
            return
        probs = msg["smoothed"] or {}
        out = [
            datagram(f"{base}/genre", msg["smoothed_top"] or "", float(msg["smoothed_confidence"])),
            datagram(f"{base}/probs", *(float(probs.get(label, 0.0)) for label in self.labels)),
            datagram(f"{base}/state", msg["state"]),
        ]
        if kind == "window":
            out.append(datagram(f"{base}/level", float(msg["level_dbfs"])))
        if time.monotonic() - self._labels_sent >= LABELS_EVERY_S:
            self._labels_sent = time.monotonic()
            out.insert(0, datagram(f"{base}/labels", *self.labels))
        for d in out:
            self._out(d)

    def _out(self, dgram: bytes) -> None:
        for sock, addr in self.targets:
            try:
                sock.sendto(dgram, addr)
            except OSError as e:  # a full buffer, or ICMP "port unreachable" from an earlier datagram
                if self.dropped == 0:
                    log.warning("OSC to %s: %s (further drops are counted, not logged)", addr, e.strerror or e)
                self.dropped += 1

    def close(self) -> None:
        for sock, _ in self.targets:
            sock.close()
