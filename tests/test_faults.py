"""Fault injection: each endpoint misbehaves on purpose while a real Flask app raises errors.

For every endpoint (Split's events API, LaunchDarkly's events endpoint, Segment's batch
endpoint, Sentry's own ingest) and every fault the loopback receivers can play (refused
connections, a hang, HTTP 500, HTTP 429 with Retry-After, bytes that are not HTTP, a 200
whose body is not JSON), with all three forwarders on real SDK clients:

(a) every app request succeeds and nothing raises into the app or kills a thread;
(b) when a vendor fails, every error still reaches Sentry with its ``launchdarklyContext``;
(c) the other forwarders keep delivering;
(d) memory stays bounded: our queue never holds more than ``queue_size`` and the vendor
    SDKs' buffers never more than their configured caps, while more errors than both are
    pushed; what does not fit is dropped and counted;
(e) refusals and drops show in the forwarders' ``stats``;
(f) once the endpoint recovers, new errors arrive again.

The vendor SDKs buffer and retry on their own, each in its own way; ``KEEPS`` says, per
vendor and fault, what each one does with the errors captured during the fault, as read in
its source, and the tests check exactly that.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from helpers import SEGMENT_2_4_OPTIONS, Receivers, started_split_factory
from receivers import (
    BaseReceiver,
    LaunchDarklyReceiver,
    Mode,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
    parse_envelope,
    wait_for,
)

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

import sentry_sdk  # noqa: E402
from ldclient import Context  # noqa: E402
from ldclient.config import HTTPConfig  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402

from sentry_flags import FlagsIntegration  # noqa: E402
from sentry_flags.flask import FlagsExtension  # noqa: E402
from sentry_flags.forwarders import LaunchDarklyForwarder, SegmentForwarder, SplitForwarder  # noqa: E402

# segment-analytics-python 2.4 waits a 429 out (its max_rate_limit_duration); the releases
# before it retry a 429 as any failed post, max_retries times, then drop the batch.
SEGMENT_WAITS_OUT_429 = (
    set(inspect.signature(importlib.import_module("segment.analytics").Client.__init__).parameters)
    >= SEGMENT_2_4_OPTIONS
)

pytestmark = [
    # An exception that escapes on any thread (ours, a vendor SDK's, a request) fails the test.
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),  # splitio's own
]

FLAG = "checkout-v2"
QUEUE_SIZE = 8  # our delivery queue
VENDOR_CAP = 10  # Split's eventsQueueSize and Segment's max_queue_size
# LaunchDarkly's events_max_pending: each request adds an index event (a new context) and the
# custom event to its buffer, so it needs room for two bursts to stay lossless when healthy.
LD_CAP = 4 * QUEUE_SIZE
BATCH = 5  # Split eventsBulkSize and Segment upload_size
DURING = 3  # errors captured while the endpoint fails, before the overload
AFTER = 3  # errors captured once it recovered
OVERLOAD_BURSTS = 2  # bursts of QUEUE_SIZE errors, each delivered before the next
WAIT = 10.0  # bound on every wait for something to arrive
# A hung request must outlast the fault phase so that what it carries is only released by
# the recovery (LaunchDarkly and Segment then retry it), however slow the machine.
HUNG_READ_TIMEOUT = 25.0

ENDPOINTS = ("split", "launchdarkly", "segment", "sentry")
FAULTS = (Mode.REFUSE, Mode.HANG, Mode.ERROR, Mode.RATE_LIMIT, Mode.GARBAGE, Mode.BAD_BODY)
VENDORS = ("split", "launchdarkly", "segment")
PATHS = {"split": "/api/events", "launchdarkly": "/bulk", "segment": "/v1/batch", "sentry": "/api/"}

# What each SDK does with errors captured while its endpoint fails (the DURING errors):
#   "kept"      delivered once the endpoint recovers
#   "lost"      given up on before it recovers (the test waits until the SDK gave up)
#   "delivered" delivered during the fault: the SDK took the answer for a success
#   "first_lost" the request in flight is lost, the rest waited behind it and go out after
#   None        depends on timing (checked below)
KEEPS: dict[tuple[str, Mode], Optional[str]] = {
    # splitio (sync/event.py) puts a batch whose post failed on a "failed" queue and re-sends
    # it, first, on every push; it never gives up. A hang is its connectionTimeout.
    **{("split", f): "kept" for f in (Mode.REFUSE, Mode.HANG, Mode.ERROR, Mode.RATE_LIMIT, Mode.GARBAGE)},
    # ldclient (_post_events_with_retry) retries a failed post once, 1 s later, then drops it;
    # 429 is retried like 500 and Retry-After is ignored. A hung post is only released by the
    # recovery (read timeout longer than the test), so its retry succeeds.
    **{("launchdarkly", f): "lost" for f in (Mode.REFUSE, Mode.ERROR, Mode.RATE_LIMIT, Mode.GARBAGE)},
    ("launchdarkly", Mode.HANG): "kept",
    # segment-analytics-python (consumer.py) retries a failed batch (max_retries=1: at once)
    # and then drops it. From 2.4 on, a 429 with Retry-After puts the batch back on its queue
    # and waits, up to max_rate_limit_duration; but the re-queue drops what no longer fits in
    # a queue that filled meanwhile (our overload does that), so the outcome depends on
    # timing. Before 2.4 a 429 is one more failed post.
    **{("segment", f): "lost" for f in (Mode.REFUSE, Mode.ERROR, Mode.GARBAGE)},
    ("segment", Mode.RATE_LIMIT): None if SEGMENT_WAITS_OUT_429 else "lost",
    ("segment", Mode.HANG): "kept",
    # sentry-sdk's transport never retries: an envelope that failed is lost, and a 429 stops
    # sending for Retry-After seconds. Envelopes queued behind a hung one go out after it.
    **{("sentry", f): "lost" for f in (Mode.REFUSE, Mode.ERROR, Mode.RATE_LIMIT, Mode.GARBAGE)},
    ("sentry", Mode.HANG): "first_lost",
    # Nobody reads a 2xx body: a 200 with garbage in it is a success everywhere.
    **{(e, Mode.BAD_BODY): "delivered" for e in ENDPOINTS},
}


class CheckoutError(Exception):
    pass


def run_bounded(target: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Run ``target`` on a helper thread: a hang fails the test instead of stalling the suite."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(target())
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="fault-test-call", daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{target!r} did not return within {timeout}s"
    if errors:
        raise errors[0]
    return result[0]


# -- what arrived, as the SDK saw it: any 2xx answer, garbage body or not -------------------------


def _answered(receiver: BaseReceiver, path: str) -> list[Any]:
    return [r for r in receiver.requests_to(path, "POST") if r.status is not None and 200 <= r.status < 300]


def sentry_events(receiver: SentryReceiver) -> dict[str, dict[str, Any]]:
    """The app's error events Sentry accepted, by exception value."""
    found: dict[str, dict[str, Any]] = {}
    for request in _answered(receiver, "/api/"):
        for item in parse_envelope(request.body).items:
            event = item.json if item.type == "event" else None
            values = ((event or {}).get("exception") or {}).get("values") or []
            if values and values[-1].get("type") == "CheckoutError":
                found[values[-1]["value"]] = event
    return found


def split_values(receiver: SplitReceiver) -> list[str]:
    return [
        e["properties"]["exceptionValue"]
        for r in _answered(receiver, "/api/events/bulk")
        for e in (r.json if isinstance(r.json, list) else [])
    ]


def ld_values(receiver: LaunchDarklyReceiver) -> list[str]:
    return [
        e["data"]["exceptionValue"]
        for r in _answered(receiver, "/bulk")
        for e in (r.json if isinstance(r.json, list) else [])
        if e.get("kind") == "custom"
    ]


def segment_values(receiver: SegmentReceiver) -> list[str]:
    return [
        m["properties"]["exceptionValue"]
        for r in _answered(receiver, "/v1/batch")
        for m in (r.json or {}).get("batch", [])
    ]


# -- the rig -------------------------------------------------------------------------------------


@dataclass
class Rig:
    app: Any
    receivers: Receivers  # receivers[endpoint]
    ld_client: Any
    split_factory: Any
    segment_client: Any
    forwarders: dict[str, Any]
    integration: FlagsIntegration
    seen_queue: list[int] = field(default_factory=list)  # our queue's length after each request
    labels: list[str] = field(default_factory=list)  # every error the app raised

    # -- the app ---------------------------------------------------------------------------------

    def errors(self, phase: str, count: int) -> list[str]:
        """``count`` requests that each raise, capture and answer 200; their error labels."""
        labels = [f"{phase}-{len(self.labels) + i}" for i in range(count)]
        self.labels.extend(labels)
        client = self.app.test_client()
        delivery = self.integration.delivery
        assert delivery is not None
        queue = delivery._queue

        def requests() -> list[tuple[int, bytes]]:
            answers = []
            for label in labels:
                response = client.get(f"/checkout/user-{label}/{label}")
                answers.append((response.status_code, response.data))
                self.seen_queue.append(len(queue))
            return answers

        answers = run_bounded(requests)
        assert answers == [(200, b"ok")] * count  # (a) the app never noticed
        return labels

    def flush(self) -> None:
        # The app's own flush: bounded by its timeout, never raises, whatever is down.
        run_bounded(lambda: sentry_sdk.flush(timeout=0.5), timeout=WAIT)

    def wait_worker_parked(self) -> None:
        """Wait until our delivery worker served the last flush and went back to sleep."""
        delivery = self.integration.delivery
        assert delivery is not None

        def parked() -> bool:
            request = delivery._vendor_flush
            served = request is None or request.is_set()
            return served and not delivery._wake.is_set() and not delivery._busy and not delivery._queue

        wait_for(parked, timeout=WAIT, message="delivery worker asleep")

    def wait_handled(self, vendor: str, count: int) -> None:
        """Wait until ``vendor``'s forwarder took, refused or skipped ``count`` errors."""
        forwarder = self.forwarders[vendor]

        def handled() -> int:
            stats = forwarder.stats
            return stats.forwarded + stats.failed + stats.skipped.get("backoff", 0)

        wait_for(lambda: handled() == count, timeout=WAIT, message=f"{vendor}: {count} handled")
        assert handled() == count, (vendor, forwarder.stats)

    # -- what arrived ------------------------------------------------------------------------------

    def arrived(self, endpoint: str) -> set[str]:
        """The labels of the app's errors that ``endpoint`` accepted."""
        read = {"sentry": sentry_events, "split": split_values, "launchdarkly": ld_values}
        return set(read.get(endpoint, segment_values)(self.receivers[endpoint]))

    def wait_arrived(self, endpoint: str, labels: list[str], timeout: float = WAIT) -> None:
        wait_for(
            lambda: set(labels) <= self.arrived(endpoint),
            timeout=timeout,
            message=f"{labels} at {endpoint} (got {sorted(self.arrived(endpoint))})",
        )

    # -- faults ------------------------------------------------------------------------------------

    def fault(self, endpoint: str, mode: Mode) -> None:
        self.receivers[endpoint].set_mode(mode, path_prefix=PATHS[endpoint], retry_after=1)

    def recover(self, endpoint: str) -> None:
        self.receivers[endpoint].set_mode(Mode.NORMAL)

    # -- the vendors' own buffers ----------------------------------------------------------------

    def vendor_backlog(self) -> dict[str, int]:
        """How much each vendor SDK holds in memory right now (private attributes, read only)."""
        storage = self.split_factory._storages["events"]._events
        failed = self.split_factory._sync_manager._synchronizer._split_synchronizers.events_sync._failed
        return {
            "split": storage.qsize(),
            "split_failed": failed.qsize(),
            "launchdarkly": len(_ld_dispatcher(self.ld_client)._outbox._events),
            "launchdarkly_inbox": self.ld_client._event_processor._inbox.qsize(),
            "segment": self.segment_client.queue.qsize(),
        }


def _ld_dispatcher(ld_client: Any) -> Any:
    # ldclient keeps no reference to its dispatcher but its thread's target.
    inbox = ld_client._event_processor._inbox
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)
        owner = getattr(target, "__self__", None)
        if thread.name == "ldclient.events.processor" and getattr(owner, "_inbox", None) is inbox:
            return owner
    raise AssertionError("LaunchDarkly's event dispatcher thread is not running")


@pytest.fixture
def rig(
    sentry_init: Callable[..., Any],
    receivers: Receivers,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
    make_split_factory: Callable[..., Any],
    make_segment_client: Callable[..., Any],
) -> Iterator[Rig]:
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    ld_client = make_ld_client(
        update_processor_class=ld_test_data,  # flags from memory: LD's receiver only gets events
        events_max_pending=LD_CAP,
        http=HTTPConfig(connect_timeout=1, read_timeout=HUNG_READ_TIMEOUT),
    )
    factory = started_split_factory(
        make_split_factory(
            eventsQueueSize=VENDOR_CAP, eventsBulkSize=BATCH, eventsPushRate=0.1, connectionTimeout=500
        )
    )
    segment_client = make_segment_client(
        max_queue_size=VENDOR_CAP,
        upload_size=BATCH,
        timeout=HUNG_READ_TIMEOUT,
        max_retries=1,
        max_rate_limit_duration=60,  # a short 429 episode is waited out, not given up on
    )
    split = SplitForwarder(factory.client(), identities={"user": "user.id"}, capture_culprit=False)
    segment = SegmentForwarder(segment_client)
    for forwarder in (split, segment):
        # Short pauses after a refusal, so the recovery is seen at once.
        forwarder.backoff_initial = 0.05
        forwarder.backoff_max = 0.1
    # Our bound on waiting for Segment's consumer in a flush (2 s by default), shorter to
    # keep the hang and 429 cases quick; what matters is that there is one.
    segment.flush_timeout = 0.5
    launchdarkly = LaunchDarklyForwarder(ld_client)
    integration = FlagsIntegration(
        launchdarkly_client=ld_client,
        forwarders=[split, launchdarkly, segment],
        queue_size=QUEUE_SIZE,
        max_forwarded_per_second=None,
    )
    assert integration.delivery is not None
    # The worker wakes only when the app flushes (QUEUE_SIZE is below its early-wake batch):
    # how full our queue gets is then up to the test, not to the machine's speed.
    integration.delivery.interval = 3600.0
    sentry_init(integrations=[FlaskIntegration(), integration], environment="production")

    app = flask.Flask("faults_app")
    app.logger.disabled = True
    FlagsExtension(app)

    @app.route("/checkout/<user>/<label>")
    def checkout(user: str, label: str) -> str:
        ld_client.variation(FLAG, Context.create(user), False)  # the hook records this context
        sentry_sdk.set_user({"id": user})
        try:
            raise CheckoutError(label)
        except CheckoutError:
            sentry_sdk.capture_exception()
        return "ok"

    rig = Rig(
        app=app,
        receivers=receivers,
        ld_client=ld_client,
        split_factory=factory,
        segment_client=segment_client,
        forwarders={"split": split, "launchdarkly": launchdarkly, "segment": segment},
        integration=integration,
    )
    yield rig
    # Whatever happened, let hung requests go before the clients are closed.
    for receiver in receivers.values():
        receiver.set_mode(Mode.NORMAL)


def wait_until_given_up(rig: Rig, endpoint: str) -> None:
    """Block until the SDK of ``endpoint`` finished every attempt at what it was given."""
    if endpoint == "launchdarkly":
        # flush hands the buffer to a flush worker; the test-only sync waits for the workers,
        # i.e. for the post and its one retry.
        rig.ld_client.flush()
        run_bounded(rig.ld_client._event_processor._wait_until_inactive)
    elif endpoint == "segment":
        run_bounded(rig.segment_client.flush)  # queue.join(): every batch sent or dropped
    elif endpoint == "sentry":
        # The transport's worker went through its queue: each envelope sent or dropped.
        run_bounded(lambda: sentry_sdk.get_client().transport.flush(5))


@pytest.mark.parametrize("mode", FAULTS, ids=[f.value for f in FAULTS])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_fault(rig: Rig, endpoint: str, mode: Mode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="segment")
    caplog.set_level(logging.DEBUG, logger="sentry_flags")
    healthy = [v for v in VENDORS if v != endpoint]
    rig.fault(endpoint, mode)

    # -- (a, b, c) errors while the endpoint fails -----------------------------------------------
    during = rig.errors("during", DURING)
    rig.flush()
    if endpoint != "sentry":
        rig.wait_arrived("sentry", during)
        events = sentry_events(rig.receivers["sentry"])
        for label in during:
            # (b) with the context the app's flag evaluation used
            assert events[label]["contexts"]["launchdarklyContext"]["key"] == f"user-{label}"
    for vendor in healthy:
        rig.wait_arrived(vendor, during)  # (c)
    for vendor in VENDORS:
        rig.wait_handled(vendor, DURING)
        # Every SDK took them into its own buffer: none was full yet.
        assert rig.forwarders[vendor].stats.forwarded == DURING, vendor

    # -- (d, e) more errors than the vendor SDKs' buffers hold, while the endpoint fails ---------
    pushed = DURING
    for _ in range(OVERLOAD_BURSTS):
        labels = rig.errors("overload", QUEUE_SIZE)
        pushed += QUEUE_SIZE
        rig.flush()
        for vendor in VENDORS:
            # Each error accounted for exactly once: taken, refused, or skipped while paused;
            # none dropped by us, as each burst fits in our queue.
            rig.wait_handled(vendor, pushed)
        for vendor in healthy:
            rig.wait_arrived(vendor, labels)  # (c) all of them, so no healthy buffer fills
        sizes = rig.vendor_backlog()
        assert sizes["split"] <= VENDOR_CAP, sizes
        assert sizes["split_failed"] <= BATCH, sizes  # its retry queue, taken first each push
        assert sizes["launchdarkly"] <= LD_CAP, sizes
        assert sizes["launchdarkly_inbox"] <= LD_CAP, sizes
        assert sizes["segment"] <= VENDOR_CAP, sizes
    assert pushed > VENDOR_CAP + BATCH  # more than Split or Segment can hold
    assert 2 * pushed > LD_CAP  # and than LaunchDarkly (custom and index events)
    for vendor in VENDORS:
        stats = rig.forwarders[vendor].stats
        assert stats.dropped == 0, (vendor, stats)
        if vendor in healthy:
            assert stats.forwarded == pushed, (vendor, stats)
    if endpoint == "split" and mode is not Mode.BAD_BODY:
        # splitio's queue filled (what failed is never taken off it): track returned False,
        # counted as failed, and the forwarder paused its calls.
        assert rig.forwarders["split"].stats.failed >= 1
    if endpoint == "segment" and (mode is Mode.HANG or (mode is Mode.RATE_LIMIT and SEGMENT_WAITS_OUT_429)):
        # Segment's consumer holds one batch and waits; its queue fills and track refuses.
        # (Against refusals, 500s and garbage, and before 2.4 against 429s, it drops each
        # batch after its retries and may keep up.)
        assert rig.forwarders["segment"].stats.failed >= 1
    # LaunchDarkly drops what exceeds events_max_pending silently: track reports nothing.
    assert rig.forwarders["launchdarkly"].stats.failed == 0

    if (endpoint == "split" and mode is not Mode.BAD_BODY) or (endpoint, mode) == ("segment", Mode.HANG):
        # What the failing SDK took is bounded by its queue plus the batch it is (re)trying.
        assert rig.forwarders[endpoint].stats.forwarded <= VENDOR_CAP + BATCH

    # -- (d, e) more errors than our own queue holds, all at once ---------------------------------
    delivery = rig.integration.delivery
    assert delivery is not None
    assert max(rig.seen_queue) <= QUEUE_SIZE
    dropped_before = delivery.dropped
    rig.wait_worker_parked()
    rig.seen_queue.clear()
    rig.errors("flood", 3 * QUEUE_SIZE)
    assert max(rig.seen_queue) <= QUEUE_SIZE
    dropped = delivery.dropped - dropped_before
    # The worker sleeps until the app flushes: everything past the first QUEUE_SIZE is
    # dropped (but for an item or two if it was just finishing its last round).
    assert 2 * QUEUE_SIZE - 2 <= dropped <= 2 * QUEUE_SIZE
    for vendor in VENDORS:
        assert rig.forwarders[vendor].stats.dropped == dropped, vendor
    rig.flush()
    pushed += 3 * QUEUE_SIZE - dropped
    for vendor in VENDORS:
        rig.wait_handled(vendor, pushed)
    for vendor in healthy:
        # (c) everything the healthy forwarders took arrived
        forwarded = rig.forwarders[vendor].stats.forwarded
        wait_for(lambda v=vendor, n=forwarded: len(rig.arrived(v)) == n, message=f"{vendor}: all")

    # -- what the failing SDK did with the errors of the fault ------------------------------------
    keeps = KEEPS[(endpoint, mode)]
    if keeps == "lost":
        wait_until_given_up(rig, endpoint)
    elif keeps == "delivered":
        rig.wait_arrived(endpoint, during)  # during the fault

    # -- (f) recovery ---------------------------------------------------------------------------------
    rig.recover(endpoint)
    # The SDK first drains what it kept, the forwarder resumes after its pause, Sentry's
    # transport waits out a Retry-After: errors captured meanwhile may be refused or skipped.
    # So capture a few at a time until a whole round gets through.
    after: list[str] = []
    for _ in range(30):
        labels = rig.errors("after", AFTER)
        rig.flush()
        try:
            rig.wait_arrived(endpoint, labels, timeout=1.0)
        except AssertionError:
            continue
        after = labels
        break
    assert after, f"{endpoint} never recovered"
    for target in ENDPOINTS:
        rig.wait_arrived(target, after)
    if endpoint != "sentry":
        # (b) every error of the test reached Sentry, each with its own context
        rig.wait_arrived("sentry", rig.labels)
        for label, event in sentry_events(rig.receivers["sentry"]).items():
            assert event["contexts"]["launchdarklyContext"]["key"] == f"user-{label}"

    # (a) nothing in sentry-flags raised, not even where it is caught and logged at debug
    ours = [r for r in caplog.records if r.name.startswith("sentry_flags")]
    assert not [r.getMessage() for r in ours if r.exc_info], "an exception inside sentry-flags"

    arrived = set(during) & rig.arrived(endpoint)
    if keeps in ("kept", "delivered"):
        rig.wait_arrived(endpoint, during)
    elif keeps == "lost":
        assert not arrived
    elif keeps == "first_lost":
        rig.wait_arrived(endpoint, during[1:])
        assert during[0] not in rig.arrived(endpoint)
    elif endpoint == "segment" and mode is Mode.RATE_LIMIT and arrived != set(during):
        # Waited out, but put back into a queue the overload had filled meanwhile.
        assert "Queue full during rate-limit re-queue" in caplog.text

    # Every error that reached a forwarder has exactly one outcome, whatever failed: the
    # app's errors, and the vendor SDKs' own error logs (skipped, never forwarded).
    rig.flush()
    for vendor in VENDORS:
        stats = rig.forwarders[vendor].stats
        assert stats.errors == stats.accounted, (vendor, stats)
        assert stats.errors - stats.skipped.get("vendor_sdk_log", 0) == len(rig.labels), (vendor, stats)
