"""A vendor SDK private name gone in the installed release: its feature steps aside.

Each name is taken away from a real client (the release that renamed it, simulated), and
the errors still reach Sentry and the vendor: the loss is only the feature the name served.
The step aside is counted (process-wide, and in the forwarder's ``stats.stepped_aside``) and
warned about once per name, never raised. The AsyncLDClient's names are tested in
test_launchdarkly_async.py (that client needs LD SDK 9.20+), the Segment consumers' restart
in a forked child in test_fork.py.
"""

from __future__ import annotations

import queue
from typing import Any, Callable

import pytest
import sentry_sdk

from helpers import (
    capture_error,
    error_view,
    flush,
    handle,
    init_forwarding,
    ld_context_of,
    only_event,
    warnings_about,
)
from receivers import SegmentReceiver, SentryReceiver, SplitReceiver
from sentry_flags import FlagsIntegration
from sentry_flags._private import stepped_aside

pytestmark = pytest.mark.usefixtures("own_isolation_scope")


# -- LaunchDarkly: LDClient._config -----------------------------------------------------------


@pytest.mark.usefixtures("fresh_private")
def test_without_the_ld_clients_config_every_context_attribute_is_redacted(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("ldclient")
    from ldclient import Context

    from sentry_flags._ldclient import CONFIG

    ld_test_data.update(ld_test_data.flag("checkout").boolean_flag().variation_for_all(True))
    # The app keeps "plan" private; a release that keeps the client's Config elsewhere hides it.
    ld_client = make_ld_client(update_processor_class=ld_test_data, private_attributes=["plan"])
    with monkeypatch.context() as mp:
        mp.delattr(ld_client, "_config")
        integration = FlagsIntegration(launchdarkly_client=ld_client)
    sentry_init(integrations=[integration])

    context = Context.builder("u-1").set("plan", "pro").set("team", "blue").build()
    assert ld_client.variation("checkout", context, False) is True
    capture_error("checkout failed")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == {
        "key": "u-1",
        "kind": "user",
        "_meta": {"redactedAttributes": ["plan", "team"]},  # all of them: the safe side
    }
    assert event["contexts"]["flags"]["values"] == [{"flag": "checkout", "result": True}]
    assert stepped_aside()[CONFIG.path] >= 1
    [warning] = warnings_about(caplog, CONFIG)
    assert "launchdarkly-server-sdk" in warning


# -- Split: the events task -------------------------------------------------------------------


def _without_split_tasks(mp: pytest.MonkeyPatch, split_client: Any) -> None:
    # A release that keeps the factory's tasks elsewhere. Its running tasks keep running.
    mp.delattr(split_client._factory._sync_manager._synchronizer, "_split_tasks")


@pytest.mark.usefixtures("fresh_private")
def test_without_splits_events_task_flush_steps_aside_and_events_still_arrive(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    split_client: Any,
    split_receiver: SplitReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sentry_flags._splitio import EVENTS_TASK
    from sentry_flags.forwarders import SplitForwarder

    forwarder = SplitForwarder(split_client, identities={"user": "user.id"})
    init_forwarding(sentry_init, forwarder)
    with monkeypatch.context() as mp:
        _without_split_tasks(mp, split_client)
        sentry_sdk.set_user({"id": "u-1"})
        event_id = capture_error("card declined")
        flush()  # our flush asks Split to post: it cannot, and says so
        flush()
        # Split's own timer (eventsPushRate) posts it all the same.
        [event] = split_receiver.wait_for_events(1)

    assert event["key"] == "u-1"
    assert event["properties"]["eventId"] == event_id
    assert only_event(sentry_receiver)["event_id"] == event_id
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.stepped_aside[EVENTS_TASK.path] >= 2
    assert len(warnings_about(caplog, EVENTS_TASK)) == 1


@pytest.mark.usefixtures("fresh_private")
def test_without_splits_events_task_a_forked_child_still_forwards(
    split_client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sentry_flags._splitio import EVENTS_TASK
    from sentry_flags.forwarders import SplitForwarder

    # after_fork() is what Delivery calls first thing in a forked child (test_fork.py forks).
    judged = SplitForwarder(split_client, identities={"user": "user.id"})
    judged.after_fork()
    handle(judged, error_view(user={"id": "u-1"}), 0.0)
    assert judged.stats.skipped == {"client_stopped": 1}  # with the name: a running factory's threads died

    blind = SplitForwarder(split_client, identities={"user": "user.id"})
    with monkeypatch.context() as mp:
        _without_split_tasks(mp, split_client)
        blind.after_fork()
    assert blind.stats.stepped_aside == {EVENTS_TASK.path: 1}
    assert [c.kwargs["key"] for c in blind.calls(error_view(user={"id": "u-1"}), 0.0)] == ["u-1"]
    assert len(warnings_about(caplog, EVENTS_TASK)) == 1


@pytest.mark.usefixtures("fresh_private")
def test_without_splits_sdk_key_localhost_mode_is_not_told_and_the_forwarder_counts_it(
    split_client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sentry_flags._splitio import SDK_KEY
    from sentry_flags.forwarders import SplitForwarder

    with monkeypatch.context() as mp:
        mp.delattr(split_client._factory, "_sdk_key")  # a release that keeps it elsewhere
        forwarder = SplitForwarder(split_client, identities={"user": "user.id"})
        SplitForwarder(split_client, identities={"user": "user.id"})

    # Counted by the forwarder that stepped aside, and process-wide; warned about once.
    assert forwarder.stats.stepped_aside == {SDK_KEY.path: 1}
    assert stepped_aside() == {SDK_KEY.path: 2}
    assert len(warnings_about(caplog, SDK_KEY)) == 1
    # Not in localhost mode, as far as it can tell: errors are handed to track.
    assert [c.kwargs["key"] for c in forwarder.calls(error_view(user={"id": "u-1"}), 0.0)] == ["u-1"]


# -- Segment: context.library, and rebuilding a consumer -------------------------------------


@pytest.mark.usefixtures("fresh_private")
def test_a_segment_client_writing_the_library_another_way_keeps_its_own_name(
    sentry_init: Callable[..., Any],
    segment_client: Any,
    segment_receiver: SegmentReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sentry_flags._segment import LIBRARY
    from sentry_flags.forwarders import SegmentForwarder

    enqueue = segment_client._enqueue

    def copying_enqueue(msg: dict[str, Any]) -> Any:
        msg["context"] = dict(msg["context"])  # a release that copies the context first
        return enqueue(msg)

    monkeypatch.setattr(segment_client, "_enqueue", copying_enqueue)
    forwarder = SegmentForwarder(segment_client)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})
    capture_error("first")
    capture_error("second")
    flush()

    messages = segment_receiver.wait_for_messages(2)
    assert {m["context"]["library"]["name"] for m in messages} == {"analytics-python"}
    assert sorted(m["properties"]["exceptionValue"] for m in messages) == ["first", "second"]
    assert forwarder.stats.forwarded == 2
    assert forwarder.stats.stepped_aside == {LIBRARY.path: 2}
    assert len(warnings_about(caplog, LIBRARY)) == 1


def test_a_segment_consumer_is_rebuilt_from_its_own_settings(make_segment_client: Callable[..., Any]) -> None:
    from sentry_flags._segment import rebuilt_consumer

    client = make_segment_client(send=False, upload_size=7, upload_interval=0.3, gzip=True)  # never started
    [old] = client.consumers
    fresh: queue.Queue[Any] = queue.Queue(3)
    new = rebuilt_consumer(old, fresh)

    assert new is not None
    assert type(new) is type(old)
    assert new is not old
    assert new.queue is fresh
    assert new.ident is None  # not started
    assert new.daemon
    for setting in ("upload_size", "upload_interval", "gzip", "write_key", "host", "retries", "timeout"):
        assert getattr(new, setting) == getattr(old, setting), setting


def test_a_segment_consumer_missing_a_setting_is_not_rebuilt(
    make_segment_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentry_flags._segment import rebuilt_consumer

    [consumer] = make_segment_client(send=False).consumers  # never started
    monkeypatch.delattr(consumer, "retries")  # a release that keeps it under another name
    assert rebuilt_consumer(consumer, queue.Queue()) is None
