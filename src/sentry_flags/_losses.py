"""Telling the operator about errors that were not forwarded.

A counter alone is read by nobody, and vendor metrics (guarded rollouts, Split metrics,
Segment counts) then undercount in silence; so the delivery worker turns the forwarders'
stats into a warning on the ``sentry_flags`` logger, at most once a minute per forwarder.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from sentry_flags.forwarders._base import Forwarder

logger = logging.getLogger("sentry_flags")

REPORT_EVERY = 60.0  # seconds between two warnings about one forwarder


class LossReport:
    """Tells the operator, on the ``sentry_flags`` logger, about errors not forwarded.

    A counter alone is read by nobody: vendor metrics (guarded rollouts, Split metrics)
    silently undercount. So a warning per forwarder, at most once a :data:`REPORT_EVERY`
    seconds, for every outcome but ``forwarded`` and the skips the forwarder makes by design
    (``Forwarder.expected_skips``: an environment the app did not choose, an error without
    a user for Segment, ...). Runs on the delivery worker, checking at most once a second.
    """

    def __init__(self, forwarders: Sequence[Forwarder], max_per_second: Optional[float]) -> None:
        self.forwarders = tuple(forwarders)
        self.max_per_second = max_per_second
        self._next_check = 0.0
        # Per forwarder: losses when last reported or found none, since when, when warned.
        started = time.monotonic()
        self._base: list[tuple[int, dict[str, int], float, float]] = [
            (0, {}, started, -math.inf) for _ in self.forwarders
        ]

    def check(self, now: float) -> None:
        if now < self._next_check:
            return
        self._next_check = now + 1.0
        for i, forwarder in enumerate(self.forwarders):
            losses = self.losses(forwarder)
            total = sum(losses.values())
            seen, base, since, warned = self._base[i]
            if total == seen:
                self._base[i] = (total, losses, now, warned)  # nothing new: the window restarts
                continue
            if now - warned < REPORT_EVERY:
                continue  # keep counting until the next warning may go out
            new = {k: v - base.get(k, 0) for k, v in losses.items() if v > base.get(k, 0)}
            count = total - seen
            logger.warning(
                "%d %s not forwarded to %s in the last %.0f s: %s",
                count, "error" if count == 1 else "errors", forwarder.name, max(1.0, now - since),
                self.describe(forwarder, new),
            )  # fmt: skip
            self._base[i] = (total, losses, now, now)

    def next_due(self) -> Optional[float]:
        """When ``check`` could next warn: the earliest time a forwarder with losses not yet
        reported may be told about them; None when there are none. The delivery worker
        sleeps until then when it has nothing to deliver."""
        due: Optional[float] = None
        for i, forwarder in enumerate(self.forwarders):
            seen, _, _, warned = self._base[i]
            if sum(self.losses(forwarder).values()) != seen:
                at = max(self._next_check, warned + REPORT_EVERY)
                due = at if due is None else min(due, at)
        return due

    @staticmethod
    def losses(forwarder: Forwarder) -> dict[str, int]:
        stats = forwarder.stats
        found = {
            name: count
            for name, count in (("rate_limited", stats.rate_limited), ("dropped", stats.dropped),
                                ("failed", stats.failed))
            if count
        }  # fmt: skip
        for reason, count in stats.skipped.items():
            if reason not in forwarder.expected_skips and count:
                found[reason] = count
        return found

    def describe(self, forwarder: Forwarder, new: dict[str, int]) -> str:
        parts = []
        for name, count in sorted(new.items(), key=lambda item: -item[1]):
            if name == "rate_limited":
                rates = [r for r in (self.max_per_second, getattr(forwarder, "max_per_second", None)) if r]
                label = f"rate limit {min(rates):g}/s" if rates else "rate limit"
            elif name == "dropped":
                label = "queue full"
            elif name == "failed":
                label = "refused or raised by the vendor SDK"
            else:
                label = name.replace("_", " ")
            parts.append(f"{label} ({count})")
        return ", ".join(parts)
