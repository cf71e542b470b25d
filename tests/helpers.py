"""Helpers shared by the tests: real audio files, the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

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


def rtgenre(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "rtgenre", *args], capture_output=True, text=True, timeout=timeout, **kw
    )
