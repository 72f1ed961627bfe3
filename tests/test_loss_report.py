"""The operator is told when errors are not forwarded: a warning, at most once a minute.

``LossReport.check(now)`` takes the time as an argument, so the once-a-minute rule is checked
with explicit times, never with the wall clock; one end-to-end test storms a real client.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest

from helpers import raise_and_capture
from receivers import wait_for
from sentry_flags import FlagsIntegration, _losses
from sentry_flags._losses import LossReport
from sentry_flags.testing import RecordingForwarder, flush_forwarders


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING, logger="sentry_flags")

    def seen() -> list[str]:
        ours = [r for r in caplog.records if r.name == "sentry_flags"]
        return [r.getMessage() for r in ours if r.levelno == logging.WARNING]

    return seen


def test_first_loss_is_told_at_once_then_at_most_once_a_minute(
    warnings_seen: Callable[[], list[str]],
) -> None:
    forwarder = RecordingForwarder()
    report = LossReport([forwarder], max_per_second=200.0)
    start = 1000.0
    report.check(start)
    assert warnings_seen() == []

    forwarder._count_outcome("rate_limited", 30)
    forwarder._count_outcome("dropped", 2)
    report.check(start + 5)
    assert len(warnings_seen()) == 1
    assert warnings_seen()[0].startswith("32 errors not forwarded to recording in the last ")
    assert warnings_seen()[0].endswith(": rate limit 200/s (30), queue full (2)")

    forwarder._count_outcome("rate_limited", 10)
    report.check(start + 30)  # within the minute: counted, not told yet
    report.check(start + 60)
    assert len(warnings_seen()) == 1
    report.check(start + 66)
    assert warnings_seen()[1] == (
        "10 errors not forwarded to recording in the last 61 s: rate limit 200/s (10)"
    )

    report.check(start + 200)  # nothing new: nothing told
    assert len(warnings_seen()) == 2


def test_next_due_says_when_losses_not_yet_told_may_be_told() -> None:
    """What the idle delivery worker sleeps until: None while nothing waits to be told."""
    forwarder = RecordingForwarder()
    report = LossReport([forwarder], max_per_second=200.0)
    assert report.next_due() is None

    forwarder._count_outcome("rate_limited", 3)
    assert report.next_due() == 0.0  # never told: at once
    report.check(1000.0)
    assert report.next_due() is None  # told

    forwarder._count_outcome("dropped")
    assert report.next_due() == 1000.0 + _losses.REPORT_EVERY
    report.check(1000.0 + _losses.REPORT_EVERY)
    assert report.next_due() is None


def test_skips_by_design_are_counted_but_not_told(warnings_seen: Callable[[], list[str]]) -> None:
    from sentry_flags.forwarders import LaunchDarklyForwarder

    class Duck:
        def track(self, **kwargs: Any) -> None:
            pass

    forwarder = LaunchDarklyForwarder(Duck())
    report = LossReport([forwarder], max_per_second=None)
    for reason in ("environment", "vendor_sdk_log", "no_context", "invalid_context"):
        forwarder._count_skipped(reason, 3)
    report.check(10.0)
    assert warnings_seen() == []
    forwarder._count_skipped("backoff", 1)
    report.check(11.0)
    assert warnings_seen() == ["1 error not forwarded to LaunchDarkly in the last 1 s: backoff (1)"]


def test_a_storm_over_the_rate_bound_is_told_on_the_sentry_flags_logger(
    sentry_init: Callable[..., Any], warnings_seen: Callable[[], list[str]], own_isolation_scope: None
) -> None:
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder], max_forwarded_per_second=1)])
    for i in range(150):
        assert raise_and_capture(f"storm {i}") is not None  # Sentry still gets every one
    assert flush_forwarders()
    told = wait_for(warnings_seen)
    # Told as soon as the worker saw the first losses (the rest wait a minute for the next).
    assert len(told) == 1
    count = int(told[0].split()[0])
    assert 0 < count <= 50
    errors = "errors" if count > 1 else "error"
    assert told[0].startswith(f"{count} {errors} not forwarded to recording in the last ")
    assert told[0].endswith(f": rate limit 1/s ({count})")
    assert recorder.stats.rate_limited == 50
    assert recorder.stats.errors == recorder.stats.accounted == 150
