"""SplitForwarder: real sentry-sdk and a real Split client, events read off the Split receiver."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import (
    SECRET_EMAIL,
    SECRET_IP,
    SECRET_TOKEN,
    assert_backs_off_after_one_refusal,
    capture_error,
    capture_errors_of_one_user,
    destroy_split_factories,
    error_view,
    flask_checkout,
    flask_transaction,
    handle,
    init_forwarding,
    started_split_factory,
)
from receivers import SplitReceiver, assert_never, wait_for

pytest.importorskip("splitio")

import sentry_sdk
from splitio.client import input_validator

from sentry_flags import ErrorView
from sentry_flags.forwarders import SplitForwarder, Stats
from sentry_flags.forwarders._split_events import (
    BASE_EVENT_SIZE,
    MAX_LONG_TEXT,
    MAX_PROPERTIES,
    MAX_PROPERTIES_SIZE,
    error_properties,
)
from sentry_flags.forwarders._split_options import normalize_path
from sentry_flags.forwarders.split import culprit_event_type
from sentry_flags.testing import capture_forwarded

pytestmark = pytest.mark.usefixtures("own_isolation_scope")

EVENT_TYPE_PATTERN = re.compile(input_validator.EVENT_TYPE_PATTERN)


def properties_size(properties: dict[str, Any]) -> int:
    """Split's own accounting (splitio.client.input_validator.valid_properties)."""
    valid, _, size = input_validator.valid_properties(properties, "track")
    assert valid
    return int(size)


def assert_split_accepts(kwargs: dict[str, Any]) -> None:
    """What splitio's validators would say about one track call."""
    assert input_validator.validate_track_key(kwargs["key"]) == kwargs["key"]
    assert input_validator.validate_event_type(kwargs["event_type"]) == kwargs["event_type"]
    assert input_validator.validate_value(kwargs["value"]) is not False
    assert kwargs["traffic_type"] == kwargs["traffic_type"].lower()
    assert len(kwargs["properties"]) <= MAX_PROPERTIES
    assert properties_size(kwargs["properties"]) <= MAX_PROPERTIES_SIZE
    json.dumps(kwargs["properties"], allow_nan=False)  # what reaches Split's API is JSON


class FakeSplit:
    """A duck-typed Split client for the pure ``calls()`` tests: records, answers from a script."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.tracked: list[dict[str, Any]] = []

    def track(
        self, key: Any, traffic_type: Any, event_type: Any, value: Any = None, properties: Any = None
    ) -> Any:
        self.tracked.append(
            {"key": key, "traffic_type": traffic_type, "event_type": event_type, "properties": properties}
        )
        return self.answers.pop(0) if self.answers else True


def view(**fields: Any) -> ErrorView:
    # What SplitForwarder's defaults look for: both identities (user.id, user.orgId), a culprit.
    defaults = {"culprit": "shop.views in checkout", "user": {"id": "u-1", "orgId": "acme"}}
    return error_view(**{**defaults, **fields})


# -- end to end: real sentry-sdk, real Split client, the Split receiver ------------------------


def test_one_event_per_identity_mapping(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(split_client, capture_culprit=False)
    init_forwarding(sentry_init, forwarder, release="shop@1.2.3")
    sentry_sdk.set_user({"id": "u-1", "orgId": 42})

    event_id = capture_error("card declined", RuntimeError)
    sentry_sdk.flush()

    events = split_receiver.wait_for_events(2)
    assert len(events) == 2
    by_type = {e["trafficTypeName"]: e for e in events}
    assert by_type["user"]["key"] == "u-1"
    assert by_type["org"]["key"] == "42"  # keys are sent as str
    for event in events:
        assert event["eventTypeId"] == "sentry_exception"
        assert event["value"] is None
        props = event["properties"]
        assert props["source"] == "sentry"
        assert props["eventId"] == event_id
        assert props["exceptionType"] == "RuntimeError"
        assert props["exceptionValue"] == "card declined"
        assert props["environment"] == "production"
        assert props["release"] == "shop@1.2.3"
        assert props["level"] == "error"
        assert "capture" in props["culprit"]
        assert "transaction" not in props  # unknown outside a request: left out, not null
    # One error, two track calls: stats count the error once and the calls apart.
    assert forwarder.stats == Stats(errors=1, forwarded=1, calls={"forwarded": 2})


def test_pasted_and_nested_paths_and_a_skipped_mapping_is_counted(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    ldclient = pytest.importorskip("ldclient")
    from sentry_flags import set_launchdarkly_context

    forwarder = SplitForwarder(
        split_client,
        identities={
            "user": "data.error.user.id",  # as pasted from Split's webhook mapping
            "org": "contexts.launchdarklyContext.org.key",
            "tenant": "tags.tenant",
        },
        capture_culprit=False,
    )
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-9"})
    set_launchdarkly_context(
        ldclient.Context.create_multi(ldclient.Context.create("u-9"), ldclient.Context.create("org-7", "org"))
    )

    sentry_sdk.set_tag("tenant", "acme")
    capture_error("first")
    sentry_sdk.get_isolation_scope().remove_tag("tenant")
    capture_error("second")
    sentry_sdk.flush()

    events = split_receiver.wait_for_events(5)
    assert len(events) == 5
    keys = sorted((e["trafficTypeName"], e["key"], e["properties"]["exceptionValue"]) for e in events)
    assert keys == [
        ("org", "org-7", "first"),
        ("org", "org-7", "second"),
        ("tenant", "acme", "first"),
        ("user", "u-9", "first"),
        ("user", "u-9", "second"),
    ]
    assert forwarder.stats == Stats(errors=2, forwarded=2, calls={"forwarded": 5, "no_identity:tenant": 1})


def test_environment_filter(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    production_only = SplitForwarder(split_client, environments={"production"})
    every_env = SplitForwarder(split_client, identities={"user": "user.id"})  # the default: None
    init_forwarding(sentry_init, production_only, every_env, environment="staging")
    sentry_sdk.set_user({"id": "u-1", "orgId": "acme"})

    capture_error("boom")
    sentry_sdk.flush()

    [event] = split_receiver.wait_for_events(1)
    assert event["trafficTypeName"] == "user"
    assert event["properties"]["environment"] == "staging"
    assert_never(lambda: len(split_receiver.events) > 1, duration=0.5)
    assert production_only.stats.skipped == {"environment": 1}
    assert production_only.stats.forwarded == 0
    assert every_env.stats.forwarded == 1


def test_culprit_event_is_deterministic_and_valid(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=True)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    for message in ("one", "two"):
        try:  # raised here, so the culprit names this module
            raise ValueError(message)
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush()

    events = split_receiver.wait_for_events(4)
    types = [e["eventTypeId"] for e in events]
    assert types.count("sentry_exception") == 2
    culprit_types = {t for t in types if t != "sentry_exception"}
    assert len(culprit_types) == 1  # same culprit, same event type
    [culprit_type] = culprit_types
    culprit = events[0]["properties"]["culprit"]
    assert culprit_type == culprit_event_type("sentry_exception", culprit)
    assert culprit_type.startswith("sentry_exception:test_forwarder_split")
    assert EVENT_TYPE_PATTERN.fullmatch(culprit_type)
    assert forwarder.stats == Stats(errors=2, forwarded=2, calls={"forwarded": 4})


def test_long_non_ascii_transaction_names_a_valid_culprit_event(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=True)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})
    transaction = "/заказы/{id}/оплата/" + "ü" * 300
    sentry_sdk.get_current_scope().set_transaction_name(transaction)

    capture_error("boom")
    sentry_sdk.flush()

    events = split_receiver.wait_for_events(2)
    [culprit_type] = [e["eventTypeId"] for e in events if e["eventTypeId"] != "sentry_exception"]
    assert culprit_type == culprit_event_type("sentry_exception", transaction)
    assert len(culprit_type) <= 80
    assert EVENT_TYPE_PATTERN.fullmatch(culprit_type)
    assert events[0]["properties"]["transaction"].startswith("/заказы/")
    assert forwarder.stats.failed == 0


def test_huge_exception_value_and_many_long_tags_stay_within_split_limits(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=False)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})
    for i in range(400):
        sentry_sdk.set_tag(f"tag{i:03d}", "v" * 150)

    capture_error("x" * 100_000)
    sentry_sdk.flush()

    [event] = split_receiver.wait_for_events(1)
    props = event["properties"]
    assert len(props["exceptionValue"]) == MAX_LONG_TEXT
    assert props["exceptionValue"].endswith("...")
    assert props["exceptionType"] == "ValueError"
    assert len(props) <= MAX_PROPERTIES
    size = properties_size(props)
    assert MAX_PROPERTIES_SIZE - 200 < size <= MAX_PROPERTIES_SIZE  # filled, never over
    assert props["tags.tag000"] == "v" * 150
    assert forwarder.stats.forwarded == 1


def test_many_small_tags_stop_at_300_properties(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=False)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})
    for i in range(500):
        sentry_sdk.set_tag(f"t{i}", i)

    capture_error("boom")
    sentry_sdk.flush()

    [event] = split_receiver.wait_for_events(1)
    assert len(event["properties"]) == MAX_PROPERTIES
    assert event["properties"]["source"] == "sentry"


def test_no_personal_data_reaches_split_without_send_default_pii(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(
        split_client,
        identities={"user": "user.id", "email": "user.email", "ip": "user.ip_address",
                    "query": "request.query_string"},
        capture_culprit=True,
    )  # fmt: skip
    flask_checkout(sentry_init, forwarder, f"/checkout?token={SECRET_TOKEN}&email={SECRET_EMAIL}", pii=False)

    events = split_receiver.wait_for_events(2)  # user: sentry_exception + the culprit event
    assert {e["trafficTypeName"] for e in events} == {"user"}
    # The culprit is the transaction: "checkout" on sentry-sdk 2.x, "/checkout" on 3.x.
    culprit = culprit_event_type("sentry_exception", flask_transaction("checkout", "/checkout"))
    assert {e["eventTypeId"] for e in events} == {"sentry_exception", culprit}
    wire = b"".join(r.body for r in split_receiver.requests)
    for secret in (SECRET_EMAIL, SECRET_IP, SECRET_TOKEN, "jane"):
        assert secret.encode() not in wire
    assert forwarder.stats == Stats(
        errors=1, forwarded=1,
        calls={"forwarded": 2, "no_identity:email": 1, "no_identity:ip": 1, "no_identity:query": 1},
    )  # fmt: skip


def test_flush_makes_split_post_its_queue_now(
    sentry_init: Callable[..., Any], make_split_factory: Callable[..., Any], split_receiver: SplitReceiver
) -> None:
    # Left alone, Split would post in a minute; its events task starts after "ready".
    factory = started_split_factory(make_split_factory(eventsPushRate=60))
    forwarder = SplitForwarder(factory.client(), identities={"user": "user.id"}, capture_culprit=False)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("boom")
    sentry_sdk.flush()

    [event] = split_receiver.wait_for_events(1, timeout=5)
    assert event["key"] == "u-1"


def test_refused_track_backs_off(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver, mocker: Any
) -> None:
    track = mocker.patch.object(split_client, "track", return_value=False)
    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=False)
    assert_backs_off_after_one_refusal(sentry_init, forwarder, track)
    assert split_receiver.events == []


def test_split_refusing_events_while_its_api_is_down_backs_off(
    sentry_init: Callable[..., Any], make_split_factory: Callable[..., Any], split_receiver: SplitReceiver
) -> None:
    # Events API down, flags API up. splitio keeps failed posts aside and stops taking new
    # ones from its queue; once the queue is full each track forces a flush and returns False.
    factory = started_split_factory(
        make_split_factory(eventsQueueSize=2, eventsBulkSize=1, eventsPushRate=60)
    )
    split_receiver.set_mode("error", path_prefix="/api/events")
    forwarder = SplitForwarder(factory.client(), identities={"user": "user.id"}, capture_culprit=False)
    capture_errors_of_one_user(sentry_init, forwarder, 5)

    stats = forwarder.stats
    assert stats.forwarded == 2  # queued by splitio
    assert stats.failed == 1  # refused: its queue was full
    assert stats.skipped["backoff"] == 2  # not even asked
    # splitio logs its failed posts at ERROR; Sentry gets them, Split never does.
    assert set(stats.skipped) <= {"backoff", "vendor_sdk_log"}
    assert split_receiver.events == []


def test_destroyed_or_unready_client_is_not_called(
    sentry_init: Callable[..., Any],
    make_split_factory: Callable[..., Any],
    split_receiver: SplitReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    destroyed_factory = started_split_factory(make_split_factory())
    destroyed_client = destroyed_factory.client()
    done = threading.Event()
    destroyed_factory.destroy(done)
    assert done.wait(10)
    # Pre-fork mode: synced, but not ready until factory.resume() in the child process.
    unready_client = make_split_factory(preforkedInitialization=True).client()
    assert unready_client.ready is False
    destroyed = SplitForwarder(destroyed_client, identities={"user": "user.id"})
    unready = SplitForwarder(unready_client, identities={"user": "user.id"})
    init_forwarding(sentry_init, destroyed, unready)
    sentry_sdk.set_user({"id": "u-1"})

    caplog.clear()
    caplog.set_level(logging.WARNING, logger="sentry_flags")  # whatever an earlier test left
    capture_error("boom")
    sentry_sdk.flush()

    assert destroyed.stats.skipped == {"client_destroyed": 1}
    assert unready.stats.skipped == {"not_ready": 1}
    assert destroyed.stats.failed == unready.stats.failed == 0
    # splitio was never asked, so it logged nothing about our calls
    vendor = [r for r in caplog.records if r.name != "sentry_flags"]
    assert not [r for r in vendor if "track" in r.getMessage() or "destroyed" in r.getMessage()]
    assert split_receiver.events == []
    # The operator is told, once, on our logger.
    told = wait_for(lambda: sorted(
        r.getMessage() for r in caplog.records if r.name == "sentry_flags" and r.levelno == logging.WARNING
    ))  # fmt: skip
    assert len(told) == 2
    assert told[0].startswith("1 error not forwarded to Split in the last ")
    assert told[0].endswith(": client destroyed (1)")
    assert told[1].endswith(": not ready (1)")


@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")  # splitio's own
def test_a_localhost_mode_client_is_skipped_not_counted_as_forwarded(
    sentry_init: Callable[..., Any], tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from splitio import get_factory

    split_file = tmp_path / "splits.yaml"
    split_file.write_text("- checkout:\n    treatment: 'on'\n")
    factory = get_factory("localhost", config={"splitFile": str(split_file)})
    try:
        factory.block_until_ready(5)
        client = factory.client()
        assert client.track("u-1", "user", "sentry_exception") is None  # what it does: nothing
        forwarder = SplitForwarder(client)
        init_forwarding(sentry_init, forwarder)
        sentry_sdk.set_user({"id": "u-1"})
        caplog.set_level(logging.WARNING, logger="sentry_flags")

        capture_error("boom")
        capture_error("boom again")
        sentry_sdk.flush()

        stats = forwarder.stats
        assert (stats.errors, stats.forwarded, stats.failed) == (2, 0, 0)
        assert stats.skipped == {"localhost_mode": 2}
        assert stats.calls == {}  # track was not called
        assert [r for r in caplog.records if r.name == "sentry_flags"] == []  # by design: no warning
    finally:
        destroy_split_factories([factory])


def test_capture_forwarded_records_split_calls(
    sentry_init: Callable[..., Any], split_client: Any, split_receiver: SplitReceiver
) -> None:
    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=True)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    with capture_forwarded() as calls:
        capture_error("boom")

    assert [c.kwargs["traffic_type"] for c in calls] == ["user", "user"]
    assert calls[0].kwargs["event_type"] == "sentry_exception"
    assert calls[1].kwargs["event_type"].startswith("sentry_exception:")
    assert_never(lambda: split_receiver.events, duration=0.4)


# -- asyncio client: track awaited on the app's loop, from our worker thread -------------------


class AsyncFakeSplit:
    """Shaped like splitio's ClientAsync (``async def track``); its SDK needs aiohttp."""

    def __init__(self, answer: Any = True, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.tracked: list[dict[str, Any]] = []
        self.threads: set[int] = set()

    async def track(
        self, key: Any, traffic_type: Any, event_type: Any, value: Any = None, properties: Any = None
    ) -> Any:
        self.threads.add(threading.get_ident())
        if self.delay:
            await asyncio.sleep(self.delay)
        self.tracked.append({"key": key, "traffic_type": traffic_type, "event_type": event_type})
        return self.answer


@pytest.fixture
def loop_thread() -> Iterator[tuple[asyncio.AbstractEventLoop, threading.Thread]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="app-loop", daemon=True)
    thread.start()
    yield loop, thread
    loop.call_soon_threadsafe(loop.stop)
    thread.join(2)
    loop.close()


def test_async_client_is_awaited_on_its_own_loop(
    sentry_init: Callable[..., Any], loop_thread: tuple[asyncio.AbstractEventLoop, threading.Thread]
) -> None:
    loop, thread = loop_thread
    client = AsyncFakeSplit()
    forwarder = SplitForwarder(client, identities={"user": "user.id"}, capture_culprit=True, loop=loop)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("boom")
    sentry_sdk.flush()

    assert [t["event_type"] for t in client.tracked] == [
        "sentry_exception",
        culprit_event_type("sentry_exception", "helpers in raise_and_capture"),
    ]
    assert client.threads == {thread.ident}
    assert forwarder.stats == Stats(errors=1, forwarded=1, calls={"forwarded": 2})


def test_async_client_refusal_timeout_and_closed_loop(
    loop_thread: tuple[asyncio.AbstractEventLoop, threading.Thread],
) -> None:
    loop, _ = loop_thread
    refusing = SplitForwarder(
        AsyncFakeSplit(answer=False), identities={"user": "user.id"}, capture_culprit=False, loop=loop
    )
    handle(refusing, view(), 10.0)
    handle(refusing, view(), 10.5)
    assert refusing.stats.failed == 1
    assert refusing.stats.skipped == {"backoff": 1}

    slow_client = AsyncFakeSplit(delay=0.3)
    slow = SplitForwarder(slow_client, identities={"user": "user.id"}, capture_culprit=False, loop=loop)
    slow.async_timeout = 0.05
    handle(slow, view(), 10.0)
    assert slow.stats.failed == 1
    # Cancelled on the loop, not left running: it would have finished after 0.3s.
    assert_never(lambda: slow_client.tracked, duration=0.6)

    closed = asyncio.new_event_loop()
    closed.close()
    gone = SplitForwarder(AsyncFakeSplit(), identities={"user": "user.id"}, capture_culprit=True, loop=closed)
    with no_warnings():
        handle(gone, view(), 10.0)
    # Both calls of the error failed, the second without trying: its first was refused.
    assert gone.stats == Stats(errors=1, failed=1, calls={"failed": 2})
    gone.flush()  # nothing to do, must not raise


@contextmanager
def no_warnings() -> Iterator[None]:
    """Fails on any warning inside, e.g. a coroutine that was never awaited."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught] == []


# -- the pure part: calls(), limits, naming ----------------------------------------------------


def test_calls_for_identities_and_culprit() -> None:
    forwarder = SplitForwarder(FakeSplit(), value=1.5, capture_culprit=True)
    calls = forwarder.calls(view(), 0.0)
    assert [(c.kwargs["traffic_type"], c.kwargs["key"], c.kwargs["event_type"]) for c in calls] == [
        ("user", "u-1", "sentry_exception"),
        ("user", "u-1", culprit_event_type("sentry_exception", "shop.views in checkout")),
        ("org", "acme", "sentry_exception"),
        ("org", "acme", culprit_event_type("sentry_exception", "shop.views in checkout")),
    ]
    for call in calls:
        assert call.method == "track"
        assert call.kwargs["value"] == 1.5
        assert_split_accepts(dict(call.kwargs))


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ("u-1", "u-1"),
        (42, "42"),
        (1.5, "1.5"),
        ("ключ", "ключ"),
        ("k" * 250, "k" * 250),
        (True, None),
        ("", None),
        ("   ", None),
        ({"id": 1}, None),
        ([1], None),
        (None, None),
        (math.nan, None),
    ],
)
def test_keys(found: Any, expected: Optional[str]) -> None:
    forwarder = SplitForwarder(FakeSplit(), identities={"user": "user.id"}, capture_culprit=False)
    calls = forwarder.calls(view(user={"id": found}), 0.0)
    if expected is None:
        assert calls == []
        assert getattr(calls, "reason", None) == "no_identity"
        assert forwarder.stats.calls == {"no_identity:user": 1}
    else:
        [call] = calls
        assert call.kwargs["key"] == expected
        assert_split_accepts(dict(call.kwargs))


def test_key_over_250_characters_is_skipped_and_counted() -> None:
    forwarder = SplitForwarder(FakeSplit(), capture_culprit=False)
    calls = forwarder.calls(view(user={"id": "k" * 251, "orgId": "acme"}), 0.0)
    assert [c.kwargs["traffic_type"] for c in calls] == ["org"]
    assert forwarder.stats.calls == {"key_too_long:user": 1}


def test_no_culprit_still_sends_the_error_event() -> None:
    forwarder = SplitForwarder(FakeSplit(), identities={"user": "user.id"}, capture_culprit=True)
    calls = forwarder.calls(view(culprit=None), 0.0)
    assert [c.kwargs["event_type"] for c in calls] == ["sentry_exception"]
    assert forwarder.stats.calls == {"no_culprit": 1}


def test_message_events_carry_their_message_and_tags_can_be_left_out() -> None:
    forwarder = SplitForwarder(FakeSplit(), identities={"user": "user.id"}, include_tags=False)
    error = view(exception_type=None, exception_value=None, message="disk full", tags={"a": "b"})
    props = forwarder.calls(error, 0.0)[0].kwargs["properties"]
    assert props["message"] == "disk full"
    assert "exceptionType" not in props
    assert not any(k.startswith("tags.") for k in props)


def test_tag_values_are_made_split_safe() -> None:
    props = error_properties(
        view(tags={"n": 3, "f": 0.5, "inf": math.inf, "b": False, "none": None, "obj": [1, 2],
                   "k" * 65: "dropped", "long": "x" * 500})
    )  # fmt: skip
    assert props["tags.n"] == 3
    assert props["tags.f"] == 0.5
    assert props["tags.inf"] == "inf"
    assert props["tags.b"] is False
    assert props["tags.none"] is None
    assert props["tags.obj"] == "[1, 2]"
    assert len(props["tags.long"]) == 200
    assert not any(k.startswith("tags.kkk") for k in props)
    json.dumps(props, allow_nan=False)


def test_backoff_doubles_to_the_cap_and_resets_on_success() -> None:
    client = FakeSplit(False, False, True, False)
    forwarder = SplitForwarder(client, identities={"user": "user.id"}, capture_culprit=False)
    handle(forwarder, view(), 100.0)  # refused: pause 1s
    handle(forwarder, view(), 100.9)  # skipped
    handle(forwarder, view(), 101.0)  # refused again: pause 2s
    handle(forwarder, view(), 102.9)  # skipped
    handle(forwarder, view(), 103.0)  # accepted: reset
    handle(forwarder, view(), 103.1)  # refused: pause 1s again
    handle(forwarder, view(), 104.2)  # accepted
    assert len(client.tracked) == 5
    assert forwarder.stats.failed == 3
    assert forwarder.stats.forwarded == 2
    assert forwarder.stats.skipped == {"backoff": 2}

    capped = SplitForwarder(FakeSplit(*[False] * 20), identities={"user": "user.id"})
    now = 0.0
    for _ in range(10):
        handle(capped, view(), now)
        now = capped._resume_at
    assert capped._delay == capped.backoff_max


def test_a_raising_track_counts_as_failed_and_backs_off() -> None:
    class Broken:
        def track(self, *args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("split is broken")

    forwarder = SplitForwarder(Broken(), identities={"user": "user.id"}, capture_culprit=False)
    handle(forwarder, view(), 1.0)
    handle(forwarder, view(), 1.5)
    assert forwarder.stats.failed == 1
    assert forwarder.stats.skipped == {"backoff": 1}


def test_flush_without_a_reachable_events_task_is_a_no_op() -> None:
    SplitForwarder(FakeSplit()).flush()


def test_module_does_not_import_splitio() -> None:
    code = (
        "import sys; from sentry_flags.forwarders import SplitForwarder; "
        "SplitForwarder(type('C', (), {'track': lambda self, *a, **k: True})()); "
        "assert 'splitio' not in sys.modules, 'splitio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("user.id", ("user", "id")),
        ("data.error.user.id", ("user", "id")),
        ("data.event.tags.tenant", ("tags", "tenant")),
        ("data.user.orgId", ("user", "orgId")),
        ("error.contexts.launchdarklyContext.org.key", ("contexts", "launchdarklyContext", "org", "key")),
        (" tags.tenant ", ("tags", "tenant")),
        ("event_id", ("event_id",)),
    ],
)
def test_paths(pasted: str, expected: tuple[str, ...]) -> None:
    assert normalize_path(pasted) == expected


def test_traffic_types_are_lowercased_like_split_does() -> None:
    forwarder = SplitForwarder(FakeSplit(), identities={"User": "user.id"}, capture_culprit=False)
    [call] = forwarder.calls(view(), 0.0)
    assert call.kwargs["traffic_type"] == "user"


def test_long_event_type_is_fine_without_culprit_events() -> None:
    forwarder = SplitForwarder(FakeSplit(), event_type="e" * 80, capture_culprit=False)
    [call, _] = forwarder.calls(view(), 0.0)
    assert_split_accepts(dict(call.kwargs))


@pytest.mark.parametrize(
    ("culprit", "expected"),
    [
        ("checkout", "sentry_exception:checkout"),
        ("shop.views", "sentry_exception:shop.views"),
        ("api-v2.orders", "sentry_exception:api-v2.orders"),
    ],
)
def test_clean_culprits_are_kept_as_they_are(culprit: str, expected: str) -> None:
    assert culprit_event_type("sentry_exception", culprit) == expected


def test_altered_culprits_get_a_hash_that_keeps_them_apart() -> None:
    a = culprit_event_type("sentry_exception", "/api/orders")
    b = culprit_event_type("sentry_exception", "api orders")
    assert a.startswith("sentry_exception:api_orders-")
    assert b.startswith("sentry_exception:api_orders-")
    assert a != b
    # Nothing left after reduction: the hash alone still names it.
    assert re.fullmatch(r"sentry_exception:[0-9a-f]{8}", culprit_event_type("sentry_exception", "函数"))
    accented = culprit_event_type("sentry_exception", "café in créer")
    assert accented.startswith("sentry_exception:cafe_in_creer-")


@pytest.mark.parametrize(
    ("culprit", "expected"),
    [  # the examples in docs/forwarders-split.md; a change here renames users' Split events
        ("shop.views in checkout", "sentry_exception:shop.views_in_checkout-375fca34"),
        ("/заказы/{id}", "sentry_exception:id-5325722c"),
        ("函数", "sentry_exception:18329906"),
    ],
)
def test_culprit_names_are_stable(culprit: str, expected: str) -> None:
    assert culprit_event_type("sentry_exception", culprit) == expected


def test_culprit_is_cut_to_fit_80_characters() -> None:
    long = "views." + "a" * 200
    event_type = culprit_event_type("sentry_exception", long)
    assert len(event_type) == 80
    assert event_type.startswith("sentry_exception:views.aaa")
    assert re.search(r"-[0-9a-f]{8}$", event_type)
    assert event_type != culprit_event_type("sentry_exception", long + "b")


@settings(max_examples=200, deadline=None)
@given(prefix=st.from_regex(r"[a-zA-Z0-9][-_.:a-zA-Z0-9]{0,62}", fullmatch=True), culprit=st.text(min_size=1))
def test_culprit_event_types_are_always_valid(prefix: str, culprit: str) -> None:
    event_type = culprit_event_type(prefix, culprit)
    assert len(event_type) <= 80
    assert EVENT_TYPE_PATTERN.fullmatch(event_type)
    assert input_validator.validate_event_type(event_type) == event_type
    assert event_type == culprit_event_type(prefix, culprit)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=300))


@settings(max_examples=100, deadline=None)
@given(
    tags=st.dictionaries(st.text(max_size=70), scalars, max_size=400),
    value=st.text(max_size=50),
    repeat=st.integers(min_value=1, max_value=2000),
    culprit=st.one_of(st.none(), st.text(max_size=400)),
)
def test_properties_always_pass_splits_validator(
    tags: dict[str, Any], value: str, repeat: int, culprit: Optional[str]
) -> None:
    props = error_properties(view(tags=tags, exception_value=value * repeat, culprit=culprit,
                                  transaction=culprit))  # fmt: skip
    assert len(props) <= MAX_PROPERTIES
    assert BASE_EVENT_SIZE < properties_size(props) <= MAX_PROPERTIES_SIZE
    json.dumps(props, allow_nan=False)
