"""Only error events are ours: every other event sentry-sdk hands to before_send passes by.

sentry-sdk 2.x (and 3.0's pre-releases) call ``before_send`` for every event but
transactions: errors and messages (no ``type``), cron check-ins (``check_in``), and whatever
type an integration or the app put on an event. 3.0.0 gives check-ins their own
``before_send_check_in`` (``helpers.CHECK_IN_HOOK``), which we leave alone. Only errors and
messages are filtered, get our contexts and settings, and reach a forwarder or a counter;
everything else goes to the app's hook as sentry-sdk made it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import pytest
import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations.logging import LoggingIntegration

from helpers import CHECK_IN_HOOK, SENTRY_SDK_MAJOR, capture_error, flush
from receivers import LaunchDarklyReceiver, SentryReceiver, wait_for
from sentry_flags import FlagsIntegration, set_launchdarkly_context
from sentry_flags.testing import RecordingForwarder


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


class SeenTypes:
    """An app's before_send that notes the type of every event it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[Optional[str], dict[str, Any]]] = []

    def __call__(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        self.seen.append((event.get("type"), dict(event)))
        return event

    def of_type(self, kind: Optional[str]) -> list[dict[str, Any]]:
        return [event for seen, event in self.seen if seen == kind]


def _check_ins(receiver: SentryReceiver, count: int) -> list[dict[str, Any]]:
    flush()
    return wait_for(
        lambda: len(found := [item.json for item in receiver.items("check_in")]) >= count and found,
        message=f"{count} check-in(s)",
    )


def test_check_ins_are_neither_forwarded_nor_counted_nor_changed(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld_receiver: LaunchDarklyReceiver,
    ld_client: Any,
) -> None:
    from ldclient import Context

    from sentry_flags.forwarders import LaunchDarklyForwarder

    recorder = RecordingForwarder()
    launchdarkly = LaunchDarklyForwarder(ld_client)
    app_before_send = SeenTypes()
    sentry_init(
        integrations=[
            FlagsIntegration(
                forwarders=[recorder, launchdarkly],
                logger="app-logger",  # our settings fill in a missing logger on errors only
            )
        ],
        **{CHECK_IN_HOOK: app_before_send, "before_send": app_before_send},
    )
    set_launchdarkly_context(Context.create("u-1"))

    capture_checkin(monitor_slug="nightly", status="in_progress")
    capture_checkin(monitor_slug="nightly", status="ok", duration=1.5)
    error_id = capture_error("boom")
    check_ins = _check_ins(sentry_receiver, 2)
    flush()

    # Two check-ins and one error: the forwarders saw and counted the error alone.
    assert recorder.event_ids == [error_id]
    assert (recorder.stats.errors, recorder.stats.forwarded) == (1, 1)
    assert (launchdarkly.stats.errors, launchdarkly.stats.forwarded) == (1, 1)
    assert launchdarkly.stats.skipped == {}
    wait_for(lambda: len(ld_receiver.custom_events) >= 1, message="the error at LaunchDarkly")
    assert [e["key"] for e in ld_receiver.custom_events] == ["sentry-errors"]
    # Sentry got the check-ins as sentry-sdk made them, and the app's hook for them saw them.
    assert sorted(c["status"] for c in check_ins) == ["in_progress", "ok"]
    assert all("logger" not in c and "launchdarklyContext" not in c.get("contexts", {}) for c in check_ins)
    assert [e["status"] for e in app_before_send.of_type("check_in")] == ["in_progress", "ok"]
    [error] = app_before_send.of_type(None)
    assert error["logger"] == "app-logger"


def test_a_check_in_the_app_drops_is_dropped(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = RecordingForwarder()

    def drop_check_ins(event: dict[str, Any], hint: dict[str, Any]) -> Optional[dict[str, Any]]:
        return None if event.get("type") == "check_in" else event

    sentry_init(
        integrations=[FlagsIntegration(forwarders=[recorder])],
        **{CHECK_IN_HOOK: drop_check_ins, "before_send": drop_check_ins},
    )

    capture_checkin(monitor_slug="nightly", status="ok")
    capture_error("boom")
    sentry_receiver.wait_for_events(1)
    flush()

    assert sentry_receiver.items("check_in") == []
    assert recorder.stats.errors == 1


def test_messages_and_logged_errors_are_errors(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = RecordingForwarder()
    # event_level said outright: sentry-sdk 3 sends no log record as an event by default.
    sentry_init(
        integrations=[FlagsIntegration(forwarders=[recorder]), LoggingIntegration(event_level=logging.ERROR)]
    )

    ids = [
        capture_error("raised"),
        sentry_sdk.capture_message("said", level="error"),
        sentry_sdk.capture_message("warned", level="warning"),
    ]
    logging.getLogger("shop.checkout").error("logged")
    sentry_receiver.wait_for_events(4)
    flush()

    assert (recorder.stats.errors, recorder.stats.forwarded) == (4, 4)
    assert set(ids) < set(recorder.event_ids)
    assert sorted(v.exception_value or v.message or "" for v in recorder.views) == [
        "logged", "raised", "said", "warned",
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["feedback", "transaction", "something_new"])
def test_events_of_another_type_pass_by_untouched(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, kind: str
) -> None:
    """3.x hands before_send whatever capture_event gets; 2.x all but transactions."""
    recorder = RecordingForwarder()
    app_before_send = SeenTypes()
    sentry_init(
        integrations=[FlagsIntegration(forwarders=[recorder], logger="app-logger", ignore_errors=["boom"])],
        before_send=app_before_send,
    )

    sentry_sdk.capture_event({"type": kind, "message": "boom", "level": "error"})
    capture_error("kept")
    sentry_receiver.wait_for_events(1)
    flush()

    assert recorder.stats.errors == 1
    assert [v.exception_value for v in recorder.views] == ["kept"]
    seen = app_before_send.of_type(kind)
    if kind == "transaction" and SENTRY_SDK_MAJOR < 3:
        assert seen == []  # sentry-sdk 2.x gives transactions to before_send_transaction
    else:
        # ignore_errors ("boom") did not drop it and our settings did not touch it.
        [event] = seen
        assert "logger" not in event
