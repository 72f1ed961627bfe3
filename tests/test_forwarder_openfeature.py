"""OpenFeatureForwarder: each captured error through OpenFeature's tracking API.

A real OpenFeature client on a provider that keeps what it is asked to track (an
``InMemoryProvider`` subclass), and end to end through LaunchDarkly's own provider on a real
LDClient, whose custom events reach the loopback LaunchDarkly receiver.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("openfeature.track")  # tracking: openfeature-sdk 0.9+
pytest.importorskip("ldclient")

from ldclient import Context
from ldclient.config import Config
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from openfeature.track import TrackingEventDetails

from conftest import LD_SDK_KEY
from helpers import (
    PERSONAL_ATTRIBUTES,
    capture_error,
    flush,
    init_forwarding,
    ld_openfeature_provider,
    ld_test_settings,
)
from receivers import LaunchDarklyReceiver, SentryReceiver
from sentry_flags import set_launchdarkly_context
from sentry_flags.forwarders import OpenFeatureForwarder
from sentry_flags.openfeature import SentryFlagsHook
from sentry_flags.testing import capture_forwarded

DOMAIN = "sentry-flags-forwarder"
FLAGS = {"new-checkout": InMemoryFlag("on", {"on": True, "off": False})}


class TrackingProvider(InMemoryProvider):
    """An InMemoryProvider that keeps every tracking call (its own keeps the last per name)."""

    def __init__(self) -> None:
        super().__init__(FLAGS)
        self.tracked: list[tuple[str, EvaluationContext, Optional[TrackingEventDetails]]] = []

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: Optional[EvaluationContext] = None,
        tracking_event_details: Optional[TrackingEventDetails] = None,
    ) -> None:
        assert evaluation_context is not None
        self.tracked.append((tracking_event_name, evaluation_context, tracking_event_details))


@pytest.fixture(autouse=True)
def _openfeature_state(openfeature_state: None) -> None:
    """OpenFeature's process-wide state, and the isolation scope, each test's own (conftest)."""


@pytest.fixture
def provider() -> TrackingProvider:
    found = TrackingProvider()
    api.set_provider(found, DOMAIN)
    return found


@pytest.fixture
def client(provider: TrackingProvider) -> OpenFeatureClient:
    found = api.get_client(DOMAIN)
    found.add_hooks([SentryFlagsHook()])
    return found


def tracked_one(provider: TrackingProvider) -> tuple[str, EvaluationContext, TrackingEventDetails]:
    flush()
    [(name, context, details)] = provider.tracked
    assert details is not None
    return name, context, details


def test_each_error_is_tracked_on_the_evaluated_context(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    forwarder = OpenFeatureForwarder(client)
    init_forwarding(sentry_init, forwarder, release="shop@1.2.3")
    client.get_boolean_value("new-checkout", False, EvaluationContext("u-1", {"plan": "pro", "seats": 3}))
    event_id = capture_error("card declined", RuntimeError)

    name, context, details = tracked_one(provider)
    assert name == "sentry-errors"
    assert context.targeting_key == "u-1"
    assert context.attributes == {"kind": "user", "plan": "pro", "seats": 3}
    assert details.value is None
    assert details.attributes == {
        "eventId": event_id,
        "exceptionType": "RuntimeError",
        "exceptionValue": "card declined",
        "culprit": "helpers in raise_and_capture",  # where the error was raised
        "release": "shop@1.2.3",
        "environment": "production",
        "level": "error",
    }
    assert forwarder.stats.forwarded == 1


def test_only_what_the_sentry_event_carried_reaches_the_provider(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    init_forwarding(sentry_init, OpenFeatureForwarder(client))  # send_default_pii off
    client.get_boolean_value("new-checkout", False, EvaluationContext("u-1", PERSONAL_ATTRIBUTES))
    capture_error("boom")

    _, tracked, _ = tracked_one(provider)
    # Neither the private nor the personal attributes, nor the list of what was left out.
    assert tracked.targeting_key == "u-1"
    assert tracked.attributes == {"kind": "user", "address": {"city": "Berlin"}}


def test_the_apps_before_send_scrubbing_applies_too(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["contexts"]["launchdarklyContext"]["plan"] = "[Filtered]"
        return event

    init_forwarding(sentry_init, OpenFeatureForwarder(client), before_send=before_send)
    client.get_boolean_value("new-checkout", False, EvaluationContext("u-1", {"plan": "pro"}))
    capture_error("boom")

    assert tracked_one(provider)[1].attributes == {"kind": "user", "plan": "[Filtered]"}


def test_a_multi_kind_context_is_tracked_as_launchdarklys_rules_encode_it(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    init_forwarding(sentry_init, OpenFeatureForwarder(client))
    context = EvaluationContext(
        None, {"kind": "multi", "user": {"key": "u-1", "anonymous": True}, "org": {"key": "acme", "seats": 3}}
    )
    client.get_boolean_value("new-checkout", False, context)
    capture_error("boom")

    _, tracked, _ = tracked_one(provider)
    assert tracked.targeting_key == "u-1"  # the user's key, for providers without kinds
    assert tracked.attributes == {
        "kind": "multi",
        "user": {"targetingKey": "u-1", "anonymous": True},
        "org": {"targetingKey": "acme", "seats": 3},
    }


def test_a_context_from_launchdarkly_or_set_by_hand_is_tracked_too(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    init_forwarding(sentry_init, OpenFeatureForwarder(client))
    set_launchdarkly_context(Context.builder("org-9").kind("org").set("tier", 2).build())
    capture_error("boom")

    _, tracked, _ = tracked_one(provider)
    assert (tracked.targeting_key, tracked.attributes) == ("org-9", {"kind": "org", "tier": 2})


def test_errors_without_a_context_are_skipped_and_counted(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    forwarder = OpenFeatureForwarder(client)
    init_forwarding(sentry_init, forwarder)
    client.get_boolean_value("new-checkout", False)  # no key: no context
    capture_error("boom")
    flush()

    assert provider.tracked == []
    assert forwarder.stats.skipped == {"no_context": 1}


def test_only_the_forwarders_environments(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    forwarder = OpenFeatureForwarder(client, event_name="errors", environments={"staging"})
    init_forwarding(sentry_init, forwarder)  # environment production
    client.get_boolean_value("new-checkout", False, EvaluationContext("u-1"))
    capture_error("boom")
    flush()

    assert provider.tracked == []
    assert forwarder.stats.skipped == {"environment": 1}


def test_a_failing_provider_counts_as_failed_and_never_reaches_the_app(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the provider's backend is down")

    monkeypatch.setattr(provider, "track", refuse)
    forwarder = OpenFeatureForwarder(client)
    init_forwarding(sentry_init, forwarder)
    client.get_boolean_value("new-checkout", False, EvaluationContext("u-1"))
    capture_error("boom")
    flush()

    assert (forwarder.stats.forwarded, forwarder.stats.failed) == (0, 1)


def test_capture_forwarded_records_the_track_call(
    sentry_init: Callable[..., Any], provider: TrackingProvider, client: OpenFeatureClient
) -> None:
    init_forwarding(sentry_init, OpenFeatureForwarder(client, event_name="checkout-errors"))
    client.get_boolean_value("new-checkout", False, EvaluationContext("u-1"))
    with capture_forwarded() as calls:
        capture_error("boom")

    [call] = calls
    assert (call.vendor, call.method) == ("openfeature", "track")
    assert call.kwargs["tracking_event_name"] == "checkout-errors"
    assert call.kwargs["evaluation_context"].targeting_key == "u-1"
    assert call.kwargs["tracking_event_details"].attributes["exceptionValue"] == "boom"
    assert provider.tracked == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"client": None}, TypeError, "client must be an OpenFeature client"),
        ({"client": object()}, TypeError, "with a track() method"),
        ({"event_name": ""}, ValueError, "event_name must be a non-empty"),
        ({"event_name": 5}, TypeError, "event_name must be a str"),
        ({"environments": "production"}, TypeError, "environments must be None or a set"),
    ],
)
def test_wrong_options_fail_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    options = {"client": api.get_client(), **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        OpenFeatureForwarder(**options)


# -- end to end through LaunchDarkly's provider ----------------------------------------------


def test_through_launchdarklys_provider_each_error_is_a_custom_event_on_the_context(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld_receiver: LaunchDarklyReceiver,
    ld_test_data: Any,
) -> None:
    ld_openfeature = pytest.importorskip("ld_openfeature")
    if "track" not in vars(ld_openfeature.LaunchDarklyProvider):
        pytest.skip(
            f"launchdarkly-openfeature-server {version('launchdarkly-openfeature-server')} has no "
            "OpenFeature tracking (its provider inherits the no-op track)"
        )
    ld_test_data.update(ld_test_data.flag("new-checkout").boolean_flag().variation_for_all(True))
    config = Config(LD_SDK_KEY, **ld_test_settings(ld_receiver, update_processor_class=ld_test_data))
    ld_provider = ld_openfeature_provider(config)
    api.set_provider(ld_provider, DOMAIN)
    try:
        client = api.get_client(DOMAIN)
        forwarder = OpenFeatureForwarder(client)
        init_forwarding(sentry_init, forwarder, launchdarkly_client=ld_provider.client)
        context = EvaluationContext(
            None,
            {"kind": "multi", "user": {"key": "u-1", "email": "jane@example.com"}, "org": {"key": "acme"}},
        )
        assert client.get_boolean_value("new-checkout", False, context) is True
        event_id = capture_error("card declined", RuntimeError)
        flush()

        [custom] = ld_receiver.wait_for_events(1, kind="custom")
    finally:
        api.clear_providers()  # closes the LDClient while ld_receiver is still up
    assert custom["key"] == "sentry-errors"
    assert custom["context"] == {"kind": "multi", "user": {"key": "u-1"}, "org": {"key": "acme"}}
    assert custom["data"]["eventId"] == event_id
    assert custom["data"]["exceptionType"] == "RuntimeError"
    assert "jane" not in str(custom)
    assert forwarder.stats.forwarded == 1
    assert sentry_receiver.events[0]["event_id"] == event_id
