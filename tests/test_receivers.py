"""Smoke tests for the loopback receivers, alone and paired with the real SDKs."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from receivers import (
    BaseReceiver,
    Mode,
    SentryReceiver,
    SplitReceiver,
    closed_port_url,
    join_threads,
    parse_envelope,
    split_definition,
    wait_for,
)


def _post(url: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --------------------------------------------------------------------------
# The receiver machinery itself


@pytest.fixture
def receiver() -> Any:
    with BaseReceiver() as receiver:
        yield receiver


def test_records_method_path_query_headers_and_gzip_json(receiver: BaseReceiver) -> None:
    body = gzip.compress(json.dumps({"hello": "world"}).encode())
    status, _ = _post(f"{receiver.url}/some/path?a=1&a=2&b=", body, {"Content-Encoding": "gzip"})

    assert status == 200
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/some/path")
    assert request.query == {"a": ["1", "2"], "b": [""]}
    assert request.header("Content-Encoding") == "gzip"
    assert request.raw_body == body
    assert request.json == {"hello": "world"}
    assert request.delivered


def test_error_and_rate_limit_modes(receiver: BaseReceiver) -> None:
    receiver.set_mode(Mode.ERROR)
    assert _post(receiver.url)[0] == 500

    receiver.set_mode(Mode.RATE_LIMIT, retry_after=7)
    request = urllib.request.Request(receiver.url, data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=2)
    assert info.value.code == 429
    assert info.value.headers["Retry-After"] == "7"

    receiver.set_mode(Mode.NORMAL)
    assert _post(receiver.url)[0] == 200
    assert [r.status for r in receiver.requests] == [500, 429, 200]
    assert [r.delivered for r in receiver.requests] == [False, False, True]


def test_mode_can_be_limited_to_a_path(receiver: BaseReceiver) -> None:
    receiver.set_mode(Mode.ERROR, path_prefix="/broken")
    assert _post(f"{receiver.url}/broken/x")[0] == 500
    assert _post(f"{receiver.url}/fine")[0] == 200


def test_garbage_and_bad_body_modes(receiver: BaseReceiver) -> None:
    receiver.set_mode(Mode.GARBAGE)
    with pytest.raises((http.client.HTTPException, OSError)):
        _post(receiver.url)

    receiver.set_mode(Mode.BAD_BODY)
    status, body = _post(receiver.url)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_hang_until_released(receiver: BaseReceiver) -> None:
    receiver.set_mode(Mode.HANG)
    started = time.monotonic()
    with pytest.raises(OSError):  # socket.timeout / URLError are both OSErrors
        urllib.request.urlopen(urllib.request.Request(receiver.url, data=b"{}", method="POST"), timeout=0.3)
    assert time.monotonic() - started < 2
    receiver.wait_for_requests(1)
    receiver.set_mode(Mode.NORMAL)  # releases the hung handler
    assert _post(receiver.url)[0] == 200


def test_refuse_then_accept_again_on_the_same_port(receiver: BaseReceiver) -> None:
    url = receiver.url
    receiver.set_mode(Mode.REFUSE)
    with pytest.raises(urllib.error.URLError) as info:
        _post(url)
    assert isinstance(info.value.reason, ConnectionRefusedError)

    receiver.set_mode(Mode.NORMAL)
    assert receiver.url == url
    assert _post(url)[0] == 200


def test_closed_port_url_refuses() -> None:
    with pytest.raises(urllib.error.URLError) as info:
        _post(closed_port_url())
    assert isinstance(info.value.reason, ConnectionRefusedError)


def test_wait_for_is_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match="not satisfied within"):
        wait_for(lambda: False, timeout=0.1)
    assert time.monotonic() - started < 1


def test_stop_releases_hanging_requests_quickly(receiver: BaseReceiver) -> None:
    receiver.set_mode(Mode.HANG)
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            _post(receiver.url)
        except OSError as error:  # dropped without an answer
            outcome.append(error)

    thread = threading.Thread(target=client)
    thread.start()
    receiver.wait_for_requests(1)
    started = time.monotonic()
    receiver.stop()
    thread.join(3)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert len(outcome) == 1


def test_parse_envelope_with_and_without_length() -> None:
    raw = (
        b'{"event_id":"abc"}\n'
        b'{"type":"event","length":13}\n{"a":"b\\nc"}\n'
        b'{"type":"attachment"}\nline payload\n'
        b'{"type":"client_report","length":2}\n{}'
    )
    envelope = parse_envelope(raw)
    assert envelope.headers == {"event_id": "abc"}
    assert [i.type for i in envelope.items] == ["event", "attachment", "client_report"]
    assert envelope.items[0].json == {"a": "b\nc"}
    assert envelope.items[1].payload == b"line payload"
    assert envelope.items[2].json == {}


def test_split_changes_handshake() -> None:
    with SplitReceiver([split_definition("f1")]) as split:
        first = json.loads(urllib.request.urlopen(f"{split.api_url}/splitChanges?s=1.3&since=-1").read())
        assert first["ff"]["s"] == -1
        assert first["ff"]["t"] == split.change_number
        assert [f["name"] for f in first["ff"]["d"]] == ["f1"]
        since = first["ff"]["t"]
        second = json.loads(
            urllib.request.urlopen(f"{split.api_url}/splitChanges?s=1.3&since={since}").read()
        )
        assert second["ff"] == {"d": [], "s": since, "t": since}


# --------------------------------------------------------------------------
# Receivers paired with the real SDK clients


def test_sentry_capture_exception_arrives(sentry_init: Any, sentry_receiver: SentryReceiver) -> None:
    import sentry_sdk

    sentry_init()
    try:
        raise ValueError("boom")
    except ValueError:
        event_id = sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=2)

    [event] = sentry_receiver.wait_for_events(1)
    assert event["event_id"] == event_id
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("ValueError", "boom")
    [request] = sentry_receiver.requests_to("/api/1/envelope/")
    assert request.header("X-Sentry-Auth").startswith("Sentry sentry_key=public")


def test_launchdarkly_custom_event_arrives(ld_client: Any, ld_receiver: Any, ld_test_data: Any) -> None:
    from ldclient import Context

    ld_test_data.update(ld_test_data.flag("new-checkout").variation_for_all(True))
    context = Context.builder("user-1").name("Ada").build()

    assert ld_client.variation("new-checkout", context, False) is True
    assert ld_client.track("checkout-failed", context, {"order": 42}, 3.5) is None
    ld_client.flush()

    [event] = ld_receiver.wait_for_events(1, kind="custom")
    assert event["key"] == "checkout-failed"
    assert event["context"] == {"kind": "user", "key": "user-1", "name": "Ada"}
    assert event["data"] == {"order": 42}
    assert event["metricValue"] == 3.5
    assert ld_receiver.requests_to("/sdk/latest-all") == []  # TestData, no polling


def test_launchdarkly_polling_serves_receiver_flags(make_ld_client: Any, ld_receiver: Any) -> None:
    from ldclient import Context

    from receivers import ld_flag

    ld_receiver.set_flags(ld_flag("banner", ["red", "blue"], fallthrough_variation=1))
    client = make_ld_client()

    assert client.is_initialized()
    assert client.variation("banner", Context.create("user-1"), "none") == "blue"
    [poll] = ld_receiver.requests_to("/sdk/latest-all")
    assert poll.header("Authorization") == "sdk-test-key"


def test_split_ready_treatment_and_track_arrive(split_client: Any, split_receiver: Any) -> None:
    assert split_client.get_treatment("user-1", "sentry_flags_user_flag") == "on"
    assert split_client.get_treatment("org-1", "sentry_flags_org_flag") == "v2"
    assert split_client.track("user-1", "user", "checkout", 9.5, {"plan": "pro"}) is True
    assert split_client.track("org-1", "org", "seat_added") is True

    events = split_receiver.wait_for_events(2)
    assert [
        (e["eventTypeId"], e["trafficTypeName"], e["key"], e["value"], e["properties"]) for e in events
    ] == [
        ("checkout", "user", "user-1", 9.5, {"plan": "pro"}),
        ("seat_added", "org", "org-1", None, None),
    ]
    assert all(isinstance(e["timestamp"], int) for e in events)
    impressions = split_receiver.wait_for_impressions(2)
    assert {(i["f"], i["k"], i["t"]) for i in impressions} == {
        ("sentry_flags_user_flag", "user-1", "on"),
        ("sentry_flags_org_flag", "org-1", "v2"),
    }


def test_split_destroy_flushes_pending_events(make_split_factory: Any, split_receiver: Any) -> None:
    factory = make_split_factory(eventsPushRate=60)
    factory.block_until_ready(5)
    assert join_threads("SDKInitializer")  # see make_split_factory: avoids leaked tasks
    assert factory.client().track("user-1", "user", "on_destroy") is True

    destroyed = threading.Event()
    factory.destroy(destroyed)
    assert destroyed.wait(5)
    assert [e["eventTypeId"] for e in split_receiver.events] == ["on_destroy"]


def test_segment_track_arrives(segment_client: Any, segment_receiver: Any) -> None:
    ok, message = segment_client.track(user_id="user-1", event="Checkout Failed", properties={"order": 42})
    assert ok is True

    [arrived] = segment_receiver.wait_for_messages(1)
    assert arrived["messageId"] == message["messageId"]
    assert arrived["userId"] == "user-1"
    assert arrived["event"] == "Checkout Failed"
    assert arrived["properties"] == {"order": 42}
    assert arrived["type"] == "track"
    assert arrived["timestamp"].endswith("+00:00")
    [batch] = segment_receiver.batches
    assert batch["writeKey"] == "segment-test-write-key"


# --------------------------------------------------------------------------
# One import path: no release ever had another


def test_the_receivers_have_one_home() -> None:
    import importlib.util

    assert importlib.util.find_spec("sentry_flags.testing.receivers") is not None
    assert importlib.util.find_spec("sentry_flags.receivers") is None
