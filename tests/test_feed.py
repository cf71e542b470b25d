import threading
import time

import pytest
from helpers import stuck_subscriber

from rtgenre.errors import FeedError
from rtgenre.feed import Publisher, check_endpoint, decode, subscribe


def test_messages_reach_a_subscriber_over_loopback(endpoint):
    pub = Publisher(endpoint)
    got = []
    t = threading.Thread(target=lambda: got.extend(subscribe(endpoint, "s1", timeout_s=3)))
    t.start()
    assert pub.wait_for_subscriber(5)
    for i in range(3):
        pub.publish("s1", "window", {"i": i})
    pub.publish("other", "window", {"i": 99})  # filtered out by topic
    t.join()
    pub.close()
    assert [m["i"] for _, m in got] == [0, 1, 2]
    assert [m["seq"] for _, m in got] == [0, 1, 2]
    assert all(s == "s1" and m["v"] == 1 and m["type"] == "window" for s, m in got)


def test_a_stalled_subscriber_never_blocks_the_publisher(endpoint):
    pub = Publisher(endpoint, hwm=10)
    sub = stuck_subscriber(endpoint, 10)
    assert pub.wait_for_subscriber(5)
    t0 = time.monotonic()
    for i in range(20000):
        pub.publish("s", "window", {"pad": "x" * 200, "i": i})
    elapsed = time.monotonic() - t0
    assert pub.sent == 20000
    assert elapsed < 10  # sanity bound only: a blocking send would hang forever
    sub.close(0)
    pub.close()


def test_endpoint_in_use(endpoint):
    first = Publisher(endpoint)
    try:
        with pytest.raises(FeedError, match="already in use"):
            Publisher(endpoint)
    finally:
        first.close()


@pytest.mark.parametrize("bad", ["localhost:5556", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "udp://x:1", ""])
def test_malformed_endpoint(bad):
    with pytest.raises(FeedError, match="malformed endpoint"):
        check_endpoint(bad)


def test_single_frame_topic_then_json():
    stream, msg = decode(b'genre.radio-1 {"v":1,"type":"heartbeat"}')
    assert stream == "radio-1" and msg["type"] == "heartbeat"


def test_a_stuck_subscriber_costs_a_healthy_one_nothing(endpoint):
    pub = Publisher(endpoint, hwm=50)
    stuck = stuck_subscriber(endpoint, 50)
    got: list[int] = []
    t = threading.Thread(target=lambda: got.extend(m["seq"] for _, m in subscribe(endpoint, timeout_s=3)))
    t.start()
    assert pub.wait_for_subscriber(3, count=2)
    n = 4000
    for i in range(n):  # 2000 messages a second of 1 kB: the stuck queue overflows within a second
        pub.publish("s", "window", {"pad": "x" * 1000})
        if i % 20 == 0:
            time.sleep(0.01)
    t.join()
    received = 0
    while stuck.poll(0):
        stuck.recv()
        received += 1
    stuck.close(0)
    pub.close()
    assert got == list(range(n))  # no gap at all
    assert received < n  # and the stuck one did lose
