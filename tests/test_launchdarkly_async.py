"""LaunchDarkly's experimental AsyncLDClient: capture (hook and async plugin) and forwarding.

Real AsyncLDClient (LD SDK 9.20+ with its ``async`` extra, aiohttp) fed by TestDataV2's async
data source, its events posted to the loopback LaunchDarkly receiver; real sentry-sdk sending
to the loopback Sentry receiver. Each scenario runs in ``asyncio.run`` (see ``run``), the
app's code and the client on that loop, our delivery worker on its own thread. The loops run
in debug mode, where asyncio refuses loop-bound calls from other threads: a ``track`` made
from the worker thread instead of being handed to the loop wedges the SDK's event processor,
and the test fails.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any, Callable, Optional, TypeVar

import pytest

pytest.importorskip("ldclient.async_client")  # LD SDK 9.20+, and aiohttp (its async extra)

import sentry_sdk
from ldclient import Context
from ldclient.async_client import AsyncLDClient
from ldclient.async_config import AsyncConfig, AsyncDataSystemConfig
from ldclient.integrations.test_datav2 import TestDataV2

from helpers import (
    by_summary,
    capture_error,
    handle,
    init_forwarding,
    ld_context_of,
    ld_test_settings,
    only_event,
    pii_options,
    raw_bodies,
    received,
)
from receivers import LaunchDarklyReceiver, SentryReceiver, assert_never, wait_for
from sentry_flags import ErrorView, FlagsIntegration, set_launchdarkly_context
from sentry_flags.forwarders import LaunchDarklyForwarder
from sentry_flags.launchdarkly import SentryFlagsAsyncPlugin
from sentry_flags.testing import flush_forwarders

pytestmark = pytest.mark.usefixtures("own_isolation_scope")

T = TypeVar("T")
MakeConfig = Callable[..., AsyncConfig]

SDK_KEY = "sdk-async-test-key"
SHARED = "checkout-v2"  # a boolean flag every task evaluates, served per user
USERS = ("alice", "bob", "carol")
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


# -- set-up -----------------------------------------------------------------------------------


@pytest.fixture
def test_data() -> TestDataV2:
    td = TestDataV2.data_source()
    shared = td.flag(SHARED).boolean_flag().variation_for_all(False).variation_for_user("alice", True)
    td.update(shared)
    for user in USERS:
        td.update(td.flag(f"theme-{user}").value_for_all(f"{user}-theme"))
    return td


@pytest.fixture
def make_config(ld_receiver: LaunchDarklyReceiver, test_data: TestDataV2) -> MakeConfig:
    """``make_config(**overrides)`` -> AsyncConfig: flags from ``test_data``, events to
    ``ld_receiver`` (the only host it talks to) every 0.1 s."""

    def make(**overrides: Any) -> AsyncConfig:
        # TestData (v1) cannot feed the async client; TestDataV2 has an async data source.
        builder = test_data.async_builder
        datasystem = AsyncDataSystemConfig(initializers=[builder], synchronizers=[builder])
        settings = ld_test_settings(ld_receiver, datasystem_config=datasystem, **overrides)
        return AsyncConfig(SDK_KEY, **settings)

    return make


def run(scenario: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """``asyncio.run(scenario)`` in debug mode, on a thread of its own carrying this test's
    context (its Sentry isolation scope); fails instead of hanging if the loop wedges, which
    is what a ``track`` from another thread can do to the SDK's event processor."""
    outcome: list[tuple[bool, Any]] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append((True, context.run(asyncio.run, scenario, debug=True)))
        except BaseException as exc:  # re-raised on the test's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="async-ld-test-loop", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"the event loop did not finish within {timeout}s (wedged?)")
    [(ok, value)] = outcome
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def idle(client: AsyncLDClient) -> None:
    """Let the client's event processor drain its queue and wait on it again: the state in
    which a call from another thread breaks it (see the first test)."""
    await client.flush()  # type: ignore[no-untyped-call]
    await asyncio.sleep(0.05)


def async_hooks(client: AsyncLDClient) -> list[Any]:
    hooks = client._AsyncLDClient__hooks  # type: ignore[attr-defined]  # private; read only
    return [h for h in hooks if h.metadata.name == "sentry-flags"]


def user(key: str, **attrs: Any) -> Context:
    builder = Context.builder(key).kind("user")
    for name, value in attrs.items():
        builder.set(name, value)
    return builder.build()


def flags_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Sentry's own ``flags`` context: boolean results only."""
    return list(((event.get("contexts") or {}).get("flags") or {}).get("values", []))


def evaluations_of(event: dict[str, Any]) -> dict[str, Any]:
    """``flagEvaluations``: every flag and the value it served."""
    values = ((event.get("contexts") or {}).get("flagEvaluations") or {}).get("values", [])
    return {v["flag"]: v["value"] for v in values}


def custom_events(receiver: LaunchDarklyReceiver) -> list[dict[str, Any]]:
    return [e for e in receiver.custom_events if e.get("key") == "sentry-errors"]


def wait_custom(receiver: LaunchDarklyReceiver, count: int = 1) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (found := custom_events(receiver)) and len(found) >= count and found,
        message=f"{count} sentry-errors event(s)",
    )


async def await_custom(receiver: LaunchDarklyReceiver, count: int = 1) -> list[dict[str, Any]]:
    # Waited for off the loop: the loop must keep running to post the events.
    return await asyncio.to_thread(wait_custom, receiver, count)


# -- the premise: AsyncLDClient.track belongs to its loop's thread ----------------------------


def test_async_track_ends_on_an_asyncio_queue_of_the_clients_loop(
    make_config: MakeConfig,
) -> None:
    # Why LaunchDarklyForwarder hands track() to the loop: AsyncLDClient.track is a plain
    # method, but the event processor it calls puts the event with asyncio.Queue.put_nowait,
    # which wakes the waiting dispatcher through loop.call_soon: only the loop's thread may do
    # that. Called from another thread on a debug loop it raises half-way, after the waiter
    # was marked done, and the dispatcher never wakes again (close() then hangs); on a normal
    # loop it races. If LaunchDarkly changes this, this test says so.
    async def scenario() -> Any:
        async with AsyncLDClient(make_config()) as client:
            return client._event_processor._inbox._queue

    assert isinstance(run(scenario()), asyncio.Queue)


# -- capture: FlagsIntegration(launchdarkly_client=async_client) ------------------------------


def test_integration_takes_an_async_client_and_hooks_it_once(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, make_config: MakeConfig
) -> None:
    async def scenario() -> None:
        client = AsyncLDClient(make_config())
        # Before start(): the hook must survive start() adding the plugins' hooks.
        for _ in range(3):
            sentry_init(integrations=[FlagsIntegration(launchdarkly_client=client)])
        async with client:
            assert len(async_hooks(client)) == 1
            assert await client.variation(SHARED, user("alice", plan="pro"), False) is True
            capture_error("after an async evaluation")

    run(scenario())

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == {"kind": "user", "key": "alice", "plan": "pro"}
    assert flags_of(event) == [{"flag": SHARED, "result": True}]
    assert evaluations_of(event) == {SHARED: True}


def test_concurrent_tasks_each_carry_only_their_own_context_and_flags(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, make_config: MakeConfig
) -> None:
    async def request(
        client: AsyncLDClient, key: str, everyone_evaluated: asyncio.Event, done: list[str]
    ) -> None:
        with sentry_sdk.isolation_scope():  # what an ASGI integration does per request
            context = user(key, plan=f"{key}-plan")
            await client.variation(SHARED, context, False)
            await asyncio.sleep(0)  # let the other tasks evaluate in between
            await client.variation(f"theme-{key}", context, "default")
            done.append(key)
            if len(done) == len(USERS):
                everyone_evaluated.set()
            # Every task has evaluated before any raises: one shared scope would show up
            # as the last evaluated context and all the flags on every error.
            await everyone_evaluated.wait()
            capture_error(f"failed for {key}")

    async def scenario() -> None:
        async with AsyncLDClient(make_config()) as client:
            # After start(): add_hook on a running client.
            sentry_init(integrations=[FlagsIntegration(launchdarkly_client=client)])
            everyone_evaluated = asyncio.Event()
            done: list[str] = []
            await asyncio.wait_for(
                asyncio.gather(*(request(client, key, everyone_evaluated, done) for key in USERS)), 10
            )

    run(scenario())

    events = by_summary(received(sentry_receiver, len(USERS)))
    assert len(events) == len(USERS)
    for key in USERS:
        event = events[f"failed for {key}"]
        assert ld_context_of(event) == {"kind": "user", "key": key, "plan": f"{key}-plan"}
        assert flags_of(event) == [{"flag": SHARED, "result": key == "alice"}]
        assert evaluations_of(event) == {SHARED: key == "alice", f"theme-{key}": f"{key}-theme"}


def test_integration_applies_the_async_configs_private_attributes(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, make_config: MakeConfig
) -> None:
    async def scenario() -> None:
        async with AsyncLDClient(make_config(all_attributes_private=True)) as client:
            sentry_init(integrations=[FlagsIntegration(launchdarkly_client=client)], **pii_options(True))
            await client.variation(SHARED, user("private-1", plan="secret-plan"), False)
            capture_error("boom")

    run(scenario())

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == {
        "kind": "user",
        "key": "private-1",
        "_meta": {"redactedAttributes": ["plan"]},
    }
    assert b"secret-plan" not in raw_bodies(sentry_receiver)


# -- capture: SentryFlagsAsyncPlugin -----------------------------------------------------------


def test_async_plugin_captures_with_the_clients_private_attributes(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, make_config: MakeConfig
) -> None:
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))

    async def scenario() -> None:
        config = make_config(plugins=[SentryFlagsAsyncPlugin()], private_attributes={"email"})
        async with AsyncLDClient(config) as client:
            assert len(async_hooks(client)) == 1
            context = user("plugin-user", email="plug@example.com", plan="pro")
            assert await client.variation(f"theme-{USERS[0]}", context, "default") == "alice-theme"
            capture_error("boom")

    run(scenario())

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == {
        "kind": "user",
        "key": "plugin-user",
        "plan": "pro",
        "_meta": {"redactedAttributes": ["email"]},
    }
    assert evaluations_of(event) == {"theme-alice": "alice-theme"}
    assert b"plug@example.com" not in raw_bodies(sentry_receiver)


def test_one_async_plugin_on_two_clients_redacts_each_clients_evaluations_its_own_way(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, make_config: MakeConfig
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    plugin = SentryFlagsAsyncPlugin()

    async def scenario() -> None:
        # Nested, not parenthesized: Python 3.9 has no parenthesized context managers.
        async with AsyncLDClient(make_config(plugins=[plugin], private_attributes={"ssn"})) as private:  # noqa: SIM117
            async with AsyncLDClient(make_config(plugins=[plugin])) as public:  # started second
                await private.variation(SHARED, user("on-private", ssn="078-05-1120"), False)
                capture_error("evaluated on the client that keeps ssn private")
                await public.variation(SHARED, user("on-public", ssn="219-09-9999"), False)
                capture_error("evaluated on the client that does not")

    run(scenario())

    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["evaluated on the client that keeps ssn private"]) == {
        "kind": "user", "key": "on-private", "_meta": {"redactedAttributes": ["ssn"]},
    }  # fmt: skip
    assert ld_context_of(events["evaluated on the client that does not"])["ssn"] == "219-09-9999"
    assert b"078-05-1120" not in raw_bodies(sentry_receiver)


def test_async_plugin_and_integration_on_the_same_client_share_one_hook(
    sentry_init: Callable[..., Any], make_config: MakeConfig
) -> None:
    async def scenario() -> int:
        client = AsyncLDClient(make_config(plugins=[SentryFlagsAsyncPlugin()], private_attributes={"email"}))
        # The plugin registers only in start(); the integration comes first, as it does
        # when Sentry is set up at import time and the client started in a lifespan handler.
        integration = FlagsIntegration(launchdarkly_client=client)
        sentry_init(integrations=[integration])
        assert integration.redaction.refs == (("email",),)
        async with client:
            return len(async_hooks(client))

    assert run(scenario()) == 1


# -- forwarding: LaunchDarklyForwarder(async_client, loop=...) ---------------------------------


def test_error_arrives_as_custom_event_through_the_clients_loop(
    sentry_init: Callable[..., Any], make_config: MakeConfig, ld_receiver: LaunchDarklyReceiver
) -> None:
    async def scenario() -> tuple[LaunchDarklyForwarder, str, list[dict[str, Any]]]:
        async with AsyncLDClient(make_config()) as client:
            forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
            init_forwarding(sentry_init, forwarder, launchdarkly_client=client, release="shop@1.2.3")
            await client.variation(SHARED, user("user-42", plan="pro"), False)
            await idle(client)

            event_id = capture_error("card declined", RuntimeError)
            sentry_sdk.flush()
            return forwarder, event_id, await await_custom(ld_receiver)

    forwarder, event_id, [event] = run(scenario())

    assert event["context"] == {"kind": "user", "key": "user-42", "plan": "pro"}
    assert event["data"]["eventId"] == event_id
    assert event["data"]["exceptionType"] == "RuntimeError"
    assert event["data"]["exceptionValue"] == "card declined"
    assert event["data"]["release"] == "shop@1.2.3"
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.failed == 0
    assert {r.path for r in ld_receiver.requests} == {"/bulk"}  # events only: no other call


def test_a_busy_loop_never_holds_up_the_delivery_worker(
    sentry_init: Callable[..., Any], make_config: MakeConfig, ld_receiver: LaunchDarklyReceiver
) -> None:
    async def scenario() -> tuple[bool, float, int, list[dict[str, Any]]]:
        async with AsyncLDClient(make_config()) as client:
            forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
            init_forwarding(sentry_init, forwarder, launchdarkly_client=client)
            await client.variation(SHARED, user("busy-1"), False)
            await idle(client)
            capture_error("while the loop is busy")
            # The loop is stuck in this very call: nothing scheduled on it can run until it
            # returns. A worker waiting for track() would time out here.
            started = time.monotonic()
            flushed = flush_forwarders(2.0)
            took = time.monotonic() - started
            assert not custom_events(ld_receiver)
            forwarded = forwarder.stats.forwarded
            return flushed, took, forwarded, await await_custom(ld_receiver)

    flushed, took, forwarded, [event] = run(scenario())

    assert flushed
    assert took < 1.0
    assert forwarded == 1
    assert event["context"]["key"] == "busy-1"


def test_flush_makes_the_async_client_send_now(
    sentry_init: Callable[..., Any], make_config: MakeConfig, ld_receiver: LaunchDarklyReceiver
) -> None:
    # With LD's own timer far away, only the flush we schedule on the loop gets it out in time.
    async def scenario() -> list[dict[str, Any]]:
        async with AsyncLDClient(make_config(flush_interval=60)) as client:
            init_forwarding(
                sentry_init, LaunchDarklyForwarder(client, loop=asyncio.get_running_loop()),
                launchdarkly_client=client,
            )  # fmt: skip
            await client.variation(SHARED, user("flush-1"), False)
            await idle(client)
            capture_error("boom")
            sentry_sdk.flush()
            return await await_custom(ld_receiver)

    [event] = run(scenario())
    assert event["context"]["key"] == "flush-1"


def test_the_documented_shutdown_delivers_the_last_error(
    sentry_init: Callable[..., Any], make_config: MakeConfig, ld_receiver: LaunchDarklyReceiver
) -> None:
    # docs/forwarders-launchdarkly.md's lifespan: sentry_sdk.flush(), then await ld.close().
    # The track handed to the loop runs before close() stops the event processor.
    async def scenario() -> None:
        client = AsyncLDClient(make_config(flush_interval=60))
        await client.start()
        init_forwarding(
            sentry_init, LaunchDarklyForwarder(client, loop=asyncio.get_running_loop()),
            launchdarkly_client=client,
        )  # fmt: skip
        await client.variation(SHARED, user("last-1"), False)
        capture_error("during shutdown")
        sentry_sdk.flush()
        await client.close()

    run(scenario())
    [event] = wait_custom(ld_receiver)
    assert event["data"]["exceptionValue"] == "during shutdown"


def test_track_failing_on_the_loop_is_counted_as_failed(
    sentry_init: Callable[..., Any], make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def track(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("event processor gone")

    async def scenario() -> LaunchDarklyForwarder:
        async with AsyncLDClient(make_config()) as client:
            forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
            init_forwarding(sentry_init, forwarder, launchdarkly_client=client)
            await client.variation(SHARED, user("fail-1"), False)
            monkeypatch.setattr(client, "track", track)
            capture_error("boom")
            assert flush_forwarders()
            await asyncio.sleep(0.05)  # the scheduled track runs
            return forwarder

    stats = run(scenario()).stats
    assert (stats.forwarded, stats.failed) == (0, 1)


def test_closed_loop_is_skipped_and_counted(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_config: MakeConfig,
    ld_receiver: LaunchDarklyReceiver,
) -> None:
    async def scenario() -> LaunchDarklyForwarder:
        async with AsyncLDClient(make_config()) as client:
            forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
            init_forwarding(sentry_init, forwarder, launchdarkly_client=client)
            return forwarder

    forwarder = run(scenario())  # asyncio.run closed the loop
    set_launchdarkly_context(user("after-close"))
    capture_error("after the loop closed")

    assert ld_context_of(only_event(sentry_receiver))["key"] == "after-close"  # Sentry still has it
    assert forwarder.stats.skipped == {"loop_closed": 1}
    assert forwarder.stats.forwarded == 0
    assert not custom_events(ld_receiver)


def test_stopped_loop_is_skipped_and_counted(
    sentry_init: Callable[..., Any], make_config: MakeConfig
) -> None:
    loop = asyncio.new_event_loop()
    client = AsyncLDClient(make_config())
    try:
        loop.run_until_complete(client.start())
        forwarder = LaunchDarklyForwarder(client, loop=loop)
        init_forwarding(sentry_init, forwarder, launchdarkly_client=client)
        set_launchdarkly_context(user("stopped-1"))
        # The loop is not running now: calls scheduled on it would only pile up.
        capture_error("between two runs of the loop")
        assert flush_forwarders()
        assert forwarder.stats.skipped == {"loop_stopped": 1}
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def test_client_not_started_or_closed_is_skipped_and_counted(
    sentry_init: Callable[..., Any], make_config: MakeConfig, ld_receiver: LaunchDarklyReceiver
) -> None:
    async def scenario() -> LaunchDarklyForwarder:
        client = AsyncLDClient(make_config())
        forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
        init_forwarding(sentry_init, forwarder, launchdarkly_client=client)
        set_launchdarkly_context(user("lifecycle-1"))
        capture_error("before start")  # the SDK would drop it without a word
        assert flush_forwarders()
        async with client:
            pass
        capture_error("after close")
        assert flush_forwarders()
        return forwarder

    forwarder = run(scenario())
    assert forwarder.stats.skipped == {"client_not_started": 1, "client_closed": 1}
    assert forwarder.stats.forwarded == 0
    assert_never(lambda: custom_events(ld_receiver), duration=0.3)


def test_without_its_lifecycle_flags_the_client_is_taken_as_running(
    sentry_init: Callable[..., Any],
    make_config: MakeConfig,
    ld_receiver: LaunchDarklyReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sentry_flags import _private
    from sentry_flags._ldclient import CLOSED, STARTED

    monkeypatch.setattr(_private, "_warned", set())  # another test's warning would hide ours

    async def scenario() -> LaunchDarklyForwarder:
        async with AsyncLDClient(make_config()) as client:
            forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
            init_forwarding(sentry_init, forwarder, launchdarkly_client=client)
            with monkeypatch.context() as mp:
                mp.delattr(client, "_started")  # a release that keeps its lifecycle elsewhere
                mp.delattr(client, "_closed")
                set_launchdarkly_context(user("lifecycle-2"))
                capture_error("while running")
                capture_error("still running")
                assert flush_forwarders()
                await idle(client)
            await asyncio.to_thread(wait_custom, ld_receiver, 2)
        return forwarder

    with caplog.at_level("WARNING", logger="sentry_flags"):
        forwarder = run(scenario())
    assert forwarder.stats.forwarded == 2
    assert forwarder.stats.skipped == {}
    assert forwarder.stats.stepped_aside[STARTED.path] >= 2
    assert forwarder.stats.stepped_aside[CLOSED.path] >= 2
    for name in (STARTED, CLOSED):
        assert len([r for r in caplog.records if name.path in r.getMessage()]) == 1, name
    assert {e["context"]["key"] for e in custom_events(ld_receiver)} == {"lifecycle-2"}


def test_a_forked_child_of_a_running_loop_stops_forwarding(make_config: MakeConfig) -> None:
    # What a forked child sees: the loop says it is running (its state was copied), but the
    # thread running it was not. after_fork() is what Delivery calls in the child.
    async def scenario() -> tuple[list[Any], Optional[str]]:
        async with AsyncLDClient(make_config()) as client:
            forwarder = LaunchDarklyForwarder(client, loop=asyncio.get_running_loop())
            forwarder.after_fork()
            view = ErrorView(event_id="e" * 32, timestamp=NOW, level="error", ld_context=user("child-1"))
            handle(forwarder, view, 0.0)
            return forwarder.stats.calls, next(iter(forwarder.stats.skipped), None)

    assert run(scenario()) == ({}, "client_stopped")  # no call made


def test_the_async_client_itself_is_never_closed_by_sentry(
    sentry_init: Callable[..., Any], make_config: MakeConfig, ld_receiver: LaunchDarklyReceiver
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with AsyncLDClient(make_config()) as client:
            init_forwarding(
                sentry_init, LaunchDarklyForwarder(client, loop=asyncio.get_running_loop()),
                launchdarkly_client=client,
            )  # fmt: skip
            sentry_sdk.get_client().close(timeout=2)
            assert not client._closed
            client.track("still-open", user("open-1"))
            await client.flush()
            return await asyncio.to_thread(
                wait_for, lambda: [e for e in ld_receiver.custom_events if e["key"] == "still-open"]
            )

    assert run(scenario())
