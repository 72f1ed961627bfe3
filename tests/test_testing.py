"""sentry_flags.testing: what users rely on to assert on forwarding without a network."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import sentry_sdk

from receivers import LaunchDarklyReceiver, SentryReceiver, assert_never, wait_for
from sentry_flags import FlagsIntegration
from sentry_flags.forwarders import Forwarder, Stats, VendorCall
from sentry_flags.testing import (
    ForwardedCall,
    RecordingForwarder,
    capture_forwarded,
    current_integration,
    flush_forwarders,
)

FLAG = "new-checkout"


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


def capture(message: str) -> str:
    try:
        raise ValueError(message)
    except ValueError:
        event_id = sentry_sdk.capture_exception()
    assert event_id is not None
    return event_id


def patched(forwarder: Forwarder) -> set[str]:
    return {"_deliver", "send", "flush"} & set(vars(forwarder))


@pytest.fixture
def ld(ld_client: Any, ld_test_data: Any) -> Any:
    pytest.importorskip("ldclient")
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    return ld_client


@pytest.fixture
def ld_setup(sentry_init: Callable[..., Any], ld: Any) -> tuple[Any, RecordingForwarder]:
    from sentry_flags.forwarders import LaunchDarklyForwarder

    forwarder = LaunchDarklyForwarder(ld)
    recorder = RecordingForwarder()
    sentry_init(
        integrations=[FlagsIntegration(launchdarkly_client=ld, forwarders=[forwarder, recorder])],
        environment="test",
    )
    from ldclient import Context

    ld.variation(FLAG, Context.create("user-1"), False)  # the context of this test's scope
    return forwarder, recorder


# -- capture_forwarded ---------------------------------------------------------------------------


def test_records_the_vendor_calls_and_sends_nothing(
    ld_setup: tuple[Any, RecordingForwarder],
    ld_receiver: LaunchDarklyReceiver,
    sentry_receiver: SentryReceiver,
) -> None:
    forwarder, recorder = ld_setup
    with capture_forwarded() as calls:
        event_id = capture("boom")

    # Complete on exit: the block drained the queue before restoring the forwarders.
    assert [c.vendor for c in calls] == ["launchdarkly", "recording"]
    ld_call = calls[0]
    assert ld_call.method == "track"
    assert ld_call.event_id == event_id
    assert ld_call.forwarder is forwarder
    assert ld_call.kwargs["event_name"] == "sentry-errors"
    assert ld_call.kwargs["context"].key == "user-1"
    assert ld_call.kwargs["data"]["exceptionValue"] == "boom"
    assert ld_call.as_dict() == {
        "vendor": "launchdarkly",
        "method": "track",
        "kwargs": dict(ld_call.kwargs),
        "event_id": event_id,
    }
    assert forwarder.stats.forwarded == 1  # counted as production would
    assert recorder.views == []  # RecordingForwarder.send was replaced too

    sentry_sdk.flush()
    sentry_receiver.wait_for_events(1)  # Sentry itself is untouched
    assert_never(lambda: ld_receiver.custom_events, duration=0.3)


def test_forwarders_are_restored_after_the_block(
    ld_setup: tuple[Any, RecordingForwarder], ld_receiver: LaunchDarklyReceiver
) -> None:
    forwarder, recorder = ld_setup
    with capture_forwarded():
        assert patched(forwarder) == patched(recorder) == {"_deliver", "send", "flush"}
    assert patched(forwarder) == patched(recorder) == set()

    capture("after the block")
    sentry_sdk.flush()
    [event] = wait_for(lambda: ld_receiver.custom_events)
    assert event["data"]["exceptionValue"] == "after the block"
    assert recorder.wait_for(1)


def test_forwarders_are_restored_when_the_block_raises(
    ld_setup: tuple[Any, RecordingForwarder], ld_receiver: LaunchDarklyReceiver
) -> None:
    forwarder, recorder = ld_setup
    blocks: list[list[ForwardedCall]] = []

    def failing_test_body() -> None:
        with capture_forwarded() as calls:
            blocks.append(calls)
            capture("inside")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_test_body()
    [calls] = blocks
    assert [c.vendor for c in calls] == ["launchdarkly", "recording"]
    assert patched(forwarder) == patched(recorder) == set()
    sentry_sdk.flush()
    assert_never(lambda: ld_receiver.custom_events, duration=0.3)


def test_instance_level_overrides_survive(sentry_init: Callable[..., Any]) -> None:
    recorder = RecordingForwarder()
    own_send = recorder.send
    recorder.send = own_send  # type: ignore[method-assign]
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])])
    with capture_forwarded():
        pass
    assert vars(recorder)["send"] is own_send
    assert "handle" not in vars(recorder)


def test_flush_forwarders_inside_the_block(sentry_init: Callable[..., Any]) -> None:
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])])
    with capture_forwarded() as calls:
        event_id = capture("boom")
        assert flush_forwarders()
        assert [(c.vendor, c.method, c.event_id) for c in calls] == [("recording", "record", event_id)]
        assert calls[0].kwargs["view"].exception_value == "boom"
        assert recorder.flushes == 0  # vendor flushes are skipped while recording
    assert flush_forwarders()
    assert recorder.flushes == 1


def test_errors_captured_before_the_block_are_delivered_normally(
    sentry_init: Callable[..., Any],
) -> None:
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])])
    before = capture("before")  # still queued: the worker wakes on a timer
    with capture_forwarded() as calls:
        inside = capture("inside")
    assert [c.event_id for c in calls] == [inside]
    assert recorder.event_ids == [before]


def test_skips_are_not_recorded_but_counted(sentry_init: Callable[..., Any]) -> None:
    production = RecordingForwarder(environments={"production"})
    sentry_init(integrations=[FlagsIntegration(forwarders=[production])], environment="staging")
    with capture_forwarded() as calls:
        capture("boom")
    assert calls == []
    assert production.stats.skipped == {"environment": 1}


def test_nested_blocks_record_into_the_innermost(sentry_init: Callable[..., Any]) -> None:
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])])
    with capture_forwarded() as outer:
        with capture_forwarded() as inner:
            in_inner = capture("inner")
        in_outer = capture("outer")
    assert [c.event_id for c in inner] == [in_inner]
    assert [c.event_id for c in outer] == [in_outer]
    assert recorder.views == []
    assert patched(recorder) == set()


def test_explicit_integration(sentry_init: Callable[..., Any]) -> None:
    recorder = RecordingForwarder()
    integration = FlagsIntegration(forwarders=[recorder])
    sentry_init(integrations=[integration])
    assert current_integration() is integration
    with capture_forwarded(integration=integration) as calls:
        capture("boom")
    assert len(calls) == 1
    assert flush_forwarders(integration=integration)


def test_integration_without_forwarders_records_nothing(sentry_init: Callable[..., Any]) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    with capture_forwarded() as calls:
        capture("boom")
    assert calls == []
    assert flush_forwarders()


def test_without_the_integration_it_says_what_to_do(sentry_init: Callable[..., Any]) -> None:
    sentry_init()
    with pytest.raises(RuntimeError, match=r"FlagsIntegration\(forwarders="), capture_forwarded():
        pass
    with pytest.raises(RuntimeError, match="no FlagsIntegration"):
        flush_forwarders()


def test_recording_is_per_event_for_custom_forwarders(sentry_init: Callable[..., Any]) -> None:
    class TwoCalls(Forwarder):
        vendor = "two"

        def calls(self, view: Any, captured_at: float) -> list[VendorCall]:
            return [VendorCall("a", {"id": view.event_id}), VendorCall("b", {})]

        def send(self, call: VendorCall) -> bool:
            raise AssertionError("the vendor must not be called while recording")

    forwarder = TwoCalls()
    sentry_init(integrations=[FlagsIntegration(forwarders=[forwarder])])
    with capture_forwarded() as calls:
        event_id = capture("boom")
    assert calls == [
        ForwardedCall("two", "a", {"id": event_id}, event_id, forwarder),
        ForwardedCall("two", "b", {}, event_id, forwarder),
    ]
    assert forwarder.stats == Stats(errors=1, forwarded=1, calls={"forwarded": 2})


# -- RecordingForwarder ---------------------------------------------------------------------------


def test_recording_forwarder_keeps_views(sentry_init: Callable[..., Any]) -> None:
    recorder = RecordingForwarder()
    sentry_init(
        integrations=[FlagsIntegration(forwarders=[recorder])],
        environment="production",
        release="shop@2",
    )
    first, second = capture("one"), capture("two")
    assert recorder.wait_for(2)
    assert recorder.event_ids == [first, second]
    view = recorder.views[0]
    assert (view.exception_type, view.exception_value) == ("ValueError", "one")
    assert (view.environment, view.release) == ("production", "shop@2")
    assert recorder.stats.forwarded == 2

    sentry_sdk.flush()
    assert recorder.flushes >= 1
    recorder.clear()
    assert recorder.views == []


def test_recording_forwarder_wait_for_times_out() -> None:
    assert RecordingForwarder().wait_for(1, timeout=0.05) is False


def test_recording_forwarder_environment_filter(sentry_init: Callable[..., Any]) -> None:
    recorder = RecordingForwarder(environments={"production"})
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])], environment="staging")
    capture("boom")
    assert flush_forwarders()
    assert recorder.views == []
    assert recorder.stats.skipped == {"environment": 1}
