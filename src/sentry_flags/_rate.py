"""The one token bucket: the delivery's bound on forwarded errors and Segment's rate limit."""

from __future__ import annotations

import math
from typing import Optional

MIN_BURST = 100  # by default a bucket lets bursts of this many (or one second's worth) through


class RateBound:
    """A token bucket: ``rate`` events a second on average, bursts of up to ``burst``.

    ``burst`` defaults to ``max(rate, MIN_BURST)``. Time is whatever clock the caller passes
    to `take` (monotonic, or the errors' capture times). A ``now`` earlier than one
    already seen, as capture times from different threads can arrive, refills nothing and
    does not move the bucket's time back. Checked on the app's thread for every captured
    error, so it is a few float operations and takes no lock: callers racing on it may let
    a token or two too many through.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: Optional[float] = None) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
            raise ValueError(f"max_per_second must be a positive number, got {rate!r}")
        self.rate = float(rate)
        self.burst = max(self.rate, MIN_BURST) if burst is None else max(1.0, float(burst))
        self._tokens = self.burst
        self._last = -math.inf  # the first take finds the bucket full, whatever its clock

    def take(self, now: float) -> bool:
        tokens = self._tokens
        elapsed = now - self._last
        if elapsed > 0:
            tokens += elapsed * self.rate
            if tokens > self.burst:  # noqa: PLR1730 - min() is a call, on every captured error
                tokens = self.burst
            self._last = now
        # Monotonic clock values are large floats: a refill of exactly one token can come
        # out a hair under 1.0.
        if tokens >= 1.0 - 1e-6:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False
