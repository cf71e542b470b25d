from rtgenre.backoff import Backoff


def test_backoff_lengthens_after_each_failure_in_a_row_and_starts_over_after_a_success():
    b = Backoff((0.5, 1.0, 2.0))
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0] and b.failures == 5
    b.reset()
    assert b.next_delay() == 0.5
