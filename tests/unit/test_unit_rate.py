"""The one token bucket: the delivery's bound and the Segment forwarder's rate limit."""

from __future__ import annotations

from typing import Any

import pytest

from sentry_flags._rate import MIN_BURST, RateBound


def test_rate_bound_refills_at_its_rate_up_to_its_burst() -> None:
    bound = RateBound(10, burst=5)
    # A large float, as monotonic clock values are: (t0 + 0.1) - t0 is a hair under 0.1 here,
    # and the refill must still count as one token.
    t0 = bound._last = 16625.980567133
    assert [bound.take(t0) for _ in range(6)] == [True] * 5 + [False]
    assert bound.take(t0 + 0.1)  # one token in a tenth of a second
    assert not bound.take(t0 + 0.1)
    assert [bound.take(t0 + 100) for _ in range(6)] == [True] * 5 + [False]  # capped at the burst


def test_rate_bound_burst_is_at_least_one_second_and_the_minimum() -> None:
    assert RateBound(10).burst == MIN_BURST
    assert RateBound(5000).burst == 5000


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), True, "10"])
def test_rate_bound_rejects_what_is_not_a_positive_rate(rate: Any) -> None:
    with pytest.raises(ValueError, match="max_per_second"):
        RateBound(rate)


def test_a_time_earlier_than_one_seen_refills_nothing_and_keeps_the_clock() -> None:
    # Capture times from different app threads can reach the bucket out of order.
    bound = RateBound(2, burst=2)
    assert [bound.take(10.0) for _ in range(3)] == [True, True, False]
    assert not bound.take(9.0)  # an earlier capture: no negative refill ...
    assert not bound.take(10.4)  # ... and 0.4 s after 10.0 is still under a token
    assert bound.take(10.5)  # one token, counted from 10.0, not from 9.0
    assert not bound.take(10.5)


def test_an_earlier_time_does_not_take_away_tokens_already_earned() -> None:
    bound = RateBound(1, burst=5)
    assert [bound.take(100.0) for _ in range(5)] == [True] * 5
    assert not bound.take(100.0)
    assert not bound.take(0.0)  # far back in time
    assert bound.take(101.0)  # the second since 100.0 refilled one token
    assert not bound.take(101.0)


def test_the_first_take_finds_the_bucket_full_on_any_clock() -> None:
    # Segment's tests pass capture times from 0.0; the delivery passes time.monotonic().
    for start in (0.0, -5.0, 16625.980567133):
        bound = RateBound(2, burst=2)
        assert [bound.take(start) for _ in range(3)] == [True, True, False], start
