"""Shared fixtures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from helpers import PulseServer, require_data, require_pulse

from rtgenre.model import Classifier, load_bundle


@pytest.fixture(scope="session")
def data() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def bundle():
    return load_bundle()


@pytest.fixture(scope="session")
def classifier(bundle):
    return Classifier(bundle, "cpu")


@pytest.fixture
def endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    require_pulse()
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    yield server
    server.stop()
