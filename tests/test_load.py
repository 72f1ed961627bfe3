"""Load: 100 threads and 1,000 asyncio tasks raising at once, each with its own context and user.

Every worker has its own LaunchDarkly context (set by hand, or recorded by the
``launchdarkly_client=`` hook from a real flag evaluation) and its own Sentry user, and
embeds both in its exception message. After all of them raised together, the Sentry
receiver must hold exactly one event per worker carrying that worker's context and user,
and the Split, LaunchDarkly and Segment receivers one event per worker on that worker's
identity: zero cross-talk, nothing lost.

"Below the rate limits" is set up on purpose and stated here: sentry-flags' own bound
(``max_forwarded_per_second``, 10/s by default) is off, its queue holds every error
(``queue_size``), Segment's forwarder allows a burst of every error (``max_per_second``;
200/s by default, as Sentry's own Segment forwarder), and sentry-sdk's transport queue
(``transport_queue_size``, 100 by default) holds them all too. The vendor SDKs' own queues
(10,000 each) are far above. The last test keeps our defaults and checks that what is over
them is counted, never lost silently.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from typing import Any, Callable

import pytest

pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

import sentry_sdk
from ldclient import Context
from sentry_sdk.integrations.asyncio import AsyncioIntegration, patch_asyncio

from helpers import Receivers, capture_error, run_threads
from receivers import wait_for
from sentry_flags import FlagsIntegration, set_launchdarkly_context
from sentry_flags.forwarders import LaunchDarklyForwarder, SegmentForwarder, SplitForwarder

THREADS = 100
TASKS = 1000
FLAG = "load-flag"
JOIN_TIMEOUT = 30.0
WAIT = 40.0  # per receiver, for everything to arrive
VENDORS = ("split", "launchdarkly", "segment")

# Room for every error at once (see the module docstring).
ROOM = 4 * TASKS
UNBOUNDED = {"queue_size": ROOM, "max_forwarded_per_second": None}


class LoadError(Exception):
    """What every worker raises; its message names the worker's context and user."""


def identity(prefix: str, i: int) -> tuple[str, str, str]:
    """(exception message, LaunchDarkly context key, Sentry user id) of worker ``i``."""
    ctx, user = f"{prefix}-ctx-{i}", f"{prefix}-user-{i}"
    return f"load {prefix} #{i} ctx={ctx} user={user}", ctx, user


def parse(message: str) -> tuple[str, str]:
    """The (context key, user id) a message names."""
    fields = dict(part.split("=", 1) for part in message.split() if "=" in part)
    return fields["ctx"], fields["user"]


class Vendors:
    """The three receivers and the forwarders pointed at them through the real SDKs."""

    def __init__(
        self,
        sentry_init: Callable[..., Any],
        ld: Any,
        split_client: Any,
        segment_client: Any,
        *,
        unbounded: bool = True,
        integrations: tuple[Any, ...] = (),
    ) -> None:
        self.forwarders = {
            # capture_culprit=False: one Split event per error keeps the count exact.
            "split": SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=False),
            "launchdarkly": LaunchDarklyForwarder(ld),
            "segment": (
                SegmentForwarder(segment_client, max_per_second=ROOM)
                if unbounded
                else SegmentForwarder(segment_client)
            ),
        }
        options: dict[str, Any] = UNBOUNDED if unbounded else {}
        flags = FlagsIntegration(launchdarkly_client=ld, forwarders=list(self.forwarders.values()), **options)
        sentry_init(
            integrations=[flags, *integrations],
            environment="production",
            transport_queue_size=ROOM,
        )


def act(ld: Any, prefix: str, i: int) -> str:
    """Set worker ``i``'s user and LD context (odd: by hand, even: by evaluating a flag)."""
    message, ctx, user = identity(prefix, i)
    sentry_sdk.set_user({"id": user})
    context = Context.builder(ctx).set("worker", i).build()
    if i % 2:
        set_launchdarkly_context(context)
    else:
        assert ld.variation(FLAG, context, False) is True
    return message


@pytest.fixture
def ld(ld_client: Any, ld_test_data: Any) -> Any:
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    return ld_client


@pytest.fixture
def make_vendors(
    sentry_init: Callable[..., Any], ld: Any, split_client: Any, segment_client: Any
) -> Callable[..., Vendors]:
    """``make_vendors(**options)``: :class:`Vendors` on this test's real clients."""
    return functools.partial(Vendors, sentry_init, ld, split_client, segment_client)


# -- what arrived ------------------------------------------------------------------------


def _wait_until(count: Callable[[], int], expected: int, what: str) -> None:
    # Polls a cheap count; the payloads are parsed once, afterwards.
    wait_for(lambda: count() >= expected, timeout=WAIT, interval=0.1, message=f"{expected} {what}")


def arrived(receivers: Receivers, expected: dict[str, int]) -> dict[str, list[tuple[str, str, str]]]:
    """Per destination, (message, context key or user id it carries, user id) of each event."""
    sentry, split, ld, segment = receivers.sentry, receivers.split, receivers.launchdarkly, receivers.segment

    sentry_sdk.flush(timeout=JOIN_TIMEOUT)
    _wait_until(lambda: len(sentry.delivered("/api/", "POST")), expected["sentry"], "Sentry envelopes")
    _wait_until(lambda: len(split.events), expected["split"], "Split events")
    _wait_until(lambda: len(ld.custom_events), expected["launchdarkly"], "LaunchDarkly custom events")
    _wait_until(lambda: len(segment.messages), expected["segment"], "Segment messages")

    found: dict[str, list[tuple[str, str, str]]] = {}
    found["sentry"] = [
        (
            event["exception"]["values"][-1]["value"],
            ((event.get("contexts") or {}).get("launchdarklyContext") or {}).get("key", ""),
            (event.get("user") or {}).get("id", ""),
        )
        for event in sentry.events
    ]
    found["split"] = [
        (e["properties"]["exceptionValue"], "", e["key"])
        for e in split.events
        if e["eventTypeId"] == "sentry_exception" and e["trafficTypeName"] == "user"
    ]
    found["launchdarkly"] = [
        (e["data"]["exceptionValue"], e["context"]["key"], "")
        for e in ld.custom_events
        if e["key"] == "sentry-errors"
    ]
    found["segment"] = [(m["properties"]["exceptionValue"], "", m["userId"]) for m in segment.messages]
    return found


def assert_each_carries_its_own(
    found: dict[str, list[tuple[str, str, str]]], messages: set[str], *, complete: bool = True
) -> None:
    for destination, events in found.items():
        seen = Counter(message for message, _, _ in events)
        assert max(seen.values(), default=1) == 1, (destination, seen.most_common(3))
        assert set(seen) <= messages, (destination, sorted(set(seen) - messages)[:5])
        if complete or destination == "sentry":
            missing = messages - set(seen)
            assert not missing, (destination, len(missing), sorted(missing)[:5])
        for message, ctx, user in events:
            want_ctx, want_user = parse(message)
            if destination in ("sentry", "launchdarkly"):
                assert ctx == want_ctx, (destination, message, ctx)
            if destination != "launchdarkly":
                assert user == want_user, (destination, message, user)


def assert_stats(vendors: Vendors, forwarded: int) -> None:
    for name, forwarder in vendors.forwarders.items():
        stats = forwarder.stats
        assert (stats.forwarded, stats.failed, stats.dropped, stats.rate_limited) == (forwarded, 0, 0, 0), (
            name,
            stats,
        )
        assert stats.skipped_total == 0, (name, stats)


def assert_every_one_arrived_with_its_own(
    receivers: Receivers, vendors: Vendors, prefix: str, count: int
) -> None:
    """Each of the ``count`` workers' errors reached every destination once, on its identity."""
    messages = {identity(prefix, i)[0] for i in range(count)}
    found = arrived(receivers, dict.fromkeys(("sentry", *VENDORS), count))
    assert_each_carries_its_own(found, messages)
    assert_stats(vendors, count)


# -- threads -----------------------------------------------------------------------------


def test_100_threads_raising_at_once_each_carry_their_own_context_everywhere(
    ld: Any, make_vendors: Callable[..., Vendors], receivers: Receivers
) -> None:
    vendors = make_vendors()
    # sentry-sdk's ThreadingIntegration (on by default) gives each thread a fork of its
    # parent's isolation scope: no scope to manage by hand, as in any threaded app.
    barrier = threading.Barrier(THREADS, timeout=JOIN_TIMEOUT)

    def work(i: int) -> None:
        message = act(ld, "thread", i)
        barrier.wait()  # every thread has its context before any raises
        capture_error(message, LoadError)

    run_threads(work, THREADS)

    assert_every_one_arrived_with_its_own(receivers, vendors, "thread", THREADS)


# -- asyncio -----------------------------------------------------------------------------


async def gather_tasks(
    ld: Any, prefix: str, count: int, body: Callable[[Callable[[], Any]], Any]
) -> list[Any]:
    """Start ``count`` tasks; each sets its context, waits for all, then raises."""
    ready, go = asyncio.Event(), asyncio.Event()
    waiting = [0]

    async def task(i: int) -> None:
        message = act(ld, prefix, i)
        waiting[0] += 1
        if waiting[0] == count:
            ready.set()
        await go.wait()  # every task has its context before any raises
        raise LoadError(message)

    running = [asyncio.ensure_future(body(lambda i=i: task(i))) for i in range(count)]
    await asyncio.wait_for(ready.wait(), JOIN_TIMEOUT)
    go.set()
    return await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), JOIN_TIMEOUT)


def _with_asyncio_integration(
    make_vendors: Callable[..., Vendors], ld: Any, prefix: str
) -> tuple[Vendors, list[Any]]:
    async def main() -> tuple[Vendors, list[Any]]:
        # What sentry-sdk documents for asyncio apps: init inside the running loop with
        # AsyncioIntegration. Its task factory runs every task in a fork of the isolation
        # scope and reports what a task raises. sentry-sdk patches the loop in setup_once,
        # once per process: an app has one loop, but pytest runs many, so a later test
        # patches its own loop the same way.
        vendors = make_vendors(integrations=(AsyncioIntegration(),))
        if asyncio.get_running_loop().get_task_factory() is None:
            patch_asyncio()
        assert asyncio.get_running_loop().get_task_factory() is not None

        async def body(make: Callable[[], Any]) -> Any:
            return await make()  # the task itself raises; the integration reports it

        return vendors, await gather_tasks(ld, prefix, TASKS, body)

    return asyncio.run(main())


async def in_own_isolation_scope(make: Callable[[], Any]) -> Any:
    """Run one task in its own isolation scope and report what it raises.

    Without AsyncioIntegration every task of a loop shares one isolation scope (the context
    is per request/task by design): give each its own, as sentry-sdk's web integrations do
    per request.
    """
    with sentry_sdk.isolation_scope():
        try:
            return await make()
        except LoadError as exc:
            sentry_sdk.capture_exception(exc)
            return exc


def _with_isolation_scopes(
    make_vendors: Callable[..., Vendors], ld: Any, prefix: str
) -> tuple[Vendors, list[Any]]:
    vendors = make_vendors()

    return vendors, asyncio.run(gather_tasks(ld, prefix, TASKS, in_own_isolation_scope))


@pytest.mark.parametrize(
    "setup",
    [_with_asyncio_integration, _with_isolation_scopes],
    ids=["asyncio-integration", "isolation-scope"],
)
def test_1000_asyncio_tasks_raising_at_once_each_carry_their_own_context_everywhere(
    ld: Any,
    make_vendors: Callable[..., Vendors],
    receivers: Receivers,
    setup: Callable[..., tuple[Vendors, list[Any]]],
) -> None:
    vendors, results = setup(make_vendors, ld, "task")
    assert len(results) == TASKS
    unexpected = [r for r in results if not isinstance(r, LoadError)]
    assert not unexpected, unexpected[:3]

    assert_every_one_arrived_with_its_own(receivers, vendors, "task", TASKS)


def test_over_the_default_limits_every_error_still_reaches_sentry_and_the_rest_is_counted(
    ld: Any, make_vendors: Callable[..., Vendors], receivers: Receivers
) -> None:
    # sentry-flags' defaults (10 forwarded errors a second, bursts of 100; Segment 200 a second): 1,000
    # errors in about a second are more than that. Sentry still gets every one; each
    # forwarder sends what the limits allow, on the right identity, and counts the rest.
    vendors = make_vendors(unbounded=False)

    asyncio.run(gather_tasks(ld, "over", TASKS, in_own_isolation_scope))

    sentry_sdk.flush(timeout=JOIN_TIMEOUT)
    stats = {name: f.stats for name, f in vendors.forwarders.items()}
    for name, s in stats.items():
        assert s.failed == s.dropped == 0, (name, s)
        assert s.forwarded + s.rate_limited + s.skipped_total == TASKS, (name, s)
        assert s.forwarded < TASKS, (name, s)  # the limits did apply
    messages = {identity("over", i)[0] for i in range(TASKS)}
    found = arrived(receivers, {"sentry": TASKS, **{name: s.forwarded for name, s in stats.items()}})
    assert_each_carries_its_own(found, messages, complete=False)
    for name in VENDORS:
        assert len(found[name]) == stats[name].forwarded, name
