"""The daemon's one pacer thread: every file stream's blocks when due, errors raised in the stream's thread."""

import threading
import time

import numpy as np
import pytest

from rtgenre.errors import AudioError
from rtgenre.pacer import Pacer


def test_streams_are_paced_together_by_their_audio_clock():
    pacer, rate = Pacer(), 1000
    got: dict[int, list[tuple[float, int]]] = {0: [], 1: []}
    start = time.monotonic()

    def stream(i: int) -> None:
        blocks = [np.zeros(100, np.float32)] * 10  # 1 s of audio at 10 x real time: 0.1 s
        pacer.run(blocks, lambda b, i=i: got[i].append((time.monotonic() - start, len(b))), rate, 10.0)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    for i in range(2):
        times = [t for t, _ in got[i]]
        assert len(times) == 10 and 0.08 <= times[-1] < 0.5  # the last block due after 0.9 s of audio at 10 x
        assert all(b >= a for a, b in zip(times, times[1:], strict=False))


def test_a_stream_that_fails_raises_in_its_own_thread_and_the_others_go_on():
    pacer = Pacer()

    def broken():
        yield np.zeros(10, np.float32)
        raise AudioError("x.ogg: decoding failed after 0.0 s")

    fed = []
    other = threading.Thread(target=pacer.run, args=([np.zeros(10, np.float32)] * 5, fed.append, 1000, 100.0))
    other.start()
    with pytest.raises(AudioError, match="decoding failed"):
        pacer.run(broken(), lambda b: None, 1000, 100.0)
    other.join(5)
    assert len(fed) == 5
