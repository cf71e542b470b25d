"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, PulseServer, free_port, require_data, require_pulse, write_audio

from rtgenre.model import Classifier, load_bundle

# `make test` runs two workers on two cores: one thread per process (torch and OpenMP would otherwise start one
# per core in every worker and every subprocess, and contend: the suite took 4:53 instead of 3:51)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("training"):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("training"))


@pytest.fixture(scope="session")
def data() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def bundle():
    """The fast shipped model: what the runtime's tests exercise does not depend on the model (the default's
    own tests name it)."""
    return load_bundle("crnn2d-gtzan")


@pytest.fixture(scope="session")
def classifier(bundle):
    return Classifier(bundle, "cpu")


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    require_pulse()
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def music(tmp_path):
    """Five seconds of noisy chords: real audio for the command line to chew on."""
    rng = np.random.default_rng(0)
    t = np.arange(22050 * 5) / 22050
    y = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 440)) + 0.02 * rng.standard_normal(len(t))
    return write_audio(tmp_path / "music.wav", y.astype(np.float32), 22050)


@pytest.fixture(scope="session")
def wheel() -> Path:
    """The musicnn wheel `make test` fetches into .musicnn/ (pip download --no-deps musicnn==0.1.0)."""
    found = sorted((ROOT / ".musicnn").glob("musicnn-0.1.0-*.whl"))
    if found:
        return found[0]
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but .musicnn/ holds no musicnn wheel: `make test` downloads it")
    pytest.skip("needs the musicnn wheel in .musicnn/ (make .musicnn/musicnn-0.1.0-py3-none-any.whl)")
