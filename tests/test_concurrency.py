"""The LaunchDarkly context never leaks between threads, pool tasks or isolation scopes."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

pytest.importorskip("ldclient")

import sentry_sdk
from ldclient import Context
from sentry_sdk.integrations import threading as sentry_threading

from helpers import by_summary, ld_context_of, raise_and_capture, received, run_threads
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration, get_launchdarkly_context, set_launchdarkly_context

FLAG = "concurrency-flag"
THREADS = 50
JOIN_TIMEOUT = 20


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


@pytest.fixture
def ld(ld_client: Any, ld_test_data: Any) -> Any:
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    return ld_client


def assert_each_event_has_its_own_key(events: list[dict[str, Any]], prefix: str) -> None:
    for name, event in by_summary(events).items():
        i = name.rsplit("-", 1)[-1]
        ctx = ld_context_of(event)
        assert ctx is not None, name
        assert ctx["key"] == f"{prefix}-{i}", (name, ctx)
        assert event["tags"]["worker"] == i


def test_threads_evaluating_flags_keep_their_own_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    set_launchdarkly_context(Context.create("main-thread"))
    barrier = threading.Barrier(THREADS, timeout=JOIN_TIMEOUT)

    def work(i: int) -> None:
        sentry_sdk.set_tag("worker", str(i))
        assert ld.variation(FLAG, Context.builder(f"eval-{i}").set("n", i).build(), False) is True
        barrier.wait()  # every thread has evaluated before any captures
        raise_and_capture(f"error in worker-{i}")

    run_threads(work, THREADS)

    events = received(sentry_receiver, THREADS)
    assert len(events) == THREADS
    assert_each_event_has_its_own_key(events, "eval")
    assert get_launchdarkly_context().key == "main-thread"  # nothing leaked back


@pytest.mark.parametrize("default_integrations", [True, False], ids=["threading-integration", "bare"])
def test_threads_setting_contexts_by_hand_keep_their_own(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, default_integrations: bool
) -> None:
    # With sentry-sdk's ThreadingIntegration each thread forks its parent's isolation scope;
    # without it each thread starts with a fresh one. Either way nothing is shared.
    sentry_init(integrations=[FlagsIntegration()], default_integrations=default_integrations)
    barrier = threading.Barrier(THREADS, timeout=JOIN_TIMEOUT)

    def work(i: int) -> None:
        sentry_sdk.set_tag("worker", str(i))
        if i % 2:
            set_launchdarkly_context(Context.create(f"hand-{i}"))
        else:
            set_launchdarkly_context(lambda: Context.create(f"hand-{i}"))
        barrier.wait()
        raise_and_capture(f"error in worker-{i}")

    run_threads(work, THREADS)

    events = received(sentry_receiver, THREADS)
    assert len(events) == THREADS
    assert_each_event_has_its_own_key(events, "hand")
    assert get_launchdarkly_context() is None


def test_a_thread_starts_from_its_parents_context_and_does_not_change_it(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    set_launchdarkly_context(Context.create("parent"))

    def child(i: int) -> None:
        raise_and_capture("child before setting")
        set_launchdarkly_context(Context.create("child"))
        raise_and_capture("child after setting")

    run_threads(child, count=1)
    raise_and_capture("parent after the child")

    keys = {name: ld_context_of(e)["key"] for name, e in by_summary(received(sentry_receiver, 3)).items()}
    assert keys == {
        "child before setting": "parent",
        "child after setting": "child",
        "parent after the child": "parent",
    }


@pytest.mark.skipif(
    not hasattr(sentry_threading, "_wrap_threadpool_executor_submit"),
    reason="this sentry-sdk does not give ThreadPoolExecutor tasks their own scope "
    "(newer releases patch submit); tasks on a reused worker thread share its scope",
)
def test_pool_tasks_on_reused_workers_do_not_see_each_others_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    set_launchdarkly_context(Context.create("submitter"))
    tasks = 40

    def task(i: int) -> None:
        sentry_sdk.set_tag("worker", str(i))
        if i % 2 == 0:
            ld.variation(FLAG, Context.create(f"task-{i}"), False)
        raise_and_capture(f"error in task-{i}")

    with ThreadPoolExecutor(max_workers=4) as pool:  # 40 tasks on 4 reused threads
        futures = [pool.submit(task, i) for i in range(tasks)]
        for future in futures:
            future.result(timeout=JOIN_TIMEOUT)

    events = by_summary(received(sentry_receiver, tasks))
    assert len(events) == tasks
    for i in range(tasks):
        expected = f"task-{i}" if i % 2 == 0 else "submitter"
        assert ld_context_of(events[f"error in task-{i}"])["key"] == expected, i


def test_isolation_scope_forks_and_does_not_leak_out(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    ld.variation(FLAG, Context.create("outer"), False)

    with sentry_sdk.isolation_scope():
        raise_and_capture("inner, inherited")
        ld.variation(FLAG, Context.create("inner"), False)
        raise_and_capture("inner, evaluated")
        with sentry_sdk.isolation_scope():
            set_launchdarkly_context(None)
            raise_and_capture("innermost, cleared")
        raise_and_capture("inner again")
    raise_and_capture("outer again")

    events = by_summary(received(sentry_receiver, 5))
    keys = {name: (ld_context_of(e) or {}).get("key") for name, e in events.items()}
    assert keys == {
        "inner, inherited": "outer",
        "inner, evaluated": "inner",
        "innermost, cleared": None,
        "inner again": "inner",
        "outer again": "outer",
    }


def test_new_scope_does_not_isolate_but_isolation_scope_does(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # The context belongs to the request/task (isolation scope), not to a local scope.
    sentry_init(integrations=[FlagsIntegration()])
    with sentry_sdk.new_scope():
        set_launchdarkly_context(Context.create("set-in-new-scope"))
    raise_and_capture("after new_scope")

    assert ld_context_of(received(sentry_receiver, 1)[0])["key"] == "set-in-new-scope"


def test_asyncio_tasks_with_their_own_isolation_scope(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    tasks = 20

    async def handler(i: int, started: asyncio.Event, go: asyncio.Event, counter: list[int]) -> None:
        with sentry_sdk.isolation_scope():
            sentry_sdk.set_tag("worker", str(i))
            set_launchdarkly_context(Context.create(f"task-{i}"))
            counter.append(i)
            if len(counter) == tasks:
                started.set()
            await go.wait()  # all tasks interleave here before capturing
            raise_and_capture(f"error in task-{i}")

    async def main() -> None:
        started, go, counter = asyncio.Event(), asyncio.Event(), []
        running = [asyncio.create_task(handler(i, started, go, counter)) for i in range(tasks)]
        await asyncio.wait_for(started.wait(), JOIN_TIMEOUT)
        go.set()
        await asyncio.wait_for(asyncio.gather(*running), JOIN_TIMEOUT)

    asyncio.run(main())

    events = received(sentry_receiver, tasks)
    assert len(events) == tasks
    assert_each_event_has_its_own_key(events, "task")
