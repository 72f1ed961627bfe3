"""Split treatments reach Sentry errors through the impression listener.

A real Split factory fetches its flag definitions from the loopback Split receiver; a
Starlette app (with sentry-sdk's Starlette integration) evaluates them and fails.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import pytest

pytest.importorskip("splitio")
pytest.importorskip("starlette")

import sentry_sdk
from sentry_sdk.integrations.starlette import StarletteIntegration
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from helpers import scope_flags, split_whitelist_flag, started_split_factory
from receivers import SentryReceiver, SplitReceiver, wait_for
from sentry_flags import FlagsIntegration
from sentry_flags.split import (
    MAX_TREATMENTS,
    async_impression_listener,
    impression_listener,
    record_treatment,
)

USER_FLAG = "sentry_flags_user_flag"  # "on" for every key (the receiver's default)
ORG_FLAG = "sentry_flags_org_flag"  # "v2" for every key
CHECKOUT = "new_checkout"
EVALUATIONS = "flagEvaluations"


def split_entry(flag: str, treatment: str, label: Any = None) -> dict[str, Any]:
    found: dict[str, Any] = {"flag": flag, "value": treatment}
    if label is not None:
        found["reason"] = label
    return {**found, "source": "split"}


pytestmark = pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")  # splitio's own


def checkout_flag(off_for: list[str]) -> dict[str, Any]:
    """``on`` for every key but those in ``off_for``, which are whitelisted to ``off``."""
    return split_whitelist_flag(CHECKOUT, off_for)


@pytest.fixture
def listening_client(make_split_factory: Callable[..., Any]) -> Any:
    factory = started_split_factory(make_split_factory(impressionListener=impression_listener()))
    return factory.client()


def make_app(split_client: Any, *flags: str) -> Any:
    def evaluate_then_boom(request: Request) -> PlainTextResponse:
        # A sync view: Starlette runs it on a worker thread, as it would a real one.
        user = request.path_params["user"]
        for flag in flags:
            split_client.get_treatment(user, flag, {"email": f"{user}@example.com"})
        time.sleep(0.005)  # lets concurrent requests interleave
        raise RuntimeError(f"boom {user}")

    return Starlette(routes=[Route("/boom/{user}", evaluate_then_boom)])


def get(app: Any, *paths: str) -> None:
    httpx = pytest.importorskip("httpx")

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await asyncio.gather(*(http.get(path) for path in paths))

    asyncio.run(go())


def user_of(event: dict[str, Any]) -> str:
    value: str = event["exception"]["values"][-1]["value"]
    return value.rsplit(maxsplit=1)[-1]


def test_treatments_of_the_request_are_on_its_error(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, listening_client: Any
) -> None:
    sentry_init(integrations=[StarletteIntegration(), FlagsIntegration()])
    get(make_app(listening_client, USER_FLAG, ORG_FLAG), "/boom/u-1")
    (event,) = wait_for(lambda: sentry_receiver.events)
    contexts = event["contexts"]
    # Sentry's own flags context holds the boolean (on/off) treatments only.
    assert contexts["flags"]["values"] == [{"flag": USER_FLAG, "result": True}]
    assert contexts[EVALUATIONS] == {
        "values": [split_entry(USER_FLAG, "on", "default rule"), split_entry(ORG_FLAG, "v2", "default rule")]
    }
    # Neither the matching key nor the attributes are recorded.
    assert "u-1" not in str(contexts[EVALUATIONS]) + str(contexts["flags"])


def test_concurrent_requests_carry_their_own_treatments(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    split_receiver: SplitReceiver,
    make_split_factory: Callable[..., Any],
) -> None:
    n = 12
    off_for = [f"u-{i}" for i in range(0, n, 2)]
    split_receiver.set_splits(checkout_flag(off_for))
    factory = started_split_factory(make_split_factory(impressionListener=impression_listener()))
    sentry_init(integrations=[StarletteIntegration(), FlagsIntegration()])

    get(make_app(factory.client(), CHECKOUT), *(f"/boom/u-{i}" for i in range(n)))
    events = wait_for(lambda: len(sentry_receiver.events) >= n and sentry_receiver.events)
    assert len(events) == n
    for event in events:
        off = user_of(event) in off_for
        assert event["contexts"]["flags"]["values"] == [{"flag": CHECKOUT, "result": not off}]
        treatment, label = ("off", "whitelisted") if off else ("on", "default rule")
        expected = split_entry(CHECKOUT, treatment, label)
        assert event["contexts"][EVALUATIONS] == {"values": [expected]}


def test_the_listener_runs_on_the_evaluating_thread(listening_client: Any) -> None:
    # What the design rests on: splitio calls log_impression inside get_treatment, so the
    # treatment is on the scope of whoever evaluated, as soon as get_treatment returns.
    with sentry_sdk.isolation_scope() as scope:
        listening_client.get_treatment("u-9", USER_FLAG)
        assert scope_flags(scope) == [split_entry(USER_FLAG, "on", "default rule")]
    assert scope_flags(sentry_sdk.get_isolation_scope()) == []


def test_the_most_recent_treatment_per_feature_and_at_most_100_features() -> None:
    with sentry_sdk.isolation_scope() as scope:
        for i in range(MAX_TREATMENTS + 50):
            record_treatment(f"flag-{i}", "on")
        record_treatment("flag-60", "off", "killed")  # latest wins and becomes the newest
        treatments = scope_flags(scope)
        assert len(treatments) == MAX_TREATMENTS
        names = [t["flag"] for t in treatments]
        assert (names[0], names[-1]) == ("flag-50", "flag-60")
        assert treatments[-1] == split_entry("flag-60", "off", "killed")
        assert "flag-49" not in names


def test_a_forked_scope_does_not_change_its_parent() -> None:
    with sentry_sdk.isolation_scope() as parent:
        record_treatment("a", "on")
        with sentry_sdk.isolation_scope():
            record_treatment("b", "off")
        assert scope_flags(parent) == [split_entry("a", "on")]


def test_malformed_impressions_are_ignored() -> None:
    listener = impression_listener()
    with sentry_sdk.isolation_scope() as scope:
        listener.log_impression(None)
        listener.log_impression({"impression": object()})
        listener.log_impression({})
        assert scope_flags(scope) == []


def test_the_async_listener_through_splitio_s_async_wrapper() -> None:
    from splitio.client.listener import ImpressionListenerWrapperAsync
    from splitio.client.util import SdkMetadata
    from splitio.models.impressions import Impression

    wrapper = ImpressionListenerWrapperAsync(async_impression_listener(), SdkMetadata("python-10", "h", "ip"))
    impression = Impression("u-1", "async_flag", "off", "default rule", 1, None, 0, None)

    async def evaluate() -> Any:
        with sentry_sdk.isolation_scope() as scope:
            await wrapper.log_impression(impression, {"email": "x@example.com"})
            return scope_flags(scope), scope_flags(scope, sentry=True)

    treatments, flags = asyncio.run(evaluate())
    assert treatments == [split_entry("async_flag", "off", "default rule")]
    assert flags == [{"flag": "async_flag", "result": False}]
