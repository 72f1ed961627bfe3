"""Helpers shared by the tests; the fixtures built on them are in conftest.py.

Everything here works on what the loopback receivers actually got: events are captured
with the real sentry-sdk, flushed with a bound, and read back off the wire. Also here: the
settings every test gives the real vendor clients, and scaffolding that several forwarder
tests share.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Optional

import pytest
import sentry_sdk

import sentry_flags
from receivers import (
    BaseReceiver,
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
    join_threads,
    split_definition,
    wait_for,
)
from sentry_flags import ErrorView

# No vendor SDK is imported here at module level: tests/legacy_segment imports this module
# in an environment with analytics-python alone.

LD_KEY = "launchdarklyContext"
FLUSH_TIMEOUT = 5.0

# -- what the installed sentry-sdk offers ------------------------------------------------------

SENTRY_SDK_MAJOR = int(sentry_sdk.VERSION.split(".")[0])


def _client_options() -> frozenset[str]:
    import inspect

    from sentry_sdk.consts import ClientConstructor

    return frozenset(inspect.signature(ClientConstructor.__init__).parameters)


SENTRY_OPTIONS = _client_options()
HAS_SEND_DEFAULT_PII = "send_default_pii" in SENTRY_OPTIONS  # 2.x
HAS_DATA_COLLECTION = "data_collection" in SENTRY_OPTIONS  # 2.7x and 3.x
# The option that sees cron check-ins: sentry-sdk 3.0.0 gave them their own hook; before it
# (2.x and 3.0's pre-releases) they went through before_send with the errors.
CHECK_IN_HOOK = "before_send_check_in" if "before_send_check_in" in SENTRY_OPTIONS else "before_send"
needs_send_default_pii = pytest.mark.skipif(
    not HAS_SEND_DEFAULT_PII, reason="this sentry-sdk has no send_default_pii option (3.x)"
)
needs_data_collection = pytest.mark.skipif(
    not HAS_DATA_COLLECTION, reason="this sentry-sdk has no data_collection option (before 2.7x)"
)
needs_sentry_sdk_3 = pytest.mark.skipif(SENTRY_SDK_MAJOR < 3, reason="sentry-sdk 3.x behaviour")
needs_sentry_sdk_2 = pytest.mark.skipif(SENTRY_SDK_MAJOR >= 3, reason="sentry-sdk 2.x behaviour")

# sentry-sdk 2.7x's terms for request headers when it maps send_default_pii=False to
# data_collection (data_collection._map_from_send_default_pii).
PII_OFF_HEADER_TERMS = ("forwarded", "-ip", "remote-", "via", "-user")


def pii_options(allowed: bool) -> dict[str, Any]:
    """Client options that allow personal data (``allowed``) or not, on any sentry-sdk.

    ``send_default_pii=allowed`` where sentry-sdk has that option (2.x). On 3.x, which has
    only ``data_collection``, its equivalent -- "equivalent" meaning the options under which
    sentry-flags forwards exactly what it forwards on 2.x with ``send_default_pii=allowed``
    (the same ``Privacy``):

    - allowed: ``user_info`` on; URL query values and request headers by denylist (3.x's
      defaults): user fields, query values (sensitive keys filtered) and the Referer and
      User-Agent pass;
    - not allowed: ``user_info`` off; URL query params ``off`` (on 2.x we forward no query
      value without ``send_default_pii``); request headers by denylist with the terms 2.7x
      uses for ``send_default_pii=False``; cookies off.

    What sentry-sdk itself sends Sentry differs between the two in places (2.x sends the
    raw query string whatever ``send_default_pii`` says; 3.x with query params ``off`` sends
    none), never what reaches a vendor.
    """
    if HAS_SEND_DEFAULT_PII:
        return {"send_default_pii": allowed}
    if allowed:
        return {
            "data_collection": {
                "user_info": True,
                "url_query_params": {"mode": "denylist"},
                "http_headers": {"request": {"mode": "denylist"}},
            }
        }
    return {
        "data_collection": {
            "user_info": False,
            "cookies": {"mode": "off"},
            "url_query_params": {"mode": "off"},
            "http_headers": {"request": {"mode": "denylist", "terms": list(PII_OFF_HEADER_TERMS)}},
        }
    }


def sentry_launchdarkly_hook(ld_client: Any) -> list[Any]:
    """sentry-sdk's own LaunchDarkly flag tracking on ``ld_client``; the integrations to init with.

    2.x: ``LaunchDarklyIntegration(ld_client=...)`` adds its hook to that client when built.
    3.x: ``LaunchDarklyIntegration()`` takes no client and hooks ``ldclient.get()`` in
    ``setup_once``, once per process; so its hook (``LaunchDarklyHook``, what that
    ``setup_once`` registers) is added to ``ld_client`` here, and no integration is needed.
    """
    import inspect

    from sentry_sdk.integrations.launchdarkly import LaunchDarklyHook, LaunchDarklyIntegration

    if "ld_client" in inspect.signature(LaunchDarklyIntegration.__init__).parameters:
        return [LaunchDarklyIntegration(ld_client=ld_client)]
    ld_client.add_hook(LaunchDarklyHook())
    return []


def start_transaction(name: str) -> Any:
    """A root span (2.x: a transaction) named ``name``, as a context manager, on either major.

    2.x: ``sentry_sdk.start_transaction``. 3.x has no transactions: ``sentry_sdk.start_span``
    starts a root span, whose segment is sent (streamed) when it ends.
    """
    begin = getattr(sentry_sdk, "start_transaction", None)
    if begin is not None:
        return begin(name=name, op="task")
    return sentry_sdk.start_span(name=name)


def start_child_span(name: str) -> Any:
    """A span under the current one: ``op`` on 2.x, ``name`` on 3.x (which has no op)."""
    if SENTRY_SDK_MAJOR >= 3:
        return sentry_sdk.start_span(name=name)
    return sentry_sdk.start_span(op=name)


def _spans_carry_flags() -> bool:
    if SENTRY_SDK_MAJOR >= 3:
        return True  # attributes on the streamed span
    from sentry_sdk.tracing import Span

    return hasattr(Span, "set_flag")  # 2.x releases with span flags; 2.26.1 has none


SPANS_CARRY_FLAGS = _spans_carry_flags()


def flask_transaction(endpoint: str, rule: str) -> str:
    """The transaction name sentry-sdk's ``FlaskIntegration`` gives a request by default.

    2.x: the endpoint (``transaction_style="endpoint"``, its default); 3.x names it from the
    URL rule (``url_rule.rule``) and has no ``transaction_style``.
    """
    return rule if SENTRY_SDK_MAJOR >= 3 else endpoint


# What the sentry_init fixture starts from: no personal data, on every major (sentry-sdk
# 2.x's default; 3.x collects user info unless told otherwise).
NO_PII_BASELINE: dict[str, Any] = {} if HAS_SEND_DEFAULT_PII else pii_options(False)
PRIVACY_OPTIONS = frozenset({"send_default_pii", "data_collection"})


# Personal data and secrets a test app puts in its events: what must not reach a vendor.
SECRET_EMAIL = "jane.doe@example.com"
SECRET_IP = "10.9.8.7"
SECRET_TOKEN = "s3cr3t-t0ken"

# An OpenFeature evaluation context's attributes with private and personal ones (key "u-1").
PERSONAL_ATTRIBUTES: dict[str, Any] = {
    "name": "Jane Doe",
    "email": "jane@example.com",
    "plan": "pro",
    "address": {"street": "1 Main St", "city": "Berlin"},
    "privateAttributes": ["plan", "/address/street"],
}

SEGMENT_WRITE_KEY = "segment-test-write-key"
# What SegmentForwarder names itself as in every message's context.library.
SEGMENT_LIBRARY = {"name": "sentry-flags", "version": sentry_flags.__version__}

# splitio settings for every test factory: polling, not streaming; events pushed every 0.2 s;
# impressions in DEBUG mode every 1 s (the SDK's minimum); no UDP probe for the address
# that routes outwards.
SPLIT_TEST_CONFIG: Mapping[str, Any] = MappingProxyType({
    "streamingEnabled": False,
    "featuresRefreshRate": 1,
    "segmentsRefreshRate": 1,
    "eventsPushRate": 0.2,
    "impressionsMode": "debug",
    "impressionsRefreshRate": 1,
    "connectionTimeout": 2000,  # ms
    "machineIp": "127.0.0.1",
    "machineName": "pytest",
})  # fmt: skip
SPLIT_INITIALIZER_THREAD = "SDKInitializer"


@dataclass(frozen=True)
class Receivers:
    """The four stand-ins of one test; ``receivers["split"]`` names them by endpoint too."""

    sentry: SentryReceiver
    launchdarkly: LaunchDarklyReceiver
    split: SplitReceiver
    segment: SegmentReceiver

    def __getitem__(self, endpoint: str) -> Any:
        return getattr(self, endpoint)

    def values(self) -> tuple[BaseReceiver, ...]:
        return (self.sentry, self.launchdarkly, self.split, self.segment)


class CoreTestError(Exception):
    """An exception type no library raises, so filters can name it safely."""


def raise_and_capture(message: str, exc_type: type[BaseException] = ValueError) -> Optional[str]:
    """Raise ``exc_type(message)`` here and capture it; the event id, or None when dropped."""
    try:
        raise exc_type(message)
    except exc_type:
        return sentry_sdk.capture_exception()


def capture_error(message: str, exc_type: type[BaseException] = ValueError) -> str:
    """Like :func:`raise_and_capture`, for tests where the event must not be dropped."""
    event_id = raise_and_capture(message, exc_type)
    assert event_id is not None, f"{message!r} was dropped before sending"
    return event_id


def init_forwarding(
    sentry_init: Callable[..., Any],
    *forwarders: Any,
    launchdarkly_client: Any = None,
    **options: Any,
) -> Any:
    """``sentry_init`` with a FlagsIntegration holding ``forwarders``; environment production."""
    from sentry_flags import FlagsIntegration

    options.setdefault("environment", "production")
    integration = FlagsIntegration(launchdarkly_client=launchdarkly_client, forwarders=list(forwarders))
    return sentry_init(integrations=[integration], **options)


def flush() -> None:
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)


def error_view(**fields: Any) -> ErrorView:
    """An ErrorView of a ValueError("boom") of user u-1 in production; ``fields`` override."""
    defaults: dict[str, Any] = {
        "event_id": "e" * 32,
        "timestamp": datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        "level": "error",
        "environment": "production",
        "exception_type": "ValueError",
        "exception_value": "boom",
        "user": {"id": "u-1"},
    }
    return ErrorView(**{**defaults, **fields})


def handle(forwarder: Any, view: ErrorView, captured_at: float) -> None:
    """What the delivery worker does with one error and one forwarder, on this thread."""
    calls = forwarder.prepare(view, captured_at)
    if calls is not None:
        forwarder.deliver(view, calls, captured_at)


def flask_checkout(
    sentry_init: Callable[..., Any],
    forwarder: Any,
    target: str,
    *,
    pii: bool,
    headers: Optional[dict[str, str]] = None,
) -> None:
    """GET ``target`` from a Flask app whose ``/checkout`` sets a user full of personal data
    and raises; ``forwarder`` forwards the error (personal data allowed: ``pii``, see
    :func:`pii_options`). Flushed on return."""
    flask = pytest.importorskip("flask")
    init_forwarding(sentry_init, forwarder, **pii_options(pii))
    app = flask.Flask(__name__)

    @app.route("/checkout")
    def checkout() -> str:
        sentry_sdk.set_user({"id": "u-1", "email": SECRET_EMAIL, "ip_address": SECRET_IP, "username": "jane"})
        raise RuntimeError("card declined")

    response = app.test_client().get(target, headers=headers or {})
    assert response.status_code == 500
    sentry_sdk.flush()


def capture_errors_of_one_user(sentry_init: Callable[..., Any], forwarder: Any, count: int) -> None:
    """``count`` errors of user u-1 through ``forwarder``, which pauses 60 s after a refusal."""
    forwarder.backoff_initial = 60.0  # far longer than the test, however slow the machine
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "u-1"})

    for i in range(count):
        capture_error(f"boom {i}")
    sentry_sdk.flush()


def assert_backs_off_after_one_refusal(sentry_init: Callable[..., Any], forwarder: Any, track: Any) -> None:
    """Three errors through ``forwarder`` whose vendor refuses (``track``, a mock of its
    ``track``): one call, then a pause that skips the other two."""
    capture_errors_of_one_user(sentry_init, forwarder, 3)

    assert track.call_count == 1
    assert forwarder.stats.failed == 1
    assert forwarder.stats.skipped == {"backoff": 2}


def assert_is_error_captured(message: dict[str, Any], event_id: str, user_id: str) -> None:
    """``message`` (as Segment received it) is the track call of Sentry event ``event_id``."""
    assert message["type"] == "track"
    assert message["event"] == "Error Captured"
    assert message["userId"] == user_id
    assert message["messageId"] == event_id  # Segment de-duplicates a retried delivery


def aim_segment_module(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, receiver: SegmentReceiver, write_key: Optional[str]
) -> None:
    """Point a Segment package's module-level API (``analytics``) at ``receiver``, with no
    default client yet."""
    monkeypatch.setattr(module, "default_client", None)
    monkeypatch.setattr(module, "write_key", write_key)
    monkeypatch.setattr(module, "host", receiver.host)
    monkeypatch.setattr(module, "max_retries", 1)
    monkeypatch.setattr(module, "timeout", 2)


def capture_through_segment_module(
    module: ModuleType, receiver: SegmentReceiver, message: str
) -> dict[str, Any]:
    """Capture ``message``; the one Segment message that arrived. Joins the module's client."""
    try:
        capture_error(message)
        sentry_sdk.flush(timeout=5)
        [received] = receiver.wait_for_messages(1)
    finally:
        if module.default_client is not None:
            module.default_client.join()
    return received


# Client options segment-analytics-python 2.4 added; earlier 2.x releases (the declared
# floor among them) refuse them, and their own waits are short enough for the tests.
SEGMENT_2_4_OPTIONS = frozenset({"max_total_backoff_duration", "max_rate_limit_duration"})


def segment_client_options(client_type: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without those ``client_type`` (a Segment ``Client`` class) does not take
    because it predates them (``SEGMENT_2_4_OPTIONS``); any other unknown one still fails."""
    import inspect

    accepted = inspect.signature(client_type.__init__).parameters
    return {k: v for k, v in options.items() if k in accepted or k not in SEGMENT_2_4_OPTIONS}


def ld_test_settings(receiver: LaunchDarklyReceiver, **overrides: Any) -> dict[str, Any]:
    """``ldclient.config.Config`` keywords for a test client: polling and events at
    ``receiver``, events flushed every 0.1 s, bounded HTTP waits (so close() cannot stall on
    a receiver told to hang)."""
    from ldclient.config import HTTPConfig  # here, not at import: see the note at the top

    return {
        **receiver.config_kwargs,
        "stream": False,
        "flush_interval": 0.1,
        "diagnostic_opt_out": True,
        "http": HTTPConfig(connect_timeout=2, read_timeout=2),
        **overrides,
    }


def ld_openfeature_provider(config: Any) -> Any:
    """LaunchDarkly's OpenFeature provider on ``config``, waiting up to 5 s for its flags.

    ``start_wait`` came in launchdarkly-openfeature-server 0.7; the releases before it
    (the test extra's floor among them) wait LDClient's default 5 s.
    """
    import inspect

    from ld_openfeature import LaunchDarklyProvider  # here, not at import: see the note at the top

    if "start_wait" in inspect.signature(LaunchDarklyProvider.__init__).parameters:
        return LaunchDarklyProvider(config, start_wait=5)
    return LaunchDarklyProvider(config)


def started_split_factory(factory: Any) -> Any:
    """``factory`` once ready and running its periodic tasks.

    splitio signals "ready" before its SDKInitializer thread starts the periodic tasks; a
    destroy() in that window stops nothing and the tasks started afterwards poll forever.
    """
    factory.block_until_ready(5)
    join_threads(SPLIT_INITIALIZER_THREAD, timeout=5)
    return factory


def destroy_split_factories(factories: Iterable[Any]) -> None:
    """Destroy splitio factories, waiting (bounded) for their last flush."""
    factories = list(factories)
    # See started_split_factory: let the initializer finish first. (A factory that never got
    # ready has an initializer retrying forever; it can't be stopped and, with the receiver
    # gone, will never start those tasks.)
    if any(factory.ready for factory in factories):
        join_threads(SPLIT_INITIALIZER_THREAD, timeout=5)
    for factory in factories:
        if factory.destroyed:
            continue
        destroyed = threading.Event()
        factory.destroy(destroyed)
        destroyed.wait(10)
    # The segment fetcher's worker pool winds down on its own within ~0.5s.
    join_threads("pool_worker_", timeout=2)


def received(receiver: SentryReceiver, count: int) -> list[dict[str, Any]]:
    """Flush, then wait (bounded) for at least ``count`` error events and return them all."""
    flush()
    return receiver.wait_for_events(count)


def only_event(receiver: SentryReceiver) -> dict[str, Any]:
    """Flush and return the single error event the receiver got (fails if there are more)."""
    events = received(receiver, 1)
    assert len(events) == 1, [summary(e) for e in events]
    return events[0]


def exception_value(event: dict[str, Any]) -> Optional[str]:
    values = (event.get("exception") or {}).get("values") or []
    return values[-1].get("value") if values else None


def message_of(event: dict[str, Any]) -> Optional[str]:
    logentry = event.get("logentry") or {}
    return logentry.get("formatted") or logentry.get("message") or event.get("message")


def summary(event: dict[str, Any]) -> Optional[str]:
    """What identifies a test event: its exception value, else its message."""
    return exception_value(event) or message_of(event)


def summaries(receiver: SentryReceiver, count: int) -> list[Optional[str]]:
    """Flush, wait for ``count`` events, and return every received event's summary, sorted."""
    return sorted(summary(e) or "" for e in received(receiver, count))


def by_summary(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        key = summary(event)
        assert key is not None, event
        assert key not in found, key
        found[key] = event
    return found


def ld_context_of(event: dict[str, Any]) -> Any:
    return (event.get("contexts") or {}).get(LD_KEY)


def raw_bodies(receiver: SentryReceiver) -> bytes:
    """Every envelope body the receiver got (decompressed), concatenated."""
    return b"\n".join(r.body for r in receiver.requests_to("/api/"))


def transactions(receiver: SentryReceiver) -> list[dict[str, Any]]:
    """The transactions ``receiver`` got, on either major.

    2.x sends transaction events. 3.x (and 2.7x with span streaming) streams spans instead
    (``span`` envelope items): each segment (root span) is given here in a transaction's
    shape, ``transaction`` its name, ``environment``/``release``/``server_name`` from its
    attributes, ``contexts`` empty (a streamed span has none; its ``raw`` JSON is kept for
    scans), ``spans`` its children with their attributes as ``data``.
    """
    spans = [s for item in receiver.items("span") for s in (item.json or {}).get("items", [])]

    def attributes(span: dict[str, Any]) -> dict[str, Any]:
        return {k: v.get("value") for k, v in span.get("attributes", {}).items() if isinstance(v, dict)}

    found = []
    for segment in (s for s in spans if s.get("is_segment")):
        data = attributes(segment)
        children = [
            s for s in spans
            if not s.get("is_segment") and attributes(s).get("sentry.segment.id") == segment["span_id"]
        ]  # fmt: skip
        found.append({
            "transaction": segment.get("name"),
            "environment": data.get("sentry.environment"),
            "release": data.get("sentry.release"),
            "server_name": data.get("server.address"),
            "contexts": {},
            "data": data,
            "spans": [{"description": s.get("name"), "data": attributes(s)} for s in children],
            "raw": [segment, *children],
        })  # fmt: skip
    return [*receiver.transactions, *found]


def wait_for_transactions(receiver: SentryReceiver, count: int = 1) -> list[dict[str, Any]]:
    """Flush, then wait (bounded) for ``count`` transactions (see :func:`transactions`)."""
    flush()
    return wait_for(
        lambda: (found := transactions(receiver)) and len(found) >= count and found,
        message=f"{count} transaction(s)",
    )


def ld_hooks(ld_client: Any, name: str = "sentry-flags") -> list[Any]:
    """The hooks named ``name`` registered on a real LDClient."""
    hooks = ld_client._LDClient__hooks  # the SDK keeps them private; read-only here
    return [h for h in hooks if h.metadata.name == name]


@contextmanager
def sentry_flags_logger_restored() -> Iterator[logging.Logger]:
    """``debug=True`` sets the ``sentry_flags`` logger to DEBUG with a stderr handler; undo it."""
    log = logging.getLogger("sentry_flags")
    level, handlers, propagate = log.level, list(log.handlers), log.propagate
    try:
        yield log
    finally:
        log.setLevel(level)
        log.handlers[:] = handlers
        log.propagate = propagate


def flags_debug_messages(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name == "sentry_flags" and r.levelno == logging.DEBUG]


def vendor_env(
    sentry: SentryReceiver, ld: LaunchDarklyReceiver, split: SplitReceiver, segment: SegmentReceiver,
    **extra: str,
) -> dict[str, str]:  # fmt: skip
    """This process's environment plus what examples/vendors.py reads, aimed at the stand-ins."""
    return dict(
        os.environ,
        SENTRY_DSN=sentry.dsn,
        LAUNCHDARKLY_SDK_KEY="ld-example-key",
        LAUNCHDARKLY_BASE_URI=ld.url,
        SPLIT_SDK_KEY="split-example-key",
        SPLIT_API_URL=split.api_url,
        SEGMENT_WRITE_KEY="segment-example-key",
        SEGMENT_HOST=segment.host,
        no_proxy="127.0.0.1",
        **extra,
    )


def split_whitelist_flag(name: str, off_for: list[str]) -> dict[str, Any]:
    """A Split flag ``on`` (label "default rule") for every key but ``off_for`` ("whitelisted")."""
    flag = split_definition(name, treatment="on")
    whitelist = {
        "conditionType": "WHITELIST",
        "matcherGroup": {
            "combiner": "AND",
            "matchers": [
                {
                    "keySelector": None,
                    "matcherType": "WHITELIST",
                    "negate": False,
                    "whitelistMatcherData": {"whitelist": off_for},
                }
            ],
        },
        "partitions": [{"treatment": "off", "size": 100}],
        "label": "whitelisted",
    }
    flag["conditions"] = [whitelist, *flag["conditions"]]
    return flag


def run_threads(target: Callable[[int], None], count: int, *, join_timeout: float = 30.0) -> None:
    """Run ``target(i)`` on ``count`` threads at once; re-raise their failures here."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), name=f"test-worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_timeout)
    assert not [t for t in threads if t.is_alive()], "threads did not finish"
    assert not errors, errors[:3]


def wait_child(pid: int, deadline: float) -> int:
    """A forked child's exit code; killed (-9) if it has not exited by ``deadline``."""
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


def scope_flags(scope: Any, *, sentry: bool = False) -> list[dict[str, Any]]:
    """What an error captured now would carry from ``scope``'s flag log: the
    ``flagEvaluations`` values, or (``sentry=True``) Sentry's ``flags`` values."""
    from sentry_flags._flags import FLAGS_KEY, flag_contexts

    log = scope._contexts.get(FLAGS_KEY)
    if log is None:
        return []
    evaluations, flags = flag_contexts(log, None)
    if sentry:
        return list((flags or {}).get("values", []))
    return list(evaluations["values"])
