"""End-to-end smoke test that must pass on every supported sentry-sdk: 2.26.1 and up, and 3.x.

It is the test the ``sentry-oldest`` tox env exists for: the real ``sentry_sdk.init`` with
``FlagsIntegration``, real transport, and a Sentry stand-in built only on the standard
library's ``http.server`` (no pytest-httpserver, no helpers from ``tests/``), so nothing in
here depends on a newer sentry-sdk than the one under test. Scopes are reached through the
``Scope`` classmethods, which every 2.x release and 3.x have; only ``sentry_flags`` itself
may use newer APIs, and this test is how we find out when it does. On 3.x, which collects
user info unless told otherwise, ``init`` says ``data_collection={"user_info": False}``: the
same "no personal data" these tests expect from 2.x's defaults.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar

import pytest
import sentry_sdk
from sentry_sdk.scope import Scope

import sentry_flags
from sentry_flags import FlagsIntegration, get_launchdarkly_context, set_launchdarkly_context
from sentry_flags.forwarders import Forwarder, VendorCall

try:  # sentry-sdk compresses with brotli when the module is importable
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

TIMEOUT = 5.0
SENTRY_SDK_3 = sentry_sdk.VERSION.startswith("3.")
# 2.x collects no personal data by default; 3.x must be told (it has no send_default_pii).
NO_PII: dict[str, Any] = {"data_collection": {"user_info": False}} if SENTRY_SDK_3 else {}


# --------------------------------------------------------------------------------------
# A Sentry ingest stand-in: stdlib only, loopback only.


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        if brotli is None:  # pragma: no cover - sentry-sdk only sends br with brotli
            raise AssertionError("received a brotli body but brotli is not installed")
        return bytes(brotli.decompress(body))
    return body


def parse_envelope(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Sentry envelope -> [(item header, payload)], honouring item ``length``."""
    items: list[tuple[dict[str, Any], bytes]] = []
    _, _, rest = data.partition(b"\n")  # envelope header
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        header = json.loads(line)
        length = header.get("length")
        if isinstance(length, int):
            payload, rest = rest[:length], rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


class SentryStandIn:
    """Records every event posted to ``/api/<project>/envelope/`` (or legacy ``/store/``)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.errors: list[str] = []
        self._cond = threading.Condition()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    stand_in._receive(self)
                except Exception as exc:  # report in the test, never kill the server
                    stand_in.errors.append(repr(exc))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.dsn = f"http://public@127.0.0.1:{self.port}/1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _receive(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        body = _decode(raw, handler.headers.get("Content-Encoding", ""))
        events: list[dict[str, Any]] = []
        if handler.path.rstrip("/").endswith("/store"):
            events.append(json.loads(body))
        else:
            for header, payload in parse_envelope(body):
                if header.get("type") == "event":
                    events.append(json.loads(payload))
        with self._cond:
            self.requests += 1
            self.events.extend(events)
            self._cond.notify_all()

    def wait_events(self, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} event(s) within {timeout}s, got {len(self.events)}"
                        f" (errors: {self.errors})"
                    )
                self._cond.wait(left)
            return list(self.events)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(TIMEOUT)


# --------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def sentry() -> Iterator[SentryStandIn]:
    stand_in = SentryStandIn()
    try:
        yield stand_in
    finally:
        stand_in.close()


@pytest.fixture
def init(sentry: SentryStandIn) -> Iterator[Callable[..., Any]]:
    """``init(integration, **options)``: sentry_sdk.init against the stand-in."""

    def _init(integration: FlagsIntegration, **options: Any) -> Any:
        settings: dict[str, Any] = {
            "dsn": sentry.dsn,
            "integrations": [integration],
            "shutdown_timeout": 2,
            "http_proxy": "",
            "https_proxy": "",
            **NO_PII,
        }
        settings.update(options)
        sentry_sdk.init(**settings)
        return sentry_sdk.get_client()

    yield _init

    sentry_sdk.get_client().close(timeout=2)
    for scope in (Scope.get_current_scope(), Scope.get_isolation_scope(), Scope.get_global_scope()):
        scope.set_client(None)
        scope.clear()


def _raise_and_capture(exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        sentry_sdk.capture_exception()


def _flush() -> None:
    assert sentry_sdk.flush(timeout=TIMEOUT) is not False


class RecordingForwarder(Forwarder):
    """A forwarder whose 'vendor SDK' is a list."""

    vendor: ClassVar[str] = "recording"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[VendorCall] = []

    def calls(self, view: Any, captured_at: float) -> list[VendorCall]:
        return [
            VendorCall(
                "track",
                {
                    "event_id": view.event_id,
                    "type": view.exception_type,
                    "value": view.exception_value,
                    "environment": view.environment,
                    "user": dict(view.user),
                },
            )
        ]

    def send(self, call: VendorCall) -> bool:
        self.sent.append(call)
        return True


# --------------------------------------------------------------------------------------
# Tests


def test_versions_are_reported() -> None:
    # Shows up with -v / -ra, so a CI log says which sentry-sdk this ran against.
    print(f"sentry-sdk {sentry_sdk.VERSION}, sentry-flags {sentry_flags.__version__}")
    assert sentry_sdk.VERSION.startswith(("2.", "3."))


def test_error_reaches_sentry_with_settings_and_filters(
    init: Callable[..., Any], sentry: SentryStandIn
) -> None:
    init(
        FlagsIntegration(
            environment="oldest-smoke",
            release="9.9.9",
            server_name="smoke-host",
            logger="smoke",
            ignore_errors=["IgnoreMe"],
        ),
        environment="from-init",
    )

    _raise_and_capture(RuntimeError("IgnoreMe: dropped by ignore_errors"))
    _raise_and_capture(ValueError("boom"))
    _flush()

    (event,) = sentry.wait_events(1)
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["exception"]["values"][-1]["value"] == "boom"
    assert event["environment"] == "oldest-smoke"
    assert event["release"] == "9.9.9"
    assert event["server_name"] == "smoke-host"
    assert event["logger"] == "smoke"
    # No LD context was set: the key must not appear at all, not even empty.
    assert "launchdarklyContext" not in event.get("contexts", {})
    assert sentry.errors == []


def test_launchdarkly_context_is_attached_redacted_and_isolated(
    init: Callable[..., Any], sentry: SentryStandIn
) -> None:
    ldclient = pytest.importorskip("ldclient")
    seen_by_before_send: list[Any] = []

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        seen_by_before_send.append(event.get("contexts", {}).get("launchdarklyContext"))
        event.setdefault("tags", {})["user-before-send"] = "ran"
        return event

    init(FlagsIntegration(), before_send=before_send)
    context = (
        ldclient.Context.builder("user-1")
        .kind("user")
        .name("Ann")
        .set("email", "ann@example.com")
        .set("plan", "pro")
        .set("tier", "gold")
        .private("plan")
        .build()
    )

    with sentry_sdk.isolation_scope():
        set_launchdarkly_context(context)
        found = get_launchdarkly_context()
        assert found is not None
        assert found.key == "user-1"
        _raise_and_capture(ValueError("with context"))
    # Outside the isolation scope the context is gone.
    _raise_and_capture(KeyError("without context"))
    _flush()

    events = sentry.wait_events(2)
    by_value = {e["exception"]["values"][-1]["type"]: e for e in events}
    attached = by_value["ValueError"]["contexts"]["launchdarklyContext"]
    assert attached["key"] == "user-1"
    assert attached["kind"] == "user"
    assert attached["tier"] == "gold"
    # No personal data allowed: name and email go, and "plan" is private on the context.
    for gone in ("name", "email", "plan"):
        assert gone not in attached
    assert sorted(attached["_meta"]["redactedAttributes"]) == ["email", "name", "plan"]
    assert "launchdarklyContext" not in by_value["KeyError"].get("contexts", {})
    # The user's before_send ran after ours attached the context, and its change was kept.
    assert seen_by_before_send[0] == attached
    assert by_value["ValueError"]["tags"]["user-before-send"] == "ran"

    set_launchdarkly_context(None)
    assert get_launchdarkly_context() is None


def test_each_thread_keeps_its_own_context(init: Callable[..., Any], sentry: SentryStandIn) -> None:
    # sentry-sdk's ThreadingIntegration gives each new thread a fork of the parent's
    # isolation scope only since 2.26.1; before that threads shared the parent's scope and
    # one thread's context rode on another thread's errors.
    ldclient = pytest.importorskip("ldclient")
    init(FlagsIntegration())
    both_set = threading.Barrier(2, timeout=TIMEOUT)
    failures: list[BaseException] = []

    def work(user: str) -> None:
        try:
            set_launchdarkly_context(ldclient.Context.create(user))
            both_set.wait()
            _raise_and_capture(ValueError(f"failed for {user}"))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(user,)) for user in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert failures == []
    _flush()

    events = sentry.wait_events(2)
    found = {
        e["exception"]["values"][-1]["value"]: e["contexts"]["launchdarklyContext"]["key"] for e in events
    }
    assert found == {"failed for alice": "alice", "failed for bob": "bob"}
    assert get_launchdarkly_context() is None  # nothing leaked into the main thread


def test_forwarders_get_the_event_and_flush_drains_them(
    init: Callable[..., Any], sentry: SentryStandIn
) -> None:
    forwarder = RecordingForwarder(environments={"prod"})
    skipped = RecordingForwarder(environments={"staging"})
    init(FlagsIntegration(environment="prod", forwarders=[forwarder, skipped]))
    sentry_sdk.set_user({"id": "42", "email": "ann@example.com"})

    _raise_and_capture(ValueError("forward me"))
    _flush()  # drains our delivery queue before Sentry's transport

    assert len(forwarder.sent) == 1
    sent = forwarder.sent[0].kwargs
    assert sent["type"] == "ValueError"
    assert sent["value"] == "forward me"
    assert sent["environment"] == "prod"
    assert sent["user"] == {"id": "42"}  # no personal data allowed: no email
    assert forwarder.stats.forwarded == 1
    assert skipped.sent == []
    assert skipped.stats.skipped == {"environment": 1}
    (event,) = sentry.wait_events(1)
    assert sent["event_id"] == event["event_id"]


def test_a_second_init_rebinds_the_new_client(init: Callable[..., Any], sentry: SentryStandIn) -> None:
    init(FlagsIntegration(environment="first"))
    _raise_and_capture(ValueError("one"))
    _flush()
    init(FlagsIntegration(environment="second", ignore_errors=["two"]))
    _raise_and_capture(ValueError("two"))
    _raise_and_capture(ValueError("three"))
    _flush()

    events = sentry.wait_events(2)
    assert [(e["exception"]["values"][-1]["value"], e["environment"]) for e in events] == [
        ("one", "first"),
        ("three", "second"),
    ]
