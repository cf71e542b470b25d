import math

import numpy as np

from rtgenre.messages import GENRE, SILENCE, UNCERTAIN
from rtgenre.smoothing import Smoother, SmoothingConfig

A, B = np.array([0.9, 0.1]), np.array([0.1, 0.9])


def test_ema_follows_the_time_constant_whatever_the_hop():
    for hop in (0.25, 1.0):
        s = Smoother(2, SmoothingConfig(time_constant=2.0, switch_margin=0.0))
        s.update(A, hop)
        for _ in range(int(2.0 / hop)):
            out = s.update(B, hop)
        # after one time constant, 1 - 1/e of the step is done
        expected = 0.9 + (0.1 - 0.9) * (1 - math.exp(-1))
        assert abs(out.probs[0] - expected) < 1e-9


def test_hysteresis_holds_the_genre_until_the_challenger_leads_by_the_margin():
    s = Smoother(2, SmoothingConfig(time_constant=1.0, switch_margin=0.2))
    assert s.update(A, 0.5).top == 0
    tops = [s.update(B, 0.5) for _ in range(6)]
    first_switch = next(i for i, t in enumerate(tops) if t.top == 1)
    assert first_switch > 0  # the lead of B must first exceed 0.2
    assert tops[first_switch].probs[1] - tops[first_switch].probs[0] >= 0.2


def test_silence_claims_no_genre_and_a_long_silence_resets():
    s = Smoother(2, SmoothingConfig(silence_reset=2.0))
    s.update(A, 0.5)
    out = s.update(None, 0.5)
    assert out.state == SILENCE and out.top is None and out.probs is not None
    for _ in range(4):
        out = s.update(None, 0.5)
    assert out.probs is None
    assert s.update(B, 0.5).top == 1  # a fresh start, no memory of A


def test_low_confidence_is_uncertain():
    s = Smoother(3, SmoothingConfig(min_confidence=0.5))
    assert s.update(np.array([0.4, 0.3, 0.3]), 0.5).state == UNCERTAIN
    assert s.update(np.array([0.9, 0.05, 0.05]), 10.0).state == GENRE
