"""LaunchDarkly's experimental AsyncLDClient: capture (hook and async plugin).

Real AsyncLDClient (LD SDK 9.20+ with its ``async`` extra, aiohttp) fed by TestDataV2's async
data source, its events posted to the loopback LaunchDarkly receiver; real sentry-sdk sending
to the loopback Sentry receiver. Each scenario runs in ``asyncio.run`` (see ``run``), in
debug mode, where asyncio refuses loop-bound calls from other threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar

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
    ld_context_of,
    ld_test_settings,
    only_event,
    raw_bodies,
    received,
)
from receivers import LaunchDarklyReceiver, SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags.launchdarkly import SentryFlagsAsyncPlugin

pytestmark = pytest.mark.usefixtures("own_isolation_scope")

T = TypeVar("T")
MakeConfig = Callable[..., AsyncConfig]

SDK_KEY = "sdk-async-test-key"
SHARED = "checkout-v2"  # a boolean flag every task evaluates, served per user
USERS = ("alice", "bob", "carol")


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
            sentry_init(integrations=[FlagsIntegration(launchdarkly_client=client)], send_default_pii=True)
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
    sentry_init(integrations=[FlagsIntegration()], send_default_pii=True)

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
