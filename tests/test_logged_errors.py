"""An app's ``logger.error(...)``: an error event on sentry-sdk 2.x, at most a Sentry Log on 3.x.

2.x: ``LoggingIntegration`` is a default integration, and makes an error event of every
record at ``event_level`` (default ERROR) and above. 3.x: it is no longer a
default integration, and when the app adds it, its ``event_level`` defaults to None: records
become Sentry Logs, not error events. sentry-flags forwards error events only, so on 3.x a
logged error reaches no vendor unless the app adds ``LoggingIntegration(event_level=...)``:
counts at Split, LaunchDarkly and Segment built on logged errors drop to what is raised
and captured.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from sentry_sdk.integrations.logging import LoggingIntegration

from helpers import SENTRY_SDK_MAJOR, flush
from receivers import SentryReceiver, wait_for
from sentry_flags import FlagsIntegration
from sentry_flags.testing import RecordingForwarder, flush_forwarders

app_logger = logging.getLogger("shop.payments")


def _log_an_error(sentry_init: Callable[..., Any], *integrations: Any) -> RecordingForwarder:
    recorder = RecordingForwarder()
    sentry_init(integrations=[*integrations, FlagsIntegration(forwarders=[recorder])])
    app_logger.error("payment provider refused card %s", "visa")
    flush()
    assert flush_forwarders()
    return recorder


def test_with_the_default_integrations_a_logged_error_is_forwarded_on_2x_only(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = _log_an_error(sentry_init)

    if SENTRY_SDK_MAJOR >= 3:  # no LoggingIntegration: nothing reaches Sentry at all
        assert sentry_receiver.events == []
        assert sentry_receiver.items("log") == []
        assert recorder.views == []
    else:
        [event] = sentry_receiver.wait_for_events(1)
        assert event["logentry"]["message"] == "payment provider refused card %s"
        [view] = recorder.views
        assert view.message == "payment provider refused card visa"


def test_a_logged_error_is_forwarded_on_2x_and_a_sentry_log_on_3x(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = _log_an_error(sentry_init, LoggingIntegration())  # its own defaults

    if SENTRY_SDK_MAJOR >= 3:
        logs = wait_for(lambda: sentry_receiver.items("log"), message="a Sentry Log")
        assert any(b"payment provider refused card" in item.payload for item in logs)
        assert sentry_receiver.events == []
        assert recorder.views == []
        assert recorder.stats.errors == 0  # not an error sentry-flags saw and lost: none at all
    else:
        [event] = sentry_receiver.wait_for_events(1)
        assert event["logentry"]["message"] == "payment provider refused card %s"
        [view] = recorder.views
        assert view.message == "payment provider refused card visa"


def test_with_event_level_a_logged_error_is_forwarded_on_every_major(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = _log_an_error(sentry_init, LoggingIntegration(event_level=logging.ERROR))

    [event] = sentry_receiver.wait_for_events(1)
    assert event["logger"] == "shop.payments"
    [view] = recorder.views
    assert view.event_id == event["event_id"]
    assert view.logger == "shop.payments"
