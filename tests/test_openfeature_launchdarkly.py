"""OpenFeature with LaunchDarkly's own provider (launchdarkly-openfeature-server) on a real
LDClient with TestData flags: ``FlagsIntegration(launchdarkly_client=provider.client)``, our
OpenFeature hook, both, and our conversion against the provider's own.

launchdarkly-openfeature-server needs Python 3.10+: on 3.9 these tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any, Callable

import pytest

pytest.importorskip("ld_openfeature")

from ld_openfeature import LaunchDarklyProvider
from ld_openfeature.impl.context_converter import EvaluationContextConverter
from ldclient.config import Config
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext

from conftest import LD_SDK_KEY
from helpers import capture_error, ld_context_of, ld_openfeature_provider, ld_test_settings, only_event
from receivers import LaunchDarklyReceiver, SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags._openfeature import to_ld_context
from sentry_flags.openfeature import SentryFlagsHook

DOMAIN = "sentry-flags-ld-provider"
EVALUATIONS = "flagEvaluations"

# A user in an org, with a private attribute and a personal one (name).
CONTEXT = EvaluationContext(
    None,
    {
        "kind": "multi",
        "user": {"targetingKey": "u-1", "name": "Jane", "plan": "pro", "privateAttributes": ["plan"]},
        "org": {"key": "acme", "seats": 12},
    },
)
EXPECTED_CONTEXT = {
    "kind": "multi",
    "user": {"key": "u-1", "_meta": {"redactedAttributes": ["name", "plan"]}},
    "org": {"key": "acme", "seats": 12},
}


@pytest.fixture(autouse=True)
def _openfeature_state(openfeature_state: None) -> None:
    """OpenFeature's process-wide state, and the isolation scope, each test's own (conftest)."""


@pytest.fixture
def provider(ld_receiver: LaunchDarklyReceiver, ld_test_data: Any) -> Iterator[LaunchDarklyProvider]:
    td = ld_test_data
    td.update(td.flag("new-checkout").boolean_flag().variation_for_all(True))
    td.update(td.flag("theme").variations("light", "dark").variation_for_all(1))
    config = Config(LD_SDK_KEY, **ld_test_settings(ld_receiver, update_processor_class=td))
    found = ld_openfeature_provider(config)
    api.set_provider(found, DOMAIN)
    yield found
    api.clear_providers()  # shuts the provider down, closing its LDClient while ld_receiver is up


@pytest.fixture
def client(provider: LaunchDarklyProvider) -> OpenFeatureClient:
    return api.get_client(DOMAIN)


def ld_entry(flag: str, value: Any, variation: Any, reason: str) -> dict[str, Any]:
    found: dict[str, Any] = {"flag": flag, "value": value}
    if variation is not None:
        found["variation"] = variation
    return {**found, "reason": reason, "source": "launchdarkly"}


def of_entry(flag: str, value: Any, reason: str, variant: Any = None) -> dict[str, Any]:
    found: dict[str, Any] = {"flag": flag, "value": value}
    if variant is not None:
        found["variant"] = variant  # LaunchDarkly's provider: the variation index, as text
    return {**found, "reason": reason, "source": "openfeature"}


def evaluate(client: OpenFeatureClient) -> None:
    assert client.get_boolean_value("new-checkout", False, CONTEXT) is True
    assert client.get_string_value("theme", "", CONTEXT) == "dark"
    assert client.get_boolean_value("no-such-flag", False, CONTEXT) is False


def test_flags_integration_on_the_providers_client_gives_the_real_ld_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, provider: LaunchDarklyProvider,
    client: OpenFeatureClient,
) -> None:  # fmt: skip
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=provider.client)])
    evaluate(client)
    capture_error("boom")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == EXPECTED_CONTEXT
    assert event["contexts"][EVALUATIONS]["values"] == [
        ld_entry("new-checkout", True, 0, "FALLTHROUGH"),
        ld_entry("theme", "dark", 1, "FALLTHROUGH"),
        ld_entry("no-such-flag", False, None, "FLAG_NOT_FOUND"),
    ]
    assert event["contexts"]["flags"]["values"] == [
        {"flag": "new-checkout", "result": True},
        {"flag": "no-such-flag", "result": False},
    ]


@pytest.mark.parametrize("where", ["client", "api"])
def test_with_both_hooks_on_one_path_each_evaluation_is_recorded_once(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, provider: LaunchDarklyProvider,
    client: OpenFeatureClient, where: str,
) -> None:  # fmt: skip
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=provider.client)])
    hook = SentryFlagsHook()
    if where == "api":
        api.add_hooks([hook])
    else:
        client.add_hooks([hook])
    evaluate(client)
    # LaunchDarkly served a string, OpenFeature was asked for an int: the app got the default,
    # which only our OpenFeature hook sees.
    assert client.get_integer_value("theme", 7, CONTEXT) == 7
    capture_error("boom")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == EXPECTED_CONTEXT
    assert event["contexts"][EVALUATIONS]["values"] == [
        ld_entry("new-checkout", True, 0, "FALLTHROUGH"),
        ld_entry("no-such-flag", False, None, "FLAG_NOT_FOUND"),
        ld_entry("theme", "dark", 1, "FALLTHROUGH"),
        of_entry("theme", 7, "TYPE_MISMATCH"),
    ]
    names = [v["flag"] for v in event["contexts"]["flags"]["values"]]
    assert names == ["new-checkout", "no-such-flag"]
    assert hook.skipped_contexts == {}


def test_our_hook_alone_records_the_context_launchdarkly_evaluated(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    client.add_hooks([SentryFlagsHook()])
    evaluate(client)
    capture_error("boom")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == EXPECTED_CONTEXT
    assert event["contexts"][EVALUATIONS]["values"] == [
        of_entry("new-checkout", True, "FALLTHROUGH", "0"),
        of_entry("theme", "dark", "FALLTHROUGH", "1"),
        of_entry("no-such-flag", False, "FLAG_NOT_FOUND"),
    ]


@pytest.mark.parametrize(
    ("targeting_key", "attributes"),
    [
        ("u-1", {}),
        (None, {"key": "u-2"}),
        ("u-3", {"key": "other"}),
        ("", {"key": "u-4"}),
        (None, {}),
        ("o-1", {"kind": "org", "name": "Acme", "anonymous": True}),
        ("u-5", {"kind": 5, "name": 7, "anonymous": "yes"}),
        ("u-6", {"kind": "us er"}),
        ("u-7", {"privateAttributes": ["plan", 3, "/address/street"], "plan": "pro", "address": {"st": 1}}),
        ("u-8", {"privateAttributes": "plan", "plan": "pro"}),
        ("u-9", {"when": datetime(2024, 5, 1, 12, 0), "at": [datetime(2024, 5, 1, tzinfo=timezone.utc)]}),
        ("u-10", {"nested": {"a": {"b": [1, 2.5, None, True]}}, "empty": {}}),
        (None, {"kind": "multi", "user": {"targetingKey": "u-11"}, "org": {"key": "o-11", "tier": 2}}),
        (None, {"kind": "multi", "user": {"key": "u-12", "targetingKey": ""}, "device": "not-an-object"}),
        (None, {"kind": "multi", "user": {"targetingKey": 3, "key": "u-13"}, "org": {"key": "o-13"}}),
        (None, {"kind": "multi"}),
        (None, {"kind": "multi", "user": {"targetingKey": "u-14", "privateAttributes": ["x"], "x": 1}}),
    ],
)
def test_our_conversion_gives_what_launchdarklys_provider_evaluates(
    targeting_key: Any, attributes: dict[str, Any]
) -> None:
    theirs = EvaluationContextConverter().to_ld_context(EvaluationContext(targeting_key, attributes))
    ours = to_ld_context(targeting_key, attributes)
    if isinstance(theirs.get("when"), datetime):
        pytest.skip(
            f"launchdarkly-openfeature-server {version('launchdarkly-openfeature-server')} passes "
            "datetime attributes through unconverted (later releases give RFC 3339 strings, as we do)"
        )

    assert ours.valid == theirs.valid, (ours.error, theirs.error)
    if theirs.valid:
        assert ours == theirs
        assert ours.to_dict() == theirs.to_dict()
