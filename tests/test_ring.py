import numpy as np
import pytest

from rtgenre.ring import Ring


def test_fifo_order_across_wraparound():
    r = Ring(8)
    r.write(np.arange(6, dtype=np.float32))
    assert r.read(4).tolist() == [0, 1, 2, 3]
    r.write(np.arange(6, 12, dtype=np.float32))
    assert r.available == 8 and r.overruns == 0
    assert r.read(8).tolist() == list(range(4, 12))


def test_overrun_drops_oldest_and_counts_every_lost_row():
    r = Ring(4)
    r.write(np.arange(3, dtype=np.float32))
    lost = r.write(np.arange(3, 6, dtype=np.float32))
    assert lost == 2 and r.overruns == 2
    assert r.read(4).tolist() == [2, 3, 4, 5]
    r.write(np.arange(10, dtype=np.float32))  # bigger than the ring
    assert r.overruns == 8
    assert r.read(4).tolist() == [6, 7, 8, 9]


def test_peek_and_advance_on_frame_rows():
    r = Ring(5, (3,))
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    r.write(rows)
    np.testing.assert_array_equal(r.peek(2), rows[:2])
    r.advance(1)
    np.testing.assert_array_equal(r.peek(3), rows[1:4])
    assert r.consumed == 1 and r.written == 4


def test_reading_more_than_available_is_an_error():
    with pytest.raises(ValueError):
        Ring(4).read(1)
