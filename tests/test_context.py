"""launchdarklyContext on Sentry error events: its sources, its JSON form, and privacy.

Real sentry-sdk sending to the loopback receiver, real LDClient evaluating TestData flags;
every assertion is on what arrived over the wire.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("ldclient")

import sentry_sdk
from ldclient import Context

from helpers import (
    LD_KEY,
    SENTRY_SDK_MAJOR,
    by_summary,
    ld_context_of,
    ld_hooks,
    needs_data_collection,
    needs_send_default_pii,
    only_event,
    pii_options,
    raise_and_capture,
    raw_bodies,
    received,
    start_transaction,
    wait_for_transactions,
)
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration, _context, get_launchdarkly_context, set_launchdarkly_context
from sentry_flags._context import ContextSlot
from sentry_flags.launchdarkly import SentryFlagsPlugin

FLAG = "checkout-v2"
PII = {
    "email": "alice@example.com",
    "ip": "203.0.113.77",
    "firstName": "Alicia",
    "lastName": "Liddell-Private",
    "avatar": "https://img.example.com/alice-avatar.png",
}
FULL_NAME = "Alice Liddell"


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    # The LD context lives on the isolation scope; keep each test's to itself.
    with sentry_sdk.isolation_scope():
        yield


@pytest.fixture
def flags(ld_test_data: Any) -> Any:
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    return ld_test_data


@pytest.fixture
def ld(ld_client: Any, flags: Any) -> Any:
    return ld_client


def user(key: str = "user-1", **attrs: Any) -> Context:
    builder = Context.builder(key).kind("user")
    for name, value in attrs.items():
        builder.set(name, value)
    return builder.build()


def person(key: str = "user-pii") -> Context:
    """A user with every LD attribute that carries personal data, plus harmless ones."""
    builder = Context.builder(key).kind("user").name(FULL_NAME).set("plan", "pro")
    for name, value in PII.items():
        builder.set(name, value)
    return builder.build()


# -- the JSON form, from a real flag evaluation ------------------------------------------------


def test_evaluated_single_kind_context_rides_on_exceptions_and_messages(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    context = user("user-42", plan="pro", seats=3, beta=True, address={"city": "Lyon"})
    assert ld.variation(FLAG, context, False) is True

    raise_and_capture("card declined")
    sentry_sdk.capture_message("checkout slow")

    events = by_summary(received(sentry_receiver, 2))
    expected = {
        "kind": "user",
        "key": "user-42",
        "plan": "pro",
        "seats": 3,
        "beta": True,
        "address": {"city": "Lyon"},
    }
    assert ld_context_of(events["card declined"]) == expected
    assert ld_context_of(events["checkout slow"]) == expected


def test_anonymous_context_says_so(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    ld.variation(FLAG, Context.builder("anon-7").anonymous(True).build(), False)

    raise_and_capture("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": "anon-7", "anonymous": True}


def test_multi_kind_context_is_keyed_by_kind(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    org = Context.builder("org-9").kind("org").set("tier", "gold").build()
    device = Context.builder("dev-3").kind("device").anonymous(True).build()
    ld.variation(FLAG, Context.create_multi(user("user-5", plan="free"), org, device), False)

    raise_and_capture("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {
        "kind": "multi",
        "user": {"key": "user-5", "plan": "free"},
        "org": {"key": "org-9", "tier": "gold"},
        "device": {"key": "dev-3", "anonymous": True},
    }


def test_no_context_known_means_no_launchdarkly_context_key(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])

    raise_and_capture("boom")

    assert LD_KEY not in only_event(sentry_receiver).get("contexts", {})


# -- sources: latest wins --------------------------------------------------------------------


def test_latest_source_wins_between_evaluations_and_manual_sets(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])

    ld.variation(FLAG, user("evaluated-1"), False)
    raise_and_capture("after first evaluation")
    set_launchdarkly_context(user("manual-2"))
    raise_and_capture("after manual set")
    ld.variation(FLAG, user("evaluated-3"), False)
    raise_and_capture("after second evaluation")
    set_launchdarkly_context(lambda: user("lazy-4"))
    raise_and_capture("after lazy set")
    set_launchdarkly_context(None)
    raise_and_capture("after clearing")

    events = by_summary(received(sentry_receiver, 5))
    keys = {name: (ld_context_of(e) or {}).get("key") for name, e in events.items()}
    assert keys == {
        "after first evaluation": "evaluated-1",
        "after manual set": "manual-2",
        "after second evaluation": "evaluated-3",
        "after lazy set": "lazy-4",
        "after clearing": None,
    }
    assert LD_KEY not in events["after clearing"].get("contexts", {})


def test_evaluation_failing_still_records_the_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])

    # An unknown flag evaluates to the default: the hook still saw the context.
    assert ld.variation("no-such-flag", user("user-unknown-flag"), "fallback") == "fallback"
    raise_and_capture("boom")

    assert ld_context_of(only_event(sentry_receiver))["key"] == "user-unknown-flag"


def test_lazy_provider_is_called_only_when_an_error_is_captured(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], traces_sample_rate=1.0)
    calls: list[int] = []

    def provider() -> Context:
        calls.append(1)
        return user(f"lazy-{len(calls)}", plan="team")

    set_launchdarkly_context(provider)
    with start_transaction("no-error-here"):
        sentry_sdk.add_breadcrumb(message="work without errors")
    assert wait_for_transactions(sentry_receiver)
    assert calls == []  # no error yet: never called, not even for the transaction

    raise_and_capture("first")
    assert len(calls) == 1
    raise_and_capture("second")
    assert len(calls) == 2  # called per error, so it sees the state at capture time

    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["first"]) == {"kind": "user", "key": "lazy-1", "plan": "team"}
    assert ld_context_of(events["second"])["key"] == "lazy-2"


def test_lazy_provider_returning_none_or_an_invalid_context_attaches_nothing(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])

    set_launchdarkly_context(lambda: None)
    raise_and_capture("provider gave none")
    set_launchdarkly_context(Context.create(""))  # an empty key makes an invalid Context
    raise_and_capture("invalid context")

    for event in received(sentry_receiver, 2):
        assert LD_KEY not in event.get("contexts", {})


def test_get_launchdarkly_context_returns_the_current_one(sentry_init: Callable[..., Any], ld: Any) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    assert get_launchdarkly_context() is None
    ld.variation(FLAG, user("user-get"), False)
    assert get_launchdarkly_context().key == "user-get"
    set_launchdarkly_context(lambda: user("lazy-get"))
    assert get_launchdarkly_context().key == "lazy-get"
    set_launchdarkly_context(None)
    assert get_launchdarkly_context() is None


def test_plugin_captures_contexts_of_a_client_built_after_sentry_init(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    ld = make_ld_client(update_processor_class=flags, plugins=[SentryFlagsPlugin()])

    assert ld.variation(FLAG, user("plugin-user", plan="pro"), False) is True
    raise_and_capture("boom")

    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": "plugin-user", "plan": "pro"}
    assert len(ld_hooks(ld)) == 1


def test_plugin_applies_the_clients_private_attributes(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    ld = make_ld_client(
        update_processor_class=flags, plugins=[SentryFlagsPlugin()], private_attributes=["email"]
    )
    ld.variation(FLAG, person("plugin-private"), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert "email" not in ctx
    assert ctx["_meta"] == {"redactedAttributes": ["email"]}
    assert ctx["firstName"] == PII["firstName"]  # PII allowed, only the private one is gone
    assert PII["email"].encode() not in raw_bodies(sentry_receiver)


def test_one_plugin_on_two_clients_redacts_each_clients_evaluations_its_own_way(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    plugin = SentryFlagsPlugin()
    private = make_ld_client(update_processor_class=flags, plugins=[plugin], private_attributes=["ssn"])
    # Given the same plugin after: its settings must not become the first client's.
    public = make_ld_client(update_processor_class=flags, plugins=[plugin])

    private.variation(FLAG, user("on-private", ssn="078-05-1120", plan="pro"), False)
    raise_and_capture("evaluated on the client that keeps ssn private")
    public.variation(FLAG, user("on-public", ssn="219-09-9999", plan="pro"), False)
    raise_and_capture("evaluated on the client that does not")

    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["evaluated on the client that keeps ssn private"]) == {
        "kind": "user", "key": "on-private", "plan": "pro", "_meta": {"redactedAttributes": ["ssn"]},
    }  # fmt: skip
    assert ld_context_of(events["evaluated on the client that does not"])["ssn"] == "219-09-9999"
    assert b"078-05-1120" not in raw_bodies(sentry_receiver)
    assert len(ld_hooks(private)) == len(ld_hooks(public)) == 1


def test_transactions_never_carry_the_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], traces_sample_rate=1.0)
    ld.variation(FLAG, user("tx-user"), False)

    with start_transaction("checkout"):
        raise_and_capture("inside the transaction")

    [transaction] = wait_for_transactions(sentry_receiver)
    assert transaction["transaction"] == "checkout"
    assert LD_KEY not in transaction.get("contexts", {})
    assert LD_KEY not in json.dumps(transaction)
    assert "tx-user" not in json.dumps(transaction)
    assert ld_context_of(only_event(sentry_receiver))["key"] == "tx-user"


def test_hook_is_installed_once_however_often_sentry_is_initialised(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    for _ in range(3):
        FlagsIntegration(launchdarkly_client=ld)
        sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])

    assert len(ld_hooks(ld)) == 1
    ld.variation(FLAG, user("once"), False)
    raise_and_capture("boom")
    assert ld_context_of(only_event(sentry_receiver))["key"] == "once"


def test_plugin_and_integration_on_the_same_client_share_one_hook(
    sentry_init: Callable[..., Any], make_ld_client: Callable[..., Any], flags: Any
) -> None:
    ld = make_ld_client(update_processor_class=flags, plugins=[SentryFlagsPlugin()])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])

    assert len(ld_hooks(ld)) == 1


def test_without_the_integration_the_stored_context_is_dropped(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # setup_once has run (global processor registered); the current client has no integration.
    sentry_init(integrations=[FlagsIntegration()])
    sentry_init(default_integrations=False)
    set_launchdarkly_context(person("no-integration"))

    raise_and_capture("boom")

    event = only_event(sentry_receiver)
    assert LD_KEY not in event.get("contexts", {})
    assert b"no-integration" not in raw_bodies(sentry_receiver)


def test_context_set_on_the_current_scope_is_still_our_slot(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    set_launchdarkly_context(user("isolation-level"))
    with sentry_sdk.new_scope():
        raise_and_capture("inside a new scope")

    assert ld_context_of(only_event(sentry_receiver))["key"] == "isolation-level"


# -- privacy ---------------------------------------------------------------------------------


def test_attributes_private_on_the_context_are_removed(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(True))
    context = (
        Context.builder("user-priv")
        .set("email", PII["email"])
        .set("plan", "pro")
        .set("address", {"street": "12 Secret Lane", "city": "Paris"})
        .private("email", "/address/street")
        .build()
    )
    ld.variation(FLAG, context, False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx == {
        "kind": "user",
        "key": "user-priv",
        "plan": "pro",
        "address": {"city": "Paris"},
        "_meta": {"redactedAttributes": ["email", "/address/street"]},
    }
    body = raw_bodies(sentry_receiver)
    assert PII["email"].encode() not in body
    assert b"12 Secret Lane" not in body


def test_private_attributes_of_the_ld_client_config_are_removed(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    ld = make_ld_client(update_processor_class=flags, private_attributes=["email", "/address/street"])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(True))
    context = user(
        "user-cfg",
        email=PII["email"],
        plan="pro",
        address={"street": "12 Secret Lane", "city": "Paris", "zip": "75001"},
    )
    ld.variation(FLAG, context, False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert "email" not in ctx
    assert ctx["plan"] == "pro"
    assert ctx["address"] == {"city": "Paris", "zip": "75001"}  # only the nested key went
    assert sorted(ctx["_meta"]["redactedAttributes"]) == ["/address/street", "email"]
    body = raw_bodies(sentry_receiver)
    assert PII["email"].encode() not in body
    assert b"12 Secret Lane" not in body


def test_client_private_attributes_apply_to_contexts_set_by_hand(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    ld = make_ld_client(update_processor_class=flags, private_attributes=["plan"])
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)])
    set_launchdarkly_context(user("by-hand", plan="secret-plan-x", seats=2))

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx == {"kind": "user", "key": "by-hand", "seats": 2, "_meta": {"redactedAttributes": ["plan"]}}
    assert b"secret-plan-x" not in raw_bodies(sentry_receiver)


def test_a_plugin_clients_private_attributes_apply_to_contexts_set_by_hand(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    # No launchdarkly_client=: the client is hooked through its plugin only. A context no
    # evaluation saw (set by hand, by the framework glue) belongs to no one client, so the
    # private attributes of every client sentry-flags hooked apply.
    sentry_init(integrations=[FlagsIntegration()], **pii_options(True))
    make_ld_client(update_processor_class=flags, plugins=[SentryFlagsPlugin()], private_attributes=["email"])
    make_ld_client(update_processor_class=flags, plugins=[SentryFlagsPlugin()], private_attributes=["plan"])
    set_launchdarkly_context(person("by-hand"))

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert sorted(ctx["_meta"]["redactedAttributes"]) == ["email", "plan"]
    assert not {"email", "plan"} & ctx.keys()
    assert ctx["firstName"] == PII["firstName"]  # PII allowed: only the private ones are gone
    assert PII["email"].encode() not in raw_bodies(sentry_receiver)


def test_the_redaction_of_every_client_is_made_once_per_client_hooked() -> None:
    # The stage keeps a context's redacted form while the context and the redaction stay
    # the same objects: the same redaction must come back until another client is hooked.
    from sentry_flags._context import NO_REDACTION, Redaction, any_client_redaction, remember_client_redaction

    class Client:  # any weak-referenceable object stands for a client here
        pass

    first, second = Client(), Client()
    assert any_client_redaction(NO_REDACTION) is NO_REDACTION  # no client hooked
    remember_client_redaction(first, Redaction.from_refs(False, ["email"]))
    combined = any_client_redaction(NO_REDACTION)
    assert combined == Redaction.from_refs(False, ["email"])
    assert any_client_redaction(NO_REDACTION) is combined
    remember_client_redaction(second, Redaction(all_private=True))
    assert any_client_redaction(NO_REDACTION) == Redaction(True, (("email",),))
    del first, second  # held weakly: alive until here


def test_all_attributes_private_keeps_only_kind_key_and_anonymous(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    flags: Any,
) -> None:
    ld = make_ld_client(update_processor_class=flags, all_attributes_private=True)
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(True))
    org = Context.builder("org-1").kind("org").set("tier", "gold-tier-secret").build()
    anon = Context.builder("anon-1").kind("user").anonymous(True).name(FULL_NAME).set("plan", "pro").build()
    ld.variation(FLAG, Context.create_multi(anon, org), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx["kind"] == "multi"
    assert ctx["user"]["key"] == "anon-1"
    assert ctx["user"]["anonymous"] is True
    assert sorted(ctx["user"]["_meta"]["redactedAttributes"]) == ["name", "plan"]
    assert set(ctx["user"]) == {"key", "anonymous", "_meta"}
    assert ctx["org"] == {"key": "org-1", "_meta": {"redactedAttributes": ["tier"]}}
    body = raw_bodies(sentry_receiver)
    assert b"gold-tier-secret" not in body
    assert FULL_NAME.encode() not in body


def test_pii_attributes_are_redacted_unless_send_default_pii(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(False))
    ld.variation(FLAG, person("pii-off"), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx["key"] == "pii-off"
    assert ctx["plan"] == "pro"
    assert sorted(ctx["_meta"]["redactedAttributes"]) == sorted(["name", *PII])
    for name in ["name", *PII]:
        assert name not in ctx
    body = raw_bodies(sentry_receiver)
    for value in [FULL_NAME, *PII.values()]:
        assert value.encode() not in body, value


def test_pii_attributes_are_sent_with_send_default_pii(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(True))
    ld.variation(FLAG, person("pii-on"), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx == {"kind": "user", "key": "pii-on", "name": FULL_NAME, "plan": "pro", **PII}


def test_private_attributes_stay_private_with_send_default_pii(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **pii_options(True))
    builder = Context.builder("pii-private").name(FULL_NAME)
    for name, value in PII.items():
        builder.set(name, value)
    ld.variation(FLAG, builder.private("ip", "name").build(), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert "ip" not in ctx
    assert "name" not in ctx
    assert ctx["email"] == PII["email"]
    assert sorted(ctx["_meta"]["redactedAttributes"]) == ["ip", "name"]
    body = raw_bodies(sentry_receiver)
    assert PII["ip"].encode() not in body
    assert FULL_NAME.encode() not in body


def test_with_sentry_sdks_own_defaults_pii_follows_its_major(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any
) -> None:
    # Nothing said about personal data: sentry-sdk 2.x collects none, 3.x collects user
    # info (data_collection's user_info defaults to True), and launchdarklyContext follows.
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], sentry_defaults=True)
    ld.variation(FLAG, person("pii-default"), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    if SENTRY_SDK_MAJOR >= 3:
        assert ctx == {"kind": "user", "key": "pii-default", "name": FULL_NAME, "plan": "pro", **PII}
    else:
        assert sorted(ctx["_meta"]["redactedAttributes"]) == sorted(["name", *PII])
        assert PII["email"].encode() not in raw_bodies(sentry_receiver)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "send_default_pii", [None, pytest.param(True, marks=needs_send_default_pii)]
)  # fmt: skip
@needs_data_collection
def test_data_collection_without_user_info_redacts_pii(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld: Any, send_default_pii: Any
) -> None:
    # data_collection wins over send_default_pii when both are given.
    options: dict[str, Any] = {"data_collection": {"user_info": False}}
    if send_default_pii is not None:
        options["send_default_pii"] = send_default_pii
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], **options)
    ld.variation(FLAG, person("dc-off"), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert sorted(ctx["_meta"]["redactedAttributes"]) == sorted(["name", *PII])
    assert ctx["plan"] == "pro"
    body = raw_bodies(sentry_receiver)
    for value in [FULL_NAME, *PII.values()]:
        assert value.encode() not in body, value


@needs_data_collection
@pytest.mark.parametrize("data_collection", [{"user_info": True}, {}])
def test_data_collection_with_user_info_sends_pii_unless_private(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld: Any,
    data_collection: dict[str, Any],
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld)], data_collection=data_collection)
    builder = Context.builder("dc-on").name(FULL_NAME).set("plan", "pro")
    for name, value in PII.items():
        builder.set(name, value)
    ld.variation(FLAG, builder.private("avatar").build(), False)

    raise_and_capture("boom")

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx["email"] == PII["email"]
    assert ctx["name"] == FULL_NAME
    assert "avatar" not in ctx
    assert ctx["_meta"] == {"redactedAttributes": ["avatar"]}
    assert PII["avatar"].encode() not in raw_bodies(sentry_receiver)


def test_raw_context_is_never_serialised_even_when_the_provider_fails(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    secret = person("provider-fails")

    def provider() -> Context:
        raise RuntimeError(f"cannot build context for {secret.key}-xyz")

    set_launchdarkly_context(provider)
    raise_and_capture("boom")

    event = only_event(sentry_receiver)
    assert json.dumps(event.get("contexts", {}).get(LD_KEY, {})) == "{}"
    body = raw_bodies(sentry_receiver)
    for value in [FULL_NAME, *PII.values(), "provider-fails-xyz"]:
        assert value.encode() not in body, value


def test_failing_provider_attaches_no_launchdarkly_context_key(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration()])

    def provider() -> Context:
        raise RuntimeError("session store down")

    set_launchdarkly_context(provider)
    raise_and_capture("boom")

    assert LD_KEY not in only_event(sentry_receiver).get("contexts", {})


# -- ambient units of work (the Flask extension's requests): whose a stored context is -------------


class Unit:
    def __init__(self, name: str) -> None:
        self.name = name


class UnreferencedUnit:
    """A unit of work that cannot be referred to weakly (no ``__weakref__``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class Units:
    """An ambient source, as the Flask extension's: the unit of work running in this context."""

    def __init__(self) -> None:
        self.running: contextvars.ContextVar[Any] = contextvars.ContextVar("unit", default=None)

    def owner(self) -> Any:
        return self.running.get()

    def slot(self, owner: Any) -> Optional[ContextSlot]:
        return ContextSlot(Context.create(f"own-{owner.name}"), None)

    @contextmanager
    def run(self, unit: Any) -> Iterator[None]:
        token = self.running.set(unit)
        try:
            yield
        finally:
            self.running.reset(token)


@pytest.fixture
def units() -> Iterator[Units]:
    source = Units()
    _context.add_ambient_source(source)
    yield source
    with _context._ambient_lock:
        _context.AMBIENT.remove(source)


def test_a_slot_is_kept_only_by_the_unit_of_work_it_was_stored_in(units: Units) -> None:
    # Without per-request isolation scopes, units of work on a thread share one scope: a
    # slot stored in one must not be taken for the next one's.
    a, b = Unit("a"), Unit("b")
    context = Context.create("evaluated")

    def kept(slot: ContextSlot) -> tuple[bool, bool]:
        return slot.reusable(), slot.holds(context, None)

    with units.run(a):
        in_a = ContextSlot(context, None)
        seen = {"in a, in a": kept(in_a)}
    with units.run(b):
        seen["in a, in b"] = kept(in_a)
    seen["in a, outside"] = kept(in_a)
    outside = ContextSlot(context, None)
    seen["outside, outside"] = kept(outside)
    with units.run(a):
        seen["outside, in a"] = kept(outside)
        seen["in a, in a again"] = kept(in_a)
        assert not in_a.holds(context, _context.ALL_PRIVATE)  # another client's evaluation

    assert seen == {
        "in a, in a": (True, True),
        "in a, in b": (False, False),
        "in a, outside": (False, False),
        "outside, outside": (True, True),
        "outside, in a": (False, False),
        "in a, in a again": (True, True),
    }


def test_a_context_stored_in_a_unit_that_cannot_be_referred_to_weakly_is_still_its_own(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, units: Units
) -> None:
    sentry_init(integrations=[FlagsIntegration()])
    a, b = UnreferencedUnit("a"), UnreferencedUnit("b")
    with units.run(a):
        set_launchdarkly_context(Context.create("stored"))
        assert get_launchdarkly_context().key == "stored"  # type: ignore[union-attr]
        raise_and_capture("in a")
        stored = _context.current_slot()
        assert stored is not None
        assert stored.reusable()
    with units.run(b):  # another unit sharing the scope: its own context
        assert get_launchdarkly_context().key == "own-b"  # type: ignore[union-attr]
        assert not stored.reusable()

    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": "stored"}
