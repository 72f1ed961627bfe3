"""Records the vendor SDKs log are not forwarded; the app's own loggers are, whatever their name.

sentry-sdk's logging integration turns log records into Sentry events. One a vendor SDK logged
(it failed, or refused a call) is not handed back to the vendors: that would feed a failing
vendor its own failure. Which records those are is decided by the exact logger names the SDKs
use, so an app's ``analytics.reports`` or ``backoff`` is an error like any other.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from helpers import flush, summary
from receivers import SegmentReceiver, SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags.testing import RecordingForwarder

pytestmark = [
    pytest.mark.usefixtures("own_isolation_scope"),
    pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),  # splitio's own
]

# Loggers of the app's that share a first part, or a name, with a vendor's.
APP_LOGGERS = (
    "analytics.reports",
    "segment.audiences",
    "ldclient.app",
    "ldclient",
    "splitio.not_a_module",
    "openfeature.mine",
    "backoff",  # the app's own retries, logged on the app's thread
    "sentry_flags_app",
)


def init_recording(sentry_init: Callable[..., Any], *, level: int = logging.ERROR) -> RecordingForwarder:
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder]), LoggingIntegration(event_level=level)])
    return recorder


def events_by_logger(receiver: SentryReceiver, count: int) -> dict[str, list[dict[str, Any]]]:
    flush()
    found: dict[str, list[dict[str, Any]]] = {}
    for event in receiver.wait_for_events(count):
        found.setdefault(event.get("logger") or "", []).append(event)
    return found


def test_the_apps_loggers_are_forwarded_whatever_their_name(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = init_recording(sentry_init)

    for name in APP_LOGGERS:
        logging.getLogger(name).error("report failed in %s", name)
    events = events_by_logger(sentry_receiver, len(APP_LOGGERS))
    flush()

    assert sorted(events) == sorted(APP_LOGGERS)
    stats = recorder.stats
    assert (stats.errors, stats.forwarded, stats.skipped) == (len(APP_LOGGERS), len(APP_LOGGERS), {})
    assert sorted(v.logger or "" for v in recorder.views) == sorted(APP_LOGGERS)


def test_what_launchdarkly_and_split_log_is_not_forwarded(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld_client: Any,
    split_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ldclient import Context

    recorder = init_recording(sentry_init, level=logging.WARNING)
    caplog.set_level(logging.WARNING, logger="ldclient")  # whatever an earlier test left (Celery)

    ld_client.track("checkout", Context.create(""))  # "Invalid context for track", a warning
    split_client.get_treatment("", "some_flag")  # "you passed an empty key", an error
    logging.getLogger("analytics.reports").error("the app's own")
    events = events_by_logger(sentry_receiver, 3)
    flush()

    assert {"ldclient.util", "splitio.client.input_validator", "analytics.reports"} <= set(events)
    vendor = sum(len(found) for name, found in events.items() if name != "analytics.reports")
    assert recorder.stats.skipped == {"vendor_sdk_log": vendor}
    assert [v.logger for v in recorder.views] == ["analytics.reports"]


def test_what_openfeature_logs_is_not_forwarded(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, openfeature_state: None
) -> None:
    from openfeature import api
    from openfeature.hook import Hook

    class FailingHook(Hook):
        def after(self, hook_context: Any, details: Any, hints: Any) -> None:
            raise RuntimeError("the app's hook failed")

    recorder = init_recording(sentry_init)
    client = api.get_client()
    client.add_hooks([FailingHook()])

    client.get_boolean_value("some-flag", False)  # OpenFeature logs the hook's failure
    events = events_by_logger(sentry_receiver, 1)
    flush()

    assert list(events) == ["openfeature"]
    assert recorder.stats.skipped == {"vendor_sdk_log": 1}
    assert recorder.views == []


def test_what_segment_logs_on_its_consumer_thread_is_not_forwarded(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    segment_receiver: SegmentReceiver,
    make_segment_client: Callable[..., Any],
) -> None:
    recorder = init_recording(sentry_init)
    segment_receiver.set_mode("error")
    client = make_segment_client(max_retries=0)

    client.track(user_id="u-1", event="Checked out")
    client.flush()  # its consumer gives up on the batch and logs the failure
    events = events_by_logger(sentry_receiver, 1)
    flush()

    assert "segment" in events, [summary(e) for found in events.values() for e in found]
    assert recorder.stats.skipped == {"vendor_sdk_log": sum(len(found) for found in events.values())}
    assert recorder.views == []
    sentry_sdk.flush()
