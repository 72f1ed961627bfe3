"""SegmentForwarder: real sentry-sdk and a real Segment client, messages read off the Segment receiver."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import (
    SECRET_EMAIL,
    SECRET_IP,
    SECRET_TOKEN,
    SEGMENT_LIBRARY,
    SEGMENT_WRITE_KEY,
    aim_segment_module,
    assert_backs_off_after_one_refusal,
    assert_is_error_captured,
    capture_error,
    capture_through_segment_module,
    error_view,
    flask_checkout,
    handle,
    init_forwarding,
    pii_options,
)
from receivers import SegmentReceiver, SentryReceiver, assert_never, wait_for

pytest.importorskip("segment.analytics")

import sentry_sdk
from segment.analytics import Client
from segment.analytics.consumer import MAX_MSG_SIZE

from sentry_flags import ErrorView
from sentry_flags._segment import LibraryKept
from sentry_flags.forwarders import SegmentForwarder
from sentry_flags.forwarders._segment_message import (
    LARGEST_MESSAGE,
    SEGMENT_MAX_MSG_SIZE,
    cut,
    encoded_size,
    message_size,
)
from sentry_flags.forwarders.segment import MAX_MESSAGE_SIZE
from sentry_flags.testing import capture_forwarded

pytestmark = pytest.mark.usefixtures("own_isolation_scope")

SECRET_QUERY = "q-secret-value"
USER_AGENT = "Mozilla/5.0 (sentry-flags test)"
# The request of the privacy tests: a secret in the query, a query value that is no secret.
CHECKOUT = f"/checkout?token={SECRET_TOKEN}&q={SECRET_QUERY}"
CHECKOUT_HEADERS = {"User-Agent": USER_AGENT, "Referer": f"https://ref.example/from?q={SECRET_QUERY}"}


def with_request(request: dict[str, Any]) -> None:
    """Attach ``request`` to every event of this isolation scope, as a web integration would."""

    def add(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["request"] = request
        return event

    sentry_sdk.get_isolation_scope().add_event_processor(add)


def wire(receiver: SegmentReceiver) -> bytes:
    return b"".join(r.body for r in receiver.requests)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def view(**fields: Any) -> ErrorView:
    # Milliseconds in the timestamp: Segment's clients keep them.
    return error_view(**{"timestamp": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc), **fields})


class DuckSegment:
    """A duck-typed Segment client: records, answers from a script."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.tracked: list[dict[str, Any]] = []

    def track(self, **kwargs: Any) -> Any:
        self.tracked.append(kwargs)
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def segment_accepts(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What Segment's own client makes of a ``track`` call (raises over its 32 KB limit)."""
    client = Client(SEGMENT_WRITE_KEY, send=False)
    success, message = client.track(**{**kwargs, "context": LibraryKept(kwargs["context"])})
    assert success is True
    return dict(message)


# -- end to end: real sentry-sdk, real Segment client, the Segment receiver -------------------


def test_error_captured_has_sentrys_shape(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    segment_client: Any,
    segment_receiver: SegmentReceiver,
) -> None:
    forwarder = SegmentForwarder(segment_client)
    init_forwarding(sentry_init, forwarder, release="shop@1.2.3", **pii_options(False))
    sentry_sdk.set_user({"id": 42})
    sentry_sdk.get_isolation_scope().set_transaction_name("/checkout/{cart}")
    with_request({
        "url": "https://shop.example/checkout/7",
        "method": "POST",
        "headers": {"User-Agent": USER_AGENT, "Referer": "https://shop.example/cart"},
    })  # fmt: skip

    event_id = capture_error("card declined", RuntimeError)
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    [sentry_event] = sentry_receiver.wait_for_events(1)
    assert_is_error_captured(message, event_id, user_id="42")
    assert message["properties"] == {
        "eventId": event_id,
        "environment": "production",
        "release": "shop@1.2.3",
        "transaction": "/checkout/{cart}",
        "level": "error",
        "exceptionType": "RuntimeError",
        "exceptionValue": "card declined",
        "userAgent": USER_AGENT,
        "page": {
            "url": "https://shop.example/checkout/7",
            "method": "POST",
            "search": "",  # no query string: "" as Sentry's forwarder sends it
            "referer": "https://shop.example/cart",
        },
    }
    assert message["context"] == {
        "library": SEGMENT_LIBRARY,
        "userAgent": USER_AGENT,
        "page": {
            "url": "https://shop.example/checkout/7",
            "method": "POST",
            "search": "",
            "referrer": "https://shop.example/cart",
            "path": "/checkout/7",
        },
    }
    # When the error happened (Segment keeps milliseconds), not when it was forwarded.
    sent_at = parse_time(message["timestamp"])
    happened = parse_time(sentry_event["timestamp"])
    assert abs((sent_at - happened).total_seconds()) < 0.001
    assert set(message) == {
        "type", "event", "userId", "anonymousId", "messageId", "timestamp", "properties",
        "context", "integrations",
    }  # fmt: skip
    assert message["anonymousId"] is None
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.failed == 0
    assert forwarder.stats.skipped == {}


def test_message_event_without_exception_sends_its_message(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    init_forwarding(sentry_init, SegmentForwarder(segment_client), release="shop@1.2.3")
    sentry_sdk.set_user({"id": "u-1"})

    event_id = sentry_sdk.capture_message("payment provider unreachable", level="error")
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    assert message["properties"] == {
        "eventId": event_id,
        "environment": "production",
        "release": "shop@1.2.3",
        "level": "error",
        "transaction": "",  # Sentry's forwarder sends "" for what the event lacks
        "message": "payment provider unreachable",
    }
    assert message["context"] == {"library": SEGMENT_LIBRARY}  # no request: no page, no userAgent


def test_flush_waits_until_segment_posted_what_it_queued(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    init_forwarding(sentry_init, SegmentForwarder(segment_client))
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("boom")
    sentry_sdk.flush()

    # Segment's flush() returns once its consumer has posted the queue: no waiting here.
    assert len(segment_receiver.messages) == 1


def test_error_without_user_id_is_skipped_and_counted(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(segment_client)
    init_forwarding(sentry_init, forwarder, **pii_options(True))

    sentry_sdk.set_user({"email": SECRET_EMAIL})  # a user, but no id: nobody Segment knows
    capture_error("anonymous")
    sentry_sdk.set_user({"id": ""})
    capture_error("blank id")
    sentry_sdk.set_user({"id": "u-7"})
    capture_error("known")
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    assert message["userId"] == "u-7"
    assert message["properties"]["exceptionValue"] == "known"
    assert_never(lambda: len(segment_receiver.messages) > 1, duration=0.3)
    assert forwarder.stats.skipped == {"no_user_id": 2}
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.failed == 0


def test_rate_limit_on_capture_time(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(segment_client, max_per_second=2)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    for i in range(10):
        capture_error(f"boom {i}")
    sentry_sdk.flush()

    messages = segment_receiver.wait_for_messages(2)
    assert [m["properties"]["exceptionValue"] for m in messages] == ["boom 0", "boom 1"]
    assert_never(lambda: len(segment_receiver.messages) > 2, duration=0.3)
    assert forwarder.stats.forwarded == 2
    assert forwarder.stats.rate_limited == 8


def test_huge_fields_stay_under_segments_limit_and_arrive(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(segment_client)
    init_forwarding(sentry_init, forwarder, **pii_options(True), release="r" * 5000)
    sentry_sdk.set_user({"id": "u-1"})
    sentry_sdk.get_isolation_scope().set_transaction_name("/é" * 10_000)
    with_request({
        "url": "https://shop.example/" + "ü" * 50_000 + "?q=" + "\U0001f600" * 20_000,
        "method": "GET",
        "query_string": "q=" + "\U0001f600" * 20_000,
        "headers": {"User-Agent": "UA/" + "x" * 100_000, "Referer": "https://r.example/" + '"' * 40_000},
    })  # fmt: skip

    capture_error("\U0001f4a5" * 200_000 + "tail", RuntimeError)
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1, timeout=5)
    assert len(json.dumps(message).encode()) <= MAX_MESSAGE_SIZE < SEGMENT_MAX_MSG_SIZE
    value = message["properties"]["exceptionValue"]
    assert value.startswith("\U0001f4a5")
    assert value.endswith("...")
    assert message["properties"]["page"]["search"].startswith("q=")
    assert message["context"]["page"]["search"].startswith("q=")
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.skipped == {}


def test_no_personal_data_or_query_values_without_send_default_pii(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(segment_client)
    flask_checkout(sentry_init, forwarder, CHECKOUT, headers=CHECKOUT_HEADERS, pii=False)

    [message] = segment_receiver.wait_for_messages(1)
    assert message["userId"] == "u-1"
    assert message["properties"]["page"] == {
        "url": "http://localhost/checkout",
        "method": "GET",
        "search": "",  # the query's values are not sent without PII
        "referer": "https://ref.example/from",
    }
    assert message["context"]["page"] == {
        "url": "http://localhost/checkout",
        "method": "GET",
        "search": "",
        "referrer": "https://ref.example/from",
        "path": "/checkout",
    }
    assert "ip" not in message["context"]
    body = wire(segment_receiver)
    for secret in (SECRET_EMAIL, SECRET_IP, SECRET_TOKEN, SECRET_QUERY, "jane", "token"):
        assert secret.encode() not in body


def test_query_values_and_ip_with_send_default_pii_but_never_secrets(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(segment_client)
    flask_checkout(sentry_init, forwarder, CHECKOUT, headers=CHECKOUT_HEADERS, pii=True)

    [message] = segment_receiver.wait_for_messages(1)
    page = message["properties"]["page"]
    assert page["search"] == f"token=%5BFiltered%5D&q={SECRET_QUERY}"
    assert page["referer"] == f"https://ref.example/from?q={SECRET_QUERY}"
    assert message["context"]["page"]["search"] == f"token=%5BFiltered%5D&q={SECRET_QUERY}"
    assert message["context"]["ip"] == SECRET_IP  # as Sentry's own forwarder sends it
    assert SECRET_TOKEN.encode() not in wire(segment_receiver)  # a secret whatever the app allows
    # User fields other than the id and IP never go to Segment: it has identify() for traits.
    assert SECRET_EMAIL.encode() not in wire(segment_receiver)


def test_environment_filter(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    production_only = SegmentForwarder(segment_client, environments={"production"})
    every_env = SegmentForwarder(segment_client)  # the default: None, every environment
    init_forwarding(sentry_init, production_only, every_env, environment="staging")
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("boom")
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    assert message["properties"]["environment"] == "staging"
    assert_never(lambda: len(segment_receiver.messages) > 1, duration=0.3)
    assert production_only.stats.skipped == {"environment": 1}
    assert production_only.stats.forwarded == 0
    assert every_env.stats.forwarded == 1


def test_custom_event_name(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    init_forwarding(sentry_init, SegmentForwarder(segment_client, event_name="Backend Error"))
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("boom")
    sentry_sdk.flush()

    [message] = segment_receiver.wait_for_messages(1)
    assert message["event"] == "Backend Error"


def test_full_segment_queue_backs_off_instead_of_flooding_its_log(
    sentry_init: Callable[..., Any],
    make_segment_client: Callable[..., Any],
    segment_receiver: SegmentReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Segment's API hangs: its consumer is stuck posting one message, its queue holds one
    # more, and then track() returns (False, msg) and logs a warning per call.
    client = make_segment_client(max_queue_size=1, upload_size=1)
    segment_receiver.set_mode("hang")
    forwarder = SegmentForwarder(client)
    forwarder.backoff_initial = 60.0  # far longer than this test, however slow the machine
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})
    caplog.set_level(logging.WARNING, logger="segment")

    try:
        for i in range(6):
            capture_error(f"boom {i}")
        wait_for(lambda: forwarder.stats.failed == 1, message="one refusal")

        def all_handled() -> Any:
            s = forwarder.stats
            return s if s.forwarded + s.failed + s.skipped.get("backoff", 0) == 6 else None

        stats = wait_for(all_handled, message="all six handled")
    finally:
        segment_receiver.set_mode("normal")  # lets the hung post go, so teardown is quick

    assert stats.forwarded in (1, 2)  # the one being posted, and the one queued behind it
    assert stats.failed == 1
    assert stats.skipped["backoff"] == 6 - 1 - stats.forwarded
    # Segment logs a failed upload at ERROR: Sentry gets it, Segment never does.
    assert set(stats.skipped) <= {"backoff", "vendor_sdk_log"}
    full = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(full) == 1


def test_raising_track_counts_as_failed_and_backs_off(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver, mocker: Any
) -> None:
    track = mocker.patch.object(segment_client, "track", side_effect=RuntimeError("injected"))
    assert_backs_off_after_one_refusal(sentry_init, SegmentForwarder(segment_client), track)
    assert segment_receiver.requests == []


def test_shut_down_client_is_not_called_and_flush_does_not_hang(
    sentry_init: Callable[..., Any],
    make_segment_client: Callable[..., Any],
    segment_receiver: SegmentReceiver,
) -> None:
    client = make_segment_client()
    client.shutdown()  # the app shut Segment down (e.g. at exit) before Sentry
    forwarder = SegmentForwarder(client)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("boom")
    assert sentry_sdk.flush(timeout=2) is not False

    assert forwarder.stats.skipped == {"client_stopped": 1}
    assert client.queue.unfinished_tasks == 0
    assert segment_receiver.messages == []


def test_module_level_api(
    sentry_init: Callable[..., Any], segment_receiver: SegmentReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segment.analytics as analytics

    aim_segment_module(monkeypatch, analytics, segment_receiver, write_key=None)
    forwarder = SegmentForwarder(analytics)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    capture_error("before the write key is set")
    sentry_sdk.flush()
    assert forwarder.stats.skipped == {"no_write_key": 1}
    assert analytics.default_client is None  # neither track nor flush created one

    monkeypatch.setattr(analytics, "write_key", SEGMENT_WRITE_KEY)
    message = capture_through_segment_module(analytics, segment_receiver, "after")
    assert message["properties"]["exceptionValue"] == "after"
    assert message["context"]["library"] == SEGMENT_LIBRARY
    assert forwarder.stats.forwarded == 1

    capture_error("after analytics.shutdown()")  # its default client is joined above
    assert sentry_sdk.flush(timeout=2) is not False
    assert forwarder.stats.skipped == {"no_write_key": 1, "client_stopped": 1}


def test_capture_forwarded_records_segment_calls(
    sentry_init: Callable[..., Any], segment_client: Any, segment_receiver: SegmentReceiver
) -> None:
    forwarder = SegmentForwarder(segment_client)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    with capture_forwarded() as calls:
        event_id = capture_error("boom")

    [call] = calls
    assert call.vendor == "segment"
    assert call.method == "track"
    assert call.event_id == event_id
    assert call.kwargs["user_id"] == "u-1"
    assert call.kwargs["event"] == "Error Captured"
    assert call.kwargs["message_id"] == event_id
    assert call.kwargs["context"] == {"library": SEGMENT_LIBRARY}
    assert_never(lambda: segment_receiver.requests, duration=0.2)


# -- the pure parts ----------------------------------------------------------------------------


def test_duck_typed_client_and_its_answers() -> None:
    duck = DuckSegment(None, (True, {}), True, (False, {}), False)
    forwarder = SegmentForwarder(duck)
    forwarder.backoff_initial = 1.0
    for i, at in enumerate([0.0, 0.01, 0.02, 0.03, 1.5]):
        handle(forwarder, view(event_id=f"{i:032x}"), at)

    assert len(duck.tracked) == 5
    assert forwarder.stats.forwarded == 3  # None (module API) and True count as accepted
    assert forwarder.stats.failed == 2
    first = duck.tracked[0]
    assert set(first) == {"user_id", "event", "properties", "context", "timestamp", "message_id"}
    assert first["timestamp"] == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    assert isinstance(first["context"], dict)


def test_backoff_doubles_to_the_cap_and_resets_on_success() -> None:
    duck = DuckSegment((False, {}), (False, {}), (False, {}), (True, {}), (False, {}))
    forwarder = SegmentForwarder(duck)
    forwarder.backoff_max = 3.0
    timeline = [
        (0.0, "failed"),  # backoff 1 s
        (0.5, "backoff"),
        (1.0, "failed"),  # backoff 2 s
        (2.9, "backoff"),
        (3.0, "failed"),  # backoff 3 s (capped)
        (5.9, "backoff"),
        (6.0, "forwarded"),  # reset
        (6.1, "failed"),  # backoff 1 s again
        (7.0, "backoff"),
    ]
    for at, expected in timeline:
        before = forwarder.stats
        handle(forwarder, view(), at)
        after = forwarder.stats
        changed = {
            "forwarded": after.forwarded - before.forwarded,
            "failed": after.failed - before.failed,
            "backoff": after.skipped.get("backoff", 0) - before.skipped.get("backoff", 0),
        }
        assert changed == {k: int(k == expected) for k in changed}, (at, expected)


def test_rate_limit_refills_with_capture_time() -> None:
    forwarder = SegmentForwarder(DuckSegment(), max_per_second=2)
    for at in [0.0, 0.0, 0.0, 0.4, 0.5, 0.5, 10.0, 10.0, 10.0]:
        handle(forwarder, view(), at)
    assert forwarder.stats.forwarded == 5  # 2 at once, 1 refilled by 0.5 s, 2 after a pause
    assert forwarder.stats.rate_limited == 4


def test_skipped_errors_do_not_use_up_the_rate_limit() -> None:
    forwarder = SegmentForwarder(DuckSegment(), max_per_second=1)
    handle(forwarder, view(user={}), 0.0)
    handle(forwarder, view(), 0.0)
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.skipped == {"no_user_id": 1}


def test_user_ids_are_sent_as_str_and_huge_ones_skipped() -> None:
    duck = DuckSegment()
    forwarder = SegmentForwarder(duck)
    handle(forwarder, view(user={"id": 42}), 0.0)
    handle(forwarder, view(user={"id": "u" * 5000}), 0.0)  # cutting it would make it someone else's
    assert [t["user_id"] for t in duck.tracked] == ["42"]
    assert forwarder.stats.skipped == {"user_id_too_long": 1}


def test_ip_is_only_sent_when_it_is_an_address() -> None:
    duck = DuckSegment()
    forwarder = SegmentForwarder(duck)
    for ip in ["{{auto}}", "not an ip", "2001:db8::1", SECRET_IP]:
        handle(forwarder, view(user={"id": "u-1", "ip_address": ip}), 0.0)
    assert [t["context"].get("ip") for t in duck.tracked] == [None, None, "2001:db8::1", SECRET_IP]


# What Sentry's own Segment data forwarder sends (sentry_plugins/segment/plugin.py,
# get_event_payload): these keys, "" where the event has no value.
SENTRY_PROPERTIES = {"eventId", "transaction", "release", "level", "environment"}
SENTRY_PAGE = {"url", "method", "search", "referrer"}


@pytest.mark.parametrize("with_request", [True, False])
def test_every_key_of_sentrys_shape_is_there_with_empty_strings(with_request: bool) -> None:
    duck = DuckSegment()
    bare = view(release=None, environment=None, transaction=None)
    if with_request:
        bare = view(release=None, environment=None, transaction=None, url="https://a.example/x", method="GET")
    handle(SegmentForwarder(duck), bare, 0.0)
    [tracked] = duck.tracked
    properties, context = tracked["properties"], tracked["context"]
    assert SENTRY_PROPERTIES | {"exceptionType"} <= set(properties)
    assert {k: properties[k] for k in ("transaction", "release", "environment")} == dict.fromkeys(
        ("transaction", "release", "environment"), ""
    )
    if with_request:
        assert set(context["page"]) >= SENTRY_PAGE
        assert (context["page"]["search"], context["page"]["referrer"], context["userAgent"]) == ("", "", "")
        assert properties["page"]["search"] == ""
    else:  # Sentry's forwarder sends page and userAgent only for events with a request
        assert "page" not in context
        assert "userAgent" not in context


def test_odd_event_ids_are_not_message_ids() -> None:
    duck = DuckSegment()
    forwarder = SegmentForwarder(duck)
    handle(forwarder, view(event_id=""), 0.0)
    handle(forwarder, view(event_id="x" * 500), 0.0)
    for tracked in duck.tracked:
        assert tracked["message_id"] is None  # Segment makes a uuid
        assert tracked["properties"]["eventId"] == ""  # always there, as in Sentry's shape


@pytest.mark.parametrize("with_exception", [True, False])
def test_worst_case_message_fits_with_room_to_spare(with_exception: bool) -> None:
    # Every field as long as possible, in characters JSON escapes to 12 bytes each.
    huge = "\U0001f600" * 100_000
    exception = huge if with_exception else None
    worst = view(
        event_id="e" * 32, level=huge, environment=huge, release=huge, transaction=huge,
        exception_type=exception, exception_value=exception, message=huge, user_agent=huge,
        url="https://x/" + huge + "?q=" + huge, method=huge, query="q=" + huge,
        referer="https://r/" + huge, user={"id": "\U0001f600" * 85, "ip_address": "::1"},
    )  # fmt: skip
    forwarder = SegmentForwarder(DuckSegment(), event_name="\U0001f600" * 200)
    [call] = forwarder.calls(worst, 0.0)

    kwargs = dict(call.kwargs)
    assert ("exceptionValue" in kwargs["properties"]) is with_exception
    assert ("message" in kwargs["properties"]) is not with_exception
    assert message_size(kwargs) <= MAX_MESSAGE_SIZE
    # The static bound that lets calls() skip measuring each message really bounds it.
    assert message_size(kwargs) <= LARGEST_MESSAGE <= MAX_MESSAGE_SIZE
    message = segment_accepts(kwargs)  # Segment's own size check does not raise
    assert len(json.dumps(message).encode()) <= MAX_MESSAGE_SIZE
    assert MAX_MSG_SIZE == SEGMENT_MAX_MSG_SIZE  # the limit we designed for is Segment's


texts = st.text(alphabet=st.characters(), max_size=3000) | st.builds(
    lambda c, n: c * n, st.characters(), st.integers(0, 60_000)
)


@settings(max_examples=60, deadline=None)
@given(
    value=texts, transaction=texts, user_agent=texts, url=texts, query=texts, referer=texts,
    release=texts, user_id=st.text(min_size=1, max_size=200),
)  # fmt: skip
def test_any_message_passes_segments_own_size_check(
    value: str, transaction: str, user_agent: str, url: str, query: str, referer: str,
    release: str, user_id: str,
) -> None:  # fmt: skip
    error = view(
        exception_value=value, transaction=transaction, user_agent=user_agent, url=url,
        query=query, referer=referer, release=release, user={"id": user_id},
    )  # fmt: skip
    [call] = SegmentForwarder(DuckSegment()).calls(error, 0.0)
    message = segment_accepts(dict(call.kwargs))
    assert len(json.dumps(message).encode()) <= MAX_MESSAGE_SIZE
    assert message["context"]["library"] == SEGMENT_LIBRARY


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("abc", 3, "abc"),
        ("abcd", 4, "abcd"),
        ("abcdef", 5, "ab..."),
        ("é" * 10, 60, "é" * 10),  # 6 bytes each once escaped
        ("é" * 10, 59, "é" * 9 + "..."),
        ('""""', 8, '""""'),  # 2 bytes each
        ('""""', 7, '""...'),
        ("\U0001f600" * 2, 15, "\U0001f600..."),  # 12 bytes each
        ("\U0001f600" * 2, 14, "..."),
        (None, 10, None),
    ],
)
def test_cut_measures_escaped_bytes(value: Optional[str], limit: int, expected: Optional[str]) -> None:
    result = cut(value, limit)
    assert result == expected
    if result is not None:
        assert encoded_size(result) <= limit


@given(value=st.text(alphabet=st.characters()), limit=st.integers(3, 200))
def test_cut_never_exceeds_its_limit(value: str, limit: int) -> None:
    result = cut(value, limit)
    assert result is not None
    assert encoded_size(result) <= limit
    if encoded_size(value) <= limit:
        assert result == value
    else:
        assert result.endswith("...")
        assert value.startswith(result[:-3])


def test_module_does_not_import_segment() -> None:
    code = (
        "import sys; from sentry_flags.forwarders import SegmentForwarder; "
        "SegmentForwarder(type('C', (), {'track': lambda self, **k: None})()); "
        "assert 'segment' not in sys.modules and 'analytics' not in sys.modules, 'segment imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# Wrong constructor arguments, of every forwarder, are in test_bad_options.py.


def test_good_constructor_input() -> None:
    forwarder = SegmentForwarder(DuckSegment(), 1, {"production", "staging"}, "Backend Error")
    assert forwarder.max_per_second == 1.0
    assert forwarder.environments == frozenset({"production", "staging"})
    assert forwarder.event_name == "Backend Error"
    assert SegmentForwarder(Client(SEGMENT_WRITE_KEY, send=False)).max_per_second == 200
