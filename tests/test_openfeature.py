"""OpenFeature evaluations on Sentry errors, through ``sentry_flags.openfeature.SentryFlagsHook``.

Real openfeature-sdk clients on its ``InMemoryProvider`` (and, in test_openfeature_launchdarkly.py,
LaunchDarkly's own provider); real sentry-sdk sending to the loopback Sentry receiver.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

pytest.importorskip("openfeature")
pytest.importorskip("ldclient")

import sentry_sdk
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ParseError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from helpers import (
    PERSONAL_ATTRIBUTES,
    SPANS_CARRY_FLAGS,
    by_summary,
    capture_error,
    ld_context_of,
    only_event,
    pii_options,
    raise_and_capture,
    received,
    run_threads,
    start_child_span,
    start_transaction,
    wait_for_transactions,
)
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration, get_launchdarkly_context, set_launchdarkly_context
from sentry_flags.openfeature import SentryFlagsHook

DOMAIN = "sentry-flags-tests"
EVALUATIONS = "flagEvaluations"


def by_key(flag: InMemoryFlag[Any], context: EvaluationContext) -> FlagResolutionDetails[Any]:
    """``on`` for even user numbers (``u-2``), ``off`` for odd ones: each user sees their own."""
    variant = "on" if int((context.targeting_key or "u-1").rsplit("-", 1)[-1]) % 2 == 0 else "off"
    return FlagResolutionDetails(flag.variants[variant], variant=variant, reason=Reason.TARGETING_MATCH)


def broken(flag: InMemoryFlag[Any], context: EvaluationContext) -> FlagResolutionDetails[Any]:
    # An OpenFeatureError: any other exception OpenFeature also logs, which sentry-sdk's
    # logging integration would capture as a second error event.
    raise ParseError("the flag's rules do not parse")


FLAGS: dict[str, InMemoryFlag[Any]] = {
    "bool-flag": InMemoryFlag("on", {"on": True, "off": False}),
    "off-flag": InMemoryFlag("off", {"on": True, "off": False}),
    "string-flag": InMemoryFlag("blue", {"blue": "#00f", "red": "#f00"}),
    "int-flag": InMemoryFlag("ten", {"ten": 10, "one": 1}),
    "float-flag": InMemoryFlag("half", {"half": 0.5}),
    "object-flag": InMemoryFlag("cfg", {"cfg": {"limit": 3, "tags": ["a", "b"]}}),
    "per-user": InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=by_key),
    "broken-flag": InMemoryFlag("on", {"on": True}, context_evaluator=broken),
}


def of_entry(flag: str, value: Any, reason: str, variant: Any = None) -> dict[str, Any]:
    found: dict[str, Any] = {"flag": flag, "value": value}
    if variant is not None:
        found["variant"] = variant
    return {**found, "reason": reason, "source": "openfeature"}


@pytest.fixture(autouse=True)
def _openfeature_state(openfeature_state: None) -> None:
    """OpenFeature's process-wide state, and the isolation scope, each test's own (conftest)."""


@pytest.fixture
def hook() -> SentryFlagsHook:
    return SentryFlagsHook()


@pytest.fixture
def client(hook: SentryFlagsHook) -> OpenFeatureClient:
    """An OpenFeature client of our test domain, on an InMemoryProvider, with our hook."""
    api.set_provider(InMemoryProvider(FLAGS), DOMAIN)
    found = api.get_client(DOMAIN)
    found.add_hooks([hook])
    return found


# -- flags ---------------------------------------------------------------------------------


def test_every_flag_type_rides_on_the_error_with_its_variant_and_reason(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    context = EvaluationContext("u-1", {"plan": "pro"})
    assert client.get_boolean_value("bool-flag", False, context) is True
    assert client.get_boolean_value("off-flag", True, context) is False
    assert client.get_string_value("string-flag", "", context) == "#00f"
    assert client.get_integer_value("int-flag", 0, context) == 10
    assert client.get_float_value("float-flag", 0.0, context) == 0.5
    assert client.get_object_value("object-flag", {}, context) == {"limit": 3, "tags": ["a", "b"]}
    capture_error("boom")

    contexts = only_event(sentry_receiver)["contexts"]
    assert contexts[EVALUATIONS] == {
        "values": [
            of_entry("bool-flag", True, "STATIC", "on"),
            of_entry("off-flag", False, "STATIC", "off"),
            of_entry("string-flag", "#00f", "STATIC", "blue"),
            of_entry("int-flag", 10, "STATIC", "ten"),
            of_entry("float-flag", 0.5, "STATIC", "half"),
            of_entry("object-flag", {"limit": 3, "tags": ["a", "b"]}, "STATIC", "cfg"),
        ]
    }
    # Sentry's own context: booleans only.
    assert contexts["flags"] == {
        "values": [{"flag": "bool-flag", "result": True}, {"flag": "off-flag", "result": False}]
    }


def test_failed_evaluations_are_recorded_with_the_default_and_the_error_code(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    context = EvaluationContext("u-1")
    assert client.get_boolean_value("no-such-flag", True, context) is True
    assert client.get_integer_value("string-flag", 7, context) == 7  # a string flag asked as int
    assert client.get_boolean_value("broken-flag", False, context) is False  # the provider failed
    capture_error("boom")

    contexts = only_event(sentry_receiver)["contexts"]
    assert contexts[EVALUATIONS]["values"] == [
        of_entry("no-such-flag", True, "FLAG_NOT_FOUND"),
        of_entry("string-flag", 7, "TYPE_MISMATCH"),
        of_entry("broken-flag", False, "PARSE_ERROR"),
    ]
    # The app was served the defaults; booleans say so in Sentry's own context too.
    assert contexts["flags"]["values"] == [
        {"flag": "no-such-flag", "result": True},
        {"flag": "broken-flag", "result": False},
    ]


def test_the_latest_evaluation_of_a_flag_wins(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    client.get_boolean_value("per-user", False, EvaluationContext("u-2"))
    client.get_string_value("string-flag", "", EvaluationContext("u-2"))
    client.get_boolean_value("per-user", False, EvaluationContext("u-3"))
    capture_error("boom")

    event = only_event(sentry_receiver)
    assert event["contexts"][EVALUATIONS]["values"] == [
        of_entry("string-flag", "#00f", "STATIC", "blue"),
        of_entry("per-user", False, "TARGETING_MATCH", "off"),
    ]
    assert event["contexts"]["flags"]["values"] == [{"flag": "per-user", "result": False}]
    assert ld_context_of(event)["key"] == "u-3"


def test_a_hook_registered_globally_records_every_client(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    api.set_provider(InMemoryProvider(FLAGS))  # the default provider, for every client
    api.add_hooks([SentryFlagsHook()])
    api.get_client().get_boolean_value("bool-flag", False, EvaluationContext("u-1"))
    api.get_client("another-domain").get_string_value("string-flag", "", EvaluationContext("u-1"))
    capture_error("boom")

    assert [v["flag"] for v in only_event(sentry_receiver)["contexts"][EVALUATIONS]["values"]] == [
        "bool-flag",
        "string-flag",
    ]


def test_api_and_client_contexts_are_merged_as_openfeature_evaluates(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    api.set_evaluation_context(EvaluationContext(None, {"region": "eu"}))
    try:
        client.get_boolean_value("bool-flag", False, EvaluationContext("u-1", {"plan": "pro"}))
    finally:
        api.set_evaluation_context(EvaluationContext())
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "key": "u-1", "kind": "user", "region": "eu", "plan": "pro"
    }  # fmt: skip


# -- the evaluation context as launchdarklyContext -----------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param(EvaluationContext("u-1"), {"key": "u-1", "kind": "user"}, id="targeting-key"),
        pytest.param(
            EvaluationContext(None, {"key": "u-2", "plan": "pro"}),
            {"key": "u-2", "kind": "user", "plan": "pro"},
            id="key-attribute",
        ),
        pytest.param(
            EvaluationContext("u-3", {"key": "ignored"}),
            {"key": "u-3", "kind": "user"},
            id="targeting-key-wins",
        ),
        pytest.param(
            EvaluationContext("org-1", {"kind": "org", "name": "Acme", "seats": 12}),
            {"key": "org-1", "kind": "org", "seats": 12, "_meta": {"redactedAttributes": ["name"]}},
            id="kind",
        ),
        pytest.param(
            EvaluationContext("u-4", {"kind": 7, "anonymous": True}),
            {"key": "u-4", "kind": "user", "anonymous": True},
            id="non-string-kind-is-user",
        ),
        pytest.param(
            EvaluationContext("u-5", {"anonymous": "yes", "name": 5, "plan": None}),
            {"key": "u-5", "kind": "user"},
            id="built-ins-of-the-wrong-type-are-ignored",
        ),
        pytest.param(
            EvaluationContext(
                "u-6",
                {
                    "seen": datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
                    "naive": datetime(2024, 5, 1, 12, 30),
                    "nested": {"at": [datetime(2024, 1, 2, tzinfo=timezone.utc)]},
                },
            ),
            {
                "key": "u-6", "kind": "user", "seen": "2024-05-01T10:30:00Z",
                "naive": "2024-05-01T12:30:00Z", "nested": {"at": ["2024-01-02T00:00:00Z"]},
            },
            id="datetimes-as-iso-8601-utc",
        ),
        pytest.param(
            EvaluationContext(
                "ignored-for-multi",
                {
                    "kind": "multi",
                    "user": {"targetingKey": "u-7", "name": "Jo", "anonymous": True, "plan": "pro"},
                    "org": {"key": "org-7", "seats": 3},
                    "not-an-object": "left out",
                },
            ),
            {
                "kind": "multi",
                "user": {
                    "key": "u-7", "anonymous": True, "plan": "pro", "_meta": {"redactedAttributes": ["name"]}
                },
                "org": {"key": "org-7", "seats": 3},
            },
            id="multi-kind",
        ),
    ],
)  # fmt: skip
def test_the_context_is_converted_by_launchdarklys_openfeature_rules(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    context: EvaluationContext,
    expected: dict[str, Any],
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    client.get_boolean_value("bool-flag", False, context)
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == expected


def test_an_evaluation_without_any_key_leaves_the_requests_context(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    hook: SentryFlagsHook,
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    client.get_boolean_value("bool-flag", False, EvaluationContext("u-1"))
    client.get_boolean_value("off-flag", False)  # a global flag, no context at all
    client.get_boolean_value("off-flag", False, EvaluationContext("", {"plan": "pro"}))
    capture_error("boom")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) == {"key": "u-1", "kind": "user"}
    assert [v["flag"] for v in event["contexts"][EVALUATIONS]["values"]] == ["bool-flag", "off-flag"]
    assert hook.skipped_contexts == {"no_key": 2}


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(EvaluationContext("u-1", {"kind": "us er"}), id="bad-kind-characters"),
        pytest.param(EvaluationContext("u-1", {"kind": "kind"}), id="kind-named-kind"),
        pytest.param(EvaluationContext(None, {"kind": "multi"}), id="multi-without-contexts"),
        pytest.param(
            EvaluationContext(None, {"kind": "multi", "user": {"name": "x"}}), id="multi-part-without-key"
        ),
        pytest.param(
            EvaluationContext(None, {"kind": "multi", "user": {"targetingKey": 5, "key": "u-1"}}),
            id="multi-part-non-string-targeting-key",
        ),
    ],
)
def test_a_context_that_makes_no_valid_ld_context_is_not_attached(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    hook: SentryFlagsHook,
    context: EvaluationContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    client.get_boolean_value("bool-flag", False, context)
    with caplog.at_level("DEBUG", logger="sentry_flags"):
        capture_error("boom")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) is None
    assert event["contexts"][EVALUATIONS]["values"] == [of_entry("bool-flag", True, "STATIC", "on")]
    assert hook.skipped_contexts == {"invalid_context": 1}
    assert any("invalid LaunchDarkly context" in r.getMessage() for r in caplog.records)


def test_without_the_launchdarkly_sdk_flags_are_recorded_and_no_context(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sentry_flags.openfeature as hook_module

    monkeypatch.setattr(hook_module, "find_spec", lambda name: None)  # as if ldclient were absent
    hook = SentryFlagsHook()
    api.set_provider(InMemoryProvider(FLAGS), DOMAIN)
    client = api.get_client(DOMAIN)
    client.add_hooks([hook])
    sentry_init(integrations=[FlagsIntegration()])
    client.get_boolean_value("bool-flag", False, EvaluationContext("u-1"))
    capture_error("boom")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) is None
    assert event["contexts"][EVALUATIONS]["values"] == [of_entry("bool-flag", True, "STATIC", "on")]
    assert hook.skipped_contexts == {"no_ldclient": 1}


def test_the_context_is_converted_only_when_an_error_is_captured(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sentry_flags.openfeature as hook_module

    calls: list[Any] = []
    convert = hook_module.to_ld_context
    monkeypatch.setattr(hook_module, "to_ld_context", lambda *a: calls.append(a) or convert(*a))
    sentry_init(integrations=[FlagsIntegration()])
    context = EvaluationContext("u-1", {"plan": "pro"})
    for _ in range(5):
        client.get_boolean_value("bool-flag", False, context)
        client.get_string_value("string-flag", "", context)
    assert calls == []
    capture_error("boom")

    assert len(calls) == 1
    assert ld_context_of(only_event(sentry_receiver)) == {"key": "u-1", "kind": "user", "plan": "pro"}


def test_the_error_carries_the_context_as_evaluated_not_as_changed_since(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    address = {"city": "Berlin"}
    tags = ["beta"]
    context = EvaluationContext("u-1", {"address": address, "tags": tags})
    client.get_boolean_value("bool-flag", False, context)
    address["city"] = "Paris"  # the app changes its own objects after the evaluation
    tags.append("vip")
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "key": "u-1", "kind": "user", "address": {"city": "Berlin"}, "tags": ["beta"]
    }  # fmt: skip


def test_latest_source_wins_between_openfeature_and_contexts_set_by_hand(
    sentry_init: Callable[..., Any], client: OpenFeatureClient
) -> None:
    from ldclient import Context

    sentry_init(integrations=[FlagsIntegration()])
    client.get_boolean_value("bool-flag", False, EvaluationContext("from-openfeature"))
    assert get_launchdarkly_context().key == "from-openfeature"
    set_launchdarkly_context(Context.create("by-hand"))
    assert get_launchdarkly_context().key == "by-hand"
    client.get_boolean_value("bool-flag", False, EvaluationContext("from-openfeature"))
    assert get_launchdarkly_context().key == "from-openfeature"


# -- privacy -------------------------------------------------------------------------------

PERSONAL = EvaluationContext("u-1", PERSONAL_ATTRIBUTES)


def test_private_and_personal_attributes_are_redacted(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])  # send_default_pii off
    client.get_boolean_value("bool-flag", False, PERSONAL)
    capture_error("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx == {
        "key": "u-1",
        "kind": "user",
        "address": {"city": "Berlin"},
        "_meta": {"redactedAttributes": ["name", "email", "plan", "/address/street"]},
    }
    assert "jane" not in str(ctx).lower()


def test_personal_attributes_are_sent_with_send_default_pii_and_private_ones_never(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    client.get_boolean_value("bool-flag", False, PERSONAL)
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "key": "u-1",
        "kind": "user",
        "name": "Jane Doe",
        "email": "jane@example.com",
        "address": {"city": "Berlin"},
        "_meta": {"redactedAttributes": ["plan", "/address/street"]},
    }


def test_private_attributes_of_one_kind_of_a_multi_kind_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    context = EvaluationContext(
        None,
        {
            "kind": "multi",
            "org": {"targetingKey": "org-1", "secret": "s", "privateAttributes": ["secret"]},
            "user": {"key": "u-1", "secret": "not private here"},
        },
    )
    client.get_boolean_value("bool-flag", False, context)
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "kind": "multi",
        "org": {"key": "org-1", "_meta": {"redactedAttributes": ["secret"]}},
        "user": {"key": "u-1", "secret": "not private here"},
    }


def test_the_ld_clients_private_attributes_apply_to_openfeature_contexts(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
) -> None:
    ld = make_ld_client(update_processor_class=ld_test_data, private_attributes=["plan"])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(True))
    client.get_boolean_value("bool-flag", False, EvaluationContext("u-1", {"plan": "pro", "seats": 2}))
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "key": "u-1", "kind": "user", "seats": 2, "_meta": {"redactedAttributes": ["plan"]}
    }  # fmt: skip


def test_a_plugin_clients_private_attributes_apply_to_openfeature_contexts(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
) -> None:
    # Hooked through its plugin, not launchdarkly_client=: the OpenFeature context (no
    # LaunchDarkly evaluation saw it here) still loses that client's private attributes.
    from sentry_flags.launchdarkly import SentryFlagsPlugin

    make_ld_client(
        update_processor_class=ld_test_data, plugins=[SentryFlagsPlugin()], private_attributes=["plan"]
    )
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    client.get_boolean_value("bool-flag", False, EvaluationContext("u-1", {"plan": "pro", "seats": 2}))
    capture_error("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "key": "u-1", "kind": "user", "seats": 2, "_meta": {"redactedAttributes": ["plan"]}
    }  # fmt: skip


# -- isolation -----------------------------------------------------------------------------


def test_threads_each_see_only_their_own_flags_and_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    n = 20
    barrier = threading.Barrier(n, timeout=20)

    def work(i: int) -> None:
        with sentry_sdk.isolation_scope():
            sentry_sdk.set_tag("worker", str(i))
            context = EvaluationContext(f"u-{i}", {"n": i})
            client.get_boolean_value("per-user", False, context)
            if i % 3 == 0:
                client.get_integer_value("int-flag", 0, context)
            barrier.wait()  # every thread has evaluated before any captures
            raise_and_capture(f"error in worker-{i}")

    run_threads(work, n)

    events = by_summary(received(sentry_receiver, n))
    assert len(events) == n
    for i in range(n):
        event = events[f"error in worker-{i}"]
        assert event["tags"]["worker"] == str(i)
        assert ld_context_of(event) == {"key": f"u-{i}", "kind": "user", "n": i}
        variant = "on" if i % 2 == 0 else "off"
        expected = [of_entry("per-user", i % 2 == 0, "TARGETING_MATCH", variant)]
        if i % 3 == 0:
            expected.append(of_entry("int-flag", 10, "STATIC", "ten"))
        assert event["contexts"][EVALUATIONS]["values"] == expected
        assert event["contexts"]["flags"]["values"] == [{"flag": "per-user", "result": i % 2 == 0}]


def test_asyncio_tasks_each_see_only_their_own_flags_and_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    n = 20

    async def task(i: int) -> None:
        with sentry_sdk.isolation_scope():
            sentry_sdk.set_tag("worker", str(i))
            await client.get_boolean_value_async("per-user", False, EvaluationContext(f"u-{i}"))
            await asyncio.sleep(0.001)  # the other tasks evaluate in between
            if i % 2:
                await client.get_string_value_async("string-flag", "", EvaluationContext(f"u-{i}"))
            await asyncio.sleep(0.001)
            raise_and_capture(f"error in task-{i}")

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(n)))

    asyncio.run(main())

    events = by_summary(received(sentry_receiver, n))
    for i in range(n):
        event = events[f"error in task-{i}"]
        assert ld_context_of(event) == {"key": f"u-{i}", "kind": "user"}
        flags = [v["flag"] for v in event["contexts"][EVALUATIONS]["values"]]
        assert flags == (["per-user", "string-flag"] if i % 2 else ["per-user"])
        assert event["contexts"]["flags"]["values"] == [{"flag": "per-user", "result": i % 2 == 0}]


def test_nothing_leaks_out_of_an_isolation_scope(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    with sentry_sdk.isolation_scope():
        client.get_boolean_value("bool-flag", False, EvaluationContext("inner"))
    capture_error("outside")

    event = only_event(sentry_receiver)
    assert ld_context_of(event) is None
    assert EVALUATIONS not in event["contexts"]
    assert "flags" not in event["contexts"]


# -- next to sentry-sdk --------------------------------------------------------------------


def test_next_to_sentry_sdks_openfeature_integration_no_flag_appears_twice(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    from sentry_sdk.integrations.openfeature import OpenFeatureHook, OpenFeatureIntegration

    sentry_init(integrations=[OpenFeatureIntegration(), FlagsIntegration()])
    if not any(isinstance(h, OpenFeatureHook) for h in api.get_hooks()):
        # setup_once, which registers sentry-sdk's hook globally, runs once per process; an
        # earlier test's clean-up may have taken it off again.
        api.add_hooks([OpenFeatureHook()])
    context = EvaluationContext("u-1")
    client.get_boolean_value("bool-flag", False, context)
    client.get_boolean_value("off-flag", True, context)
    client.get_boolean_value("no-such-flag", True, context)  # sentry-sdk's error hook: default
    client.get_string_value("string-flag", "", context)
    client.get_boolean_value("bool-flag", False, context)
    capture_error("boom")

    contexts = only_event(sentry_receiver)["contexts"]
    names = [v["flag"] for v in contexts["flags"]["values"]]
    assert sorted(names) == ["bool-flag", "no-such-flag", "off-flag"]  # each once
    assert {v["flag"]: v["result"] for v in contexts["flags"]["values"]} == {
        "bool-flag": True, "off-flag": False, "no-such-flag": True
    }  # fmt: skip
    assert [v["flag"] for v in contexts[EVALUATIONS]["values"]] == [
        "off-flag", "no-such-flag", "string-flag", "bool-flag"
    ]  # fmt: skip


def test_an_earlier_launchdarkly_evaluation_of_the_same_flag_does_not_hide_ours(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    client: OpenFeatureClient,
    ld_client: Any,
    ld_test_data: Any,
) -> None:
    # SentryFlagsHook steps aside only for an evaluation the LaunchDarkly hook recorded while
    # the provider ran it; here LaunchDarkly evaluated the same flag name before, directly.
    from ldclient import Context

    ld_test_data.update(ld_test_data.flag("bool-flag").boolean_flag().variation_for_all(False))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    assert ld_client.variation("bool-flag", Context.create("u-1"), True) is False
    assert client.get_boolean_value("bool-flag", False, EvaluationContext("u-1")) is True
    capture_error("boom")

    contexts = only_event(sentry_receiver)["contexts"]
    assert [(v["source"], v["value"]) for v in contexts[EVALUATIONS]["values"]] == [
        ("launchdarkly", False),
        ("openfeature", True),
    ]
    assert contexts["flags"]["values"] == [{"flag": "bool-flag", "result": True}]  # the latest


def _transaction_with_flags(sentry_receiver: SentryReceiver, client: OpenFeatureClient) -> dict[str, Any]:
    with sentry_sdk.isolation_scope(), start_transaction("checkout"):
        context = EvaluationContext("u-1", {"email": "jane@example.com"})
        with start_child_span("checkout.flags"):
            client.get_boolean_value("bool-flag", False, context)
            client.get_string_value("string-flag", "", context)
    [transaction] = wait_for_transactions(sentry_receiver)
    sentry_receiver.clear()
    return transaction


def span_flags(transaction: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in span.get("data", {}).items() if k.startswith("flag.")}
        for span in transaction.get("spans", [])
    ]


def test_transactions_carry_no_flag_data_but_what_sentry_sdk_itself_puts_there(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, client: OpenFeatureClient
) -> None:
    from sentry_sdk.integrations.openfeature import OpenFeatureHook

    sentry_init(integrations=[FlagsIntegration()], traces_sample_rate=1.0)
    ours = _transaction_with_flags(sentry_receiver, client)
    client.hooks = [OpenFeatureHook()]  # sentry-sdk's own hook alone, for comparison
    theirs = _transaction_with_flags(sentry_receiver, client)

    for key in (EVALUATIONS, "launchdarklyContext"):
        assert key not in ours["contexts"]
    assert ours["contexts"].get("flags") == theirs["contexts"].get("flags")
    # What sentry-sdk's add_feature_flag does: booleans on the current span (sentry-sdk
    # releases with Span.set_flag; the oldest supported one has none).
    assert span_flags(ours) == span_flags(theirs)
    if SPANS_CARRY_FLAGS:
        assert span_flags(ours) == [{"flag.evaluation.bool-flag": True}]
    assert "jane" not in str(ours)
