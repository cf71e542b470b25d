"""The daemon's control socket against hostile but fair clients: every message shape, huge requests,
out-of-range numbers, a fuzz of frames; each case once crashed, stalled or misreported. Against a real
`rtgenre serve`."""

import json
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from served import Served, track

from rtgenre.feed import request

pytestmark = pytest.mark.slow  # a real daemon: `make test-fast` skips it


@pytest.fixture(scope="module")
def served(tmp_path_factory, data):
    d = Served(tmp_path_factory.mktemp("served"), [
        {"id": "a", "source": "file", "path": track(data, "rock"), "loop": True, "speed": 4.0},
        {"id": "b", "source": "file", "path": track(data, "jazz"), "loop": True},
    ])  # fmt: skip
    d.wait_for(lambda: len(d.of("a", "window")) >= 2)
    yield d
    if d.proc.poll() is None:
        d.proc.kill()


def raw_request(endpoint: str, frames: list[bytes], kind: int = zmq.REQ, timeout_s: float = 5) -> list[bytes]:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(int(timeout_s * 1000)), "the daemon did not answer"
        return sock.recv_multipart()
    finally:
        sock.close()


def assert_alive(d: Served) -> None:
    """The daemon answers and its feed keeps flowing."""
    assert d.proc.poll() is None
    n = len(d.of("a", "window"))
    d.wait_for(lambda: len(d.of("a", "window")) > n, timeout=10)
    assert set(d.status()["streams"]) >= {"a", "b"}


def test_a_request_of_two_frames_gets_an_error_reply(served):
    reply = json.loads(raw_request(served.control, [b'{"cmd":"status"}', b"x"])[0])
    assert "one frame" in reply["error"]
    assert_alive(served)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"status"',
        b"[" * 100000,
        b'{"cmd": 5}',
        b'{"cmd":"lyrics","stream":["a"]}',
        b'{"cmd":"lyrics","stream":"a","text":7}',
    ],
)
def test_malformed_requests_get_error_replies(served, body):
    assert "error" in json.loads(raw_request(served.control, [body])[0])
    assert served.proc.poll() is None


def test_a_dealer_without_an_envelope_is_answered_too(served):
    assert "streams" in json.loads(raw_request(served.control, [b'{"cmd":"status"}'], zmq.DEALER)[-1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.lists(
        st.one_of(
            st.binary(max_size=2048),
            st.text(max_size=200).map(str.encode),
            st.recursive(
                st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                lambda c: (
                    st.lists(c, max_size=4)
                    | st.dictionaries(st.sampled_from(["cmd", "stream", "text", "weight", "x"]), c, max_size=4)
                ),
                max_leaves=12,
            ).map(lambda v: json.dumps(v).encode()),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_control_messages_never_stop_the_daemon(served, frames):
    reply = raw_request(served.control, frames)
    assert len(reply) == 1 and isinstance(json.loads(reply[0]), dict)


def test_after_the_fuzz_the_feed_still_flows(served):
    assert_alive(served)


def test_a_huge_lyrics_request_is_refused_at_once(served):
    t0 = time.monotonic()
    reply = request(served.control, {"cmd": "lyrics", "stream": "a", "text": "la " * 3_500_000}, 10)
    assert "limit" in reply["error"] and time.monotonic() - t0 < 5


def test_lyric_encoding_never_stalls_the_streams(served):
    """The lyric model loads and encodes on the control worker: window messages keep their cadence meanwhile."""
    before = len(served.of("a", "window"))
    reply = request(served.control, {"cmd": "lyrics", "stream": "a", "text": "rock and roll " * 5000}, 30)
    assert reply == {"ok": True, "stream": "a", "lyrics": True}
    served.wait_for(lambda: any(m["lyrics"] for m in served.of("a", "window")))
    walls = [m["wall"] for m in served.of("a", "window")[before:]]
    # stream a runs at 4x with a 0.5 s hop: a window every 0.125 s; a stalled loop would leave a gap of seconds
    assert max(np.diff(walls)) < 1.0
    assert request(served.control, {"cmd": "lyrics", "stream": "a", "text": None}, 5)["lyrics"] is False


@pytest.mark.parametrize("weight", [1e308, -5, float("nan"), "0.5", True])
def test_lyrics_weights_outside_the_config_range_are_refused(served, weight):
    body = json.dumps({"cmd": "lyrics", "stream": "a", "text": "la la", "weight": weight}).encode()  # NaN as JSON NaN
    reply = json.loads(raw_request(served.control, [body])[0])
    assert "weight must be a number in [0, 1]" in reply["error"]


def test_every_published_message_is_valid_json(served):
    for _, m in served.messages:  # subscribe() parses with json.loads, which accepts NaN: check it was not there
        json.dumps(m, allow_nan=False)
