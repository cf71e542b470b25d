"""A real `rtgenre serve` child process for the tests that need one, and a subscriber collecting its feed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from helpers import free_port

from rtgenre.feed import request, subscribe


class Served:
    """A `rtgenre serve` child with its own ports, and a subscriber collecting its feed."""

    def __init__(self, tmp_path, streams: list[dict], env: dict | None = None, web_port: int = 0,
                 feed_port: int | None = None, cpus: set[int] | None = None):  # fmt: skip
        self.feed = f"tcp://127.0.0.1:{feed_port or free_port()}"
        self.control = f"tcp://127.0.0.1:{free_port()}"
        self.web_port = web_port
        self.config = tmp_path / "config.yaml"
        self.write(streams)
        self.messages: list[tuple[str, dict]] = []
        self._sub = threading.Thread(target=self._collect, daemon=True)
        self._sub.start()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtgenre", "serve", "--config", str(self.config)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),  # as `taskset` pins it
        )
        self.wait_ready()

    def write(self, streams: list[dict]) -> None:
        cfg = {"feed": {"endpoint": self.feed, "heartbeat": 0.5}, "control": {"endpoint": self.control},
               "metrics": {"port": 0}, "web": {"port": self.web_port}, "streams": streams}  # fmt: skip
        self.config.write_text(json.dumps(cfg))  # JSON is YAML

    def _collect(self) -> None:
        for item in subscribe(self.feed, timeout_s=30):
            self.messages.append(item)

    def wait_ready(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                return request(self.control, {"cmd": "status"}, 0.5)
            except Exception:
                time.sleep(0.2)
        raise AssertionError("the daemon never answered")

    def status(self) -> dict:
        return request(self.control, {"cmd": "status"}, 5)

    def of(self, stream: str, kind: str | None = None) -> list[dict]:
        return [m for s, m in list(self.messages) if s == stream and (kind is None or m["type"] == kind)]

    def wait_for(self, predicate, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)

    def wait_log(self, text: str, timeout: float = 20) -> None:
        """Until the daemon's stderr has logged ``text`` (its stderr is read from then on, into ``self.log``)."""
        if not hasattr(self, "log"):
            self.log: list[str] = []
            threading.Thread(target=lambda: self.log.extend(iter(self.proc.stderr.readline, "")), daemon=True).start()
        self.wait_for(lambda: any(text in line for line in list(self.log)), timeout)

    def stop(self) -> float:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        return time.monotonic() - t0


def track(data, genre: str, n: int = 0) -> str:
    return str(sorted((data / "gtzan" / genre).glob("*.ogg"))[n])
