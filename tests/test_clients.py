"""Clients in other languages: the Node.js subscriber example (tests/clients/node, npm `zeromq`) reads a real
feed, and every message it prints validates against the published JSON Schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import jsonschema
import pytest
from helpers import ROOT, free_port, rtgenre
from served import Served, track

from rtgenre.messages import SCHEMA_FILE

pytestmark = pytest.mark.slow  # real daemons, devices, browsers or installs: `make test-fast` skips them

CLIENT = ROOT / "tests" / "clients" / "node"


@pytest.fixture(scope="module")
def node_client(tmp_path_factory) -> str:
    """The example with its npm dependency installed in a scratch copy (zeromq ships its prebuilt binaries)."""
    missing = [t for t in ("node", "npm") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {', '.join(missing)} missing: `make test` installs Node.js")
        pytest.skip(f"needs Node.js ({', '.join(missing)} missing)")
    where = tmp_path_factory.mktemp("node") / "client"
    shutil.copytree(CLIENT, where, ignore=shutil.ignore_patterns("node_modules"))
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], cwd=where,
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return str(where / "subscribe.mjs")


def test_the_node_subscriber_reads_every_message_of_a_replay(node_client, data):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    node = subprocess.Popen(["node", node_client, endpoint, "song"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        r = rtgenre("replay", "--fast", "--json", "--wait", "20", "--stream", "song", "--endpoint", endpoint,
                    track(data, "reggae"))  # fmt: skip
        out, err = node.communicate(timeout=30)
    finally:
        node.kill()
    assert r.returncode == 0 and node.returncode == 0, err
    received = [json.loads(line) for line in out.splitlines()]
    sent = [json.loads(line) for line in r.stdout.splitlines() if '"type"' in line]
    assert [m["seq"] for m in received] == list(range(len(received))) and received[-1]["type"] == "eos"
    assert received == sent  # the same messages, field for field, as the publisher sent them
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for m in received:
        validator.validate(m)


def test_the_node_subscriber_follows_a_served_stream_to_its_end(node_client, data, tmp_path):
    """Against `rtgenre serve`: what the Node client prints is what a Python subscriber of the same daemon got."""
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    node = subprocess.Popen(["node", node_client, endpoint, "once"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    d = Served(tmp_path, [{"id": "once", "source": "file", "path": track(data, "disco"), "speed": 10}], feed_port=port)
    try:
        out, err = node.communicate(timeout=60)
        d.wait_for(lambda: d.of("once", "eos"))
    finally:
        node.kill()
        d.stop()
    received = [json.loads(line) for line in out.splitlines()]
    assert node.returncode == 0 and received and received[-1]["type"] == "eos", err
    by_seq = {m["seq"]: m for m in d.of("once")}
    # the same messages as the Python subscriber's, from the first both heard (either may join a moment after the
    # daemon's first message: both connect before it binds, and ZeroMQ retries a connection every 100 ms)
    both = [m for m in received if m["seq"] >= min(by_seq)]
    assert both and both == [by_seq[m["seq"]] for m in both]
    assert [m["seq"] for m in received] == list(range(received[0]["seq"], received[-1]["seq"] + 1))  # no gap
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for m in received:
        validator.validate(m)
