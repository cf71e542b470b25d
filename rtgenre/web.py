"""The live web page: every stream's genre as it happens, and a form that classifies an uploaded file.

Served by rtgenre itself (the standard library's threading HTTP server, every asset in the package: no
CDN, works offline). Messages reach browsers over Server-Sent Events from ``Hub``, which receives them in
process like any other pipeline output: each browser has a bounded queue that drops its oldest message
when full, so a slow or stalled browser never slows a stream, and a page opened late gets every stream's
latest state at once.
"""

from __future__ import annotations

import json
import logging
import queue
import tempfile
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .audio import AUDIO_SUFFIXES
from .errors import RtgenreError

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("page")  # index.html, app.js, style.css
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
QUEUE = 256  # messages a browser may fall behind before its oldest are dropped
KEEPALIVE_S = 15.0


class Hub:
    """Fans every message out to the connected browsers and remembers each stream's latest one."""

    def __init__(self):
        self.latest: dict[str, dict] = {}
        self._clients: set[queue.Queue] = set()
        self._lock = threading.Lock()

    def send(self, msg: dict) -> None:
        with self._lock:
            if msg["type"] == "eos":
                self.latest.pop(msg["stream"], None)
            else:
                self.latest[msg["stream"]] = msg
            for q in self._clients:
                _offer(q, msg)

    def connect(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(QUEUE)
        with self._lock:
            for msg in self.latest.values():
                _offer(q, msg)
            self._clients.add(q)
        return q

    def disconnect(self, q: queue.Queue) -> None:
        with self._lock:
            self._clients.discard(q)


def _offer(q: queue.Queue, msg: dict) -> None:
    while True:
        try:
            q.put_nowait(msg)
            return
        except queue.Full:
            try:
                q.get_nowait()  # this browser is behind: it loses its oldest message, nobody else anything
            except queue.Empty:
                pass


def parse_address(spec: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1)."""
    host, _, port = spec.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number < 65536:
        raise RtgenreError(f"web address {spec!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", number


class WebServer:
    """The page, its assets, ``/events`` (SSE) and ``POST /classify`` (the file in the body)."""

    def __init__(self, address: str, port: int, hub: Hub, classify: Callable[[Path], dict], max_upload_mb: float):
        handler = type("Handler", (_Handler,), {"hub": hub, "classify": staticmethod(classify),
                                                "max_upload": int(max_upload_mb * 1e6),
                                                "classify_lock": threading.Lock()})  # fmt: skip
        try:
            self.httpd = ThreadingHTTPServer((address, port), handler)
        except OSError as e:
            raise RtgenreError(f"web page on {address}:{port}: {e.strerror}") from None
        self.httpd.daemon_threads = True
        self.address, self.port = self.httpd.server_address[:2]
        threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True).start()
        log.info("web page on http://%s:%d/", self.address, self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    hub: Hub
    classify: Callable[[Path], dict]
    max_upload: int
    classify_lock: threading.Lock
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:
        log.debug("web: " + fmt, *args)

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        path = self.path.split("?")[0]
        if path == "/events":
            return self._events()
        asset = ASSETS / ("index.html" if path == "/" else path.lstrip("/"))
        if asset.parent != ASSETS or asset.suffix not in TYPES or not asset.is_file():
            return self._reply(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        self._reply(HTTPStatus.OK, asset.read_bytes(), TYPES[asset.suffix])

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/classify":
            return self._reply(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if not 0 < length <= self.max_upload:
            self.close_connection = True
            mb = self.max_upload / 1e6
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else HTTPStatus.BAD_REQUEST,
                              {"error": f"upload must be 1 byte to {mb:g} MB, not {length} bytes"})  # fmt: skip
        name = Path(self.headers.get("X-Filename", "upload")).name[:200] or "upload"
        suffix = Path(name).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="rtgenre-upload-") as tmp:  # removed whatever happens
            file = Path(tmp) / f"upload{suffix if suffix in AUDIO_SUFFIXES else ''}"
            remaining = length
            with file.open("wb") as f:
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return self._json(HTTPStatus.BAD_REQUEST, {"error": "upload cut short"})
                    f.write(chunk)
                    remaining -= len(chunk)
            try:
                with self.classify_lock:  # one upload at a time: the streams keep their share of the CPU
                    result = self.classify(file)
            except RtgenreError as e:
                return self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e).replace(str(file), name)})
        self._json(HTTPStatus.OK, {"file": name, **result})

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        q = self.hub.connect()
        try:
            while True:
                try:
                    msg = q.get(timeout=KEEPALIVE_S)
                    self.wfile.write(b"data: " + json.dumps(msg, separators=(",", ":")).encode() + b"\n\n")
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
        except OSError:  # the browser went away
            pass
        finally:
            self.hub.disconnect(q)
            self.close_connection = True

    def _json(self, status: HTTPStatus, body: dict) -> None:
        self._reply(status, json.dumps(body).encode(), "application/json")

    def _reply(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)


def upload_result(model, path: Path) -> dict:
    """``model`` (an ``api.Model``) on an uploaded file, as the page shows it: the verdict, and each window's
    probabilities in label order."""
    result = model.classify(path)
    rows = [[round(float(x), 6) if x == x else None for x in p] for p in result.window_probs]  # NaN: silent
    return {**result.to_json(), "labels": list(model.labels), "window_times": result.window_times,
            "window_probs": rows}  # fmt: skip
