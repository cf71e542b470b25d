"""Helpers shared by the tests: real audio files, the real command line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def require_data() -> Path:
    """The shared data folder: skipped with a reason in a user's clone, a failure under CI."""
    if DATA.is_dir():
        return DATA
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the shared data folder {DATA} is missing")
    pytest.skip(f"needs the GTZAN data in {DATA}, absent in this clone")


def write_audio(path: Path, y: np.ndarray, sr: int, **kw) -> Path:
    sf.write(path, y, sr, **kw)
    return path


def tone(seconds: float, sr: int = 22050, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 uses now: every test binds its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stuck_subscriber(endpoint: str, hwm: int) -> zmq.Socket:
    """A SUB socket on the feed that never reads: its queue fills after ``hwm`` messages."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def rtgenre(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "rtgenre", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def rtgenre_here(*args: str) -> subprocess.CompletedProcess:
    """The same command line in this process (click's runner): for error matrices, where an interpreter per
    case costs more than the case. An exception the CLI let through is raised, as a traceback would show."""
    from rtgenre.cli import main

    return _here(main, args)


def train_here(*args: str) -> subprocess.CompletedProcess:
    """``rtgenre-train`` in this process, as ``rtgenre_here``: torch is imported once, not once per command."""
    from training.cli import main

    return _here(main, args)


def _here(main, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    from click.testing import CliRunner

    r = CliRunner().invoke(main, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


class PulseServer:
    """A private PulseAudio server with a null sink whose monitor is the default capture source.

    It gives PortAudio a real capture device on machines with no sound card: audio played into
    the sink with ``paplay`` comes back out of the monitor.
    """

    SINK = "rtgenre_test"

    def __init__(self, runtime: Path):
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PULSE_RUNTIME_PATH": str(runtime / "pulse")}

    def start(self) -> None:
        subprocess.run(
            [
                "pulseaudio",
                "--daemonize=yes",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-native-protocol-unix",
                f"--load=module-null-sink sink_name={self.SINK}",
                "--log-target=stderr",
            ],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.pactl("set-default-source", f"{self.SINK}.monitor")

    def stop(self) -> None:
        subprocess.run(["pulseaudio", "-k"], env=self.env, capture_output=True, timeout=30)

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def play(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "-d", self.SINK, str(path)], env=self.env)


def require_pulse() -> None:
    missing = [t for t in ("pulseaudio", "pactl", "paplay") if shutil.which(t) is None]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {', '.join(missing)} missing: `make test` installs pulseaudio and pulseaudio-utils")
    pytest.skip(f"needs PulseAudio ({', '.join(missing)} missing)")


def until_eos(endpoint: str, got: list, timeout_s: float) -> None:
    """A one-stream feed's messages into ``got``, up to its end-of-stream message (or ``timeout_s`` of silence)."""
    from rtgenre.feed import subscribe

    for _, m in subscribe(endpoint, timeout_s=timeout_s):
        got.append(m)
        if m["type"] == "eos":
            return
