"""SegmentForwarder with the legacy analytics-python 1.4 client (tox env ``segment-legacy``).

analytics-python 1.4 ships ``analytics`` and its own copy of ``segment/analytics`` (2.2.2),
so it cannot share an environment with segment-analytics-python: this module only runs
where the legacy package is what is installed, and skips everywhere else.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from helpers import (
    SEGMENT_LIBRARY,
    SEGMENT_WRITE_KEY,
    aim_segment_module,
    assert_is_error_captured,
    capture_error,
    capture_through_segment_module,
    init_forwarding,
)
from receivers import SegmentReceiver, wait_for

pytest.importorskip("analytics")

import analytics
import sentry_sdk

from sentry_flags.forwarders import SegmentForwarder
from sentry_flags.forwarders.segment import MAX_MESSAGE_SIZE

pytestmark = pytest.mark.usefixtures("own_isolation_scope")

if not str(getattr(analytics, "VERSION", "")).startswith("1."):
    pytest.skip(
        f"analytics {getattr(analytics, 'VERSION', '?')} is not analytics-python 1.x",
        allow_module_level=True,
    )


def bundled_segment_analytics() -> ModuleType:
    """analytics-python's own copy of ``segment.analytics``; skips if that is another package's."""
    module = pytest.importorskip("segment.analytics")
    try:
        files = importlib.metadata.files("analytics-python") or []
        dist = importlib.metadata.distribution("analytics-python")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("analytics-python is not installed as a distribution")
    bundled = {
        os.path.realpath(dist.locate_file(f)) for f in files if str(f) == "segment/analytics/__init__.py"
    }
    if os.path.realpath(Path(str(module.__file__))) not in bundled:
        pytest.skip("segment.analytics comes from segment-analytics-python, not analytics-python")
    return module


@pytest.fixture(params=["analytics", "segment.analytics (bundled copy)"])
def legacy(request: pytest.FixtureRequest) -> ModuleType:
    return analytics if request.param == "analytics" else bundled_segment_analytics()


@pytest.fixture
def make_client(legacy: ModuleType, segment_receiver: SegmentReceiver) -> Iterator[Callable[..., Any]]:
    clients: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings: dict[str, Any] = {
            "host": segment_receiver.host,
            "upload_interval": 0.05,
            "max_retries": 1,
            "timeout": 2,
        }
        settings.update(overrides)
        client = legacy.Client(SEGMENT_WRITE_KEY, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.join()


def init(sentry_init: Callable[..., Any], *forwarders: Any, **options: Any) -> Any:
    options.setdefault("release", "shop@1.2.3")
    return init_forwarding(sentry_init, *forwarders, **options)


def test_error_captured_arrives(
    sentry_init: Callable[..., Any], make_client: Callable[..., Any], segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(make_client())
    init(sentry_init, forwarder)
    sentry_sdk.set_user({"id": 42})

    event_id = capture_error("card declined", RuntimeError)
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    assert_is_error_captured(message, event_id, user_id="42")
    assert message["properties"] == {
        "eventId": event_id,
        "transaction": "",  # Sentry's forwarder sends "" for what the event lacks
        "environment": "production",
        "release": "shop@1.2.3",
        "level": "error",
        "exceptionType": "RuntimeError",
        "exceptionValue": "card declined",
    }
    assert message["context"] == {"library": SEGMENT_LIBRARY}
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.stepped_aside == {}  # the library write went as _segment expects


def test_a_consumer_is_rebuilt_from_its_own_settings(make_client: Callable[..., Any]) -> None:
    # What a forked child's restart does (sentry_flags._segment), on the legacy Consumer.
    import queue

    from sentry_flags._segment import rebuilt_consumer

    [old] = make_client(send=False, upload_size=7, gzip=True).consumers  # never started
    fresh: queue.Queue[Any] = queue.Queue(3)
    new = rebuilt_consumer(old, fresh)

    assert new is not None
    assert type(new) is type(old)
    assert new.queue is fresh
    for setting in ("upload_size", "upload_interval", "gzip", "write_key", "host", "retries", "timeout"):
        assert getattr(new, setting) == getattr(old, setting), setting


def test_huge_error_arrives_and_flush_does_not_hang(
    sentry_init: Callable[..., Any], make_client: Callable[..., Any], segment_receiver: SegmentReceiver
) -> None:
    # Over 32 KB, analytics-python 1.4 queues the message, drops it in its consumer without
    # task_done(), and every flush() after that waits forever.
    client = make_client()
    forwarder = SegmentForwarder(client)
    init(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})
    sentry_sdk.get_isolation_scope().set_transaction_name("/é" * 20_000)

    capture_error("\U0001f4a5" * 100_000, RuntimeError)
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    assert len(json.dumps(message).encode()) <= MAX_MESSAGE_SIZE
    wait_for(lambda: client.queue.unfinished_tasks == 0, message="nothing left for flush() to wait on")
    assert forwarder.stats.forwarded == 1


def test_what_the_size_limit_avoids(
    legacy: ModuleType, make_client: Callable[..., Any], segment_receiver: SegmentReceiver
) -> None:
    client = make_client()
    too_big = {"blob": "x" * (40 << 10)}
    if legacy is not analytics:
        with pytest.raises(RuntimeError, match="exceeds"):  # the bundled 2.2.2 refuses it
            client.track("u-1", "too big", too_big)
        return
    client.track("u-1", "too big", too_big)  # 1.4 accepts it...
    wait_for(lambda: client.queue.qsize() == 0, message="the consumer took it")
    # ...then drops it without marking it done: queue.join(), so flush(), would never return.
    assert client.queue.unfinished_tasks == 1
    assert segment_receiver.messages == []
    client.queue.task_done()


def test_module_level_api(
    sentry_init: Callable[..., Any],
    legacy: ModuleType,
    segment_receiver: SegmentReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aim_segment_module(monkeypatch, legacy, segment_receiver, write_key=SEGMENT_WRITE_KEY)
    forwarder = SegmentForwarder(legacy)
    init(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    message = capture_through_segment_module(legacy, segment_receiver, "boom")
    assert message["properties"]["exceptionValue"] == "boom"
    assert message["context"]["library"] == SEGMENT_LIBRARY
    # analytics.track() returns None, the client's (True, msg): both are accepted.
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.failed == 0


def test_what_its_retries_log_is_not_forwarded_but_the_apps_backoff_is(
    sentry_init: Callable[..., Any], make_client: Callable[..., Any], segment_receiver: SegmentReceiver
) -> None:
    from sentry_sdk.integrations.logging import LoggingIntegration

    from sentry_flags import FlagsIntegration
    from sentry_flags.testing import RecordingForwarder

    recorder = RecordingForwarder()
    # event_level said outright: sentry-sdk 3 sends no log record as an error event by default.
    sentry_init(
        integrations=[FlagsIntegration(forwarders=[recorder]), LoggingIntegration(event_level=logging.ERROR)],
        release="shop@1.2.3",
        environment="production",
    )
    segment_receiver.set_mode("error")
    client = make_client(max_retries=1)

    client.track("u-1", "Checked out")
    client.flush()  # the consumer retries with backoff, which gives up and logs it: "backoff"
    logging.getLogger("backoff").error("the app's own retries gave up")  # on the app's thread
    sentry_sdk.flush()
    wait_for(
        lambda: any(v.logger == "backoff" for v in recorder.views) and recorder.stats.skipped,
        message="the app's backoff forwarded, the consumer's skipped",
    )

    assert [(v.logger, v.message) for v in recorder.views] == [("backoff", "the app's own retries gave up")]
    assert recorder.stats.skipped["vendor_sdk_log"] >= 2  # backoff's and Segment's own "error uploading"
