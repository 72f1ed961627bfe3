"""LaunchDarklyForwarder: real sentry-sdk and a real LDClient, events read off the LD receiver."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import pytest

from helpers import capture_error, handle, init_forwarding, pii_options
from receivers import LaunchDarklyReceiver, assert_never, wait_for

pytest.importorskip("ldclient")

import sentry_sdk
from ldclient import Context

from sentry_flags import ErrorView
from sentry_flags.forwarders import LaunchDarklyForwarder, Stats
from sentry_flags.forwarders.launchdarkly import MAX_VALUE_LENGTH
from sentry_flags.testing import flush_forwarders

pytestmark = pytest.mark.usefixtures("own_isolation_scope")

FLAG = "new-checkout"


@pytest.fixture
def flags(ld_test_data: Any) -> Any:
    ld_test_data.update(ld_test_data.flag(FLAG).variation_for_all(True))
    return ld_test_data


def custom_events(receiver: LaunchDarklyReceiver, key: Optional[str] = None) -> list[dict[str, Any]]:
    return [e for e in receiver.custom_events if key is None or e.get("key") == key]


def wait_custom(receiver: LaunchDarklyReceiver, count: int = 1, key: Optional[str] = None) -> Any:
    return wait_for(
        lambda: (found := custom_events(receiver, key)) and len(found) >= count and found,
        message=f"{count} custom event(s) {key or ''}",
    )


# -- end to end -----------------------------------------------------------------------------


def test_error_arrives_as_custom_event_on_the_evaluated_context(
    sentry_init: Callable[..., Any], ld_client: Any, flags: Any, ld_receiver: LaunchDarklyReceiver
) -> None:
    forwarder = LaunchDarklyForwarder(ld_client)
    init_forwarding(
        sentry_init, forwarder, launchdarkly_client=ld_client, environment="staging", release="shop@1.2.3"
    )
    context = Context.builder("user-42").kind("user").set("plan", "pro").build()
    assert ld_client.variation(FLAG, context, False) is True

    event_id = capture_error("card declined", RuntimeError)
    sentry_sdk.flush()

    [event] = wait_custom(ld_receiver)
    assert event["key"] == "sentry-errors"
    assert event["context"] == {"kind": "user", "key": "user-42", "plan": "pro"}
    data = event["data"]
    assert data["eventId"] == event_id
    assert data["exceptionType"] == "RuntimeError"
    assert data["exceptionValue"] == "card declined"
    assert data["environment"] == "staging"
    assert data["release"] == "shop@1.2.3"
    assert data["level"] == "error"
    assert "capture" in data["culprit"]
    assert "transaction" not in data  # unknown outside a request: left out, not null
    assert set(data) <= {
        "eventId", "exceptionType", "exceptionValue", "culprit",
        "release", "environment", "level", "transaction",
    }  # fmt: skip
    assert forwarder.stats.forwarded == 1
    assert forwarder.stats.failed == 0


def test_private_attributes_are_redacted_by_launchdarkly_itself(
    sentry_init: Callable[..., Any],
    make_ld_client: Callable[..., Any],
    flags: Any,
    ld_receiver: LaunchDarklyReceiver,
) -> None:
    ld_client = make_ld_client(update_processor_class=flags, private_attributes=["name"])
    init_forwarding(sentry_init, LaunchDarklyForwarder(ld_client), launchdarkly_client=ld_client)
    context = (
        Context.builder("user-7")
        .name("Ada Lovelace")
        .set("email", "ada@example.com")
        .set("plan", "pro")
        .private("email")
        .build()
    )
    ld_client.variation(FLAG, context, False)

    capture_error("boom")
    sentry_sdk.flush()

    [event] = wait_custom(ld_receiver)
    assert event["context"]["key"] == "user-7"
    assert event["context"]["plan"] == "pro"
    assert "email" not in event["context"]
    assert "name" not in event["context"]
    assert sorted(event["context"]["_meta"]["redactedAttributes"]) == ["email", "name"]
    for request in ld_receiver.requests:
        assert b"ada@example.com" not in request.body
        assert b"Ada Lovelace" not in request.body


def test_what_the_apps_before_send_takes_out_of_launchdarkly_context_is_not_sent_to_launchdarkly(
    sentry_init: Callable[..., Any],
    sentry_receiver: Any,
    ld_client: Any,
    flags: Any,
    ld_receiver: LaunchDarklyReceiver,
) -> None:
    # No evaluation on the client (its own events would carry the context): the context is
    # the request's, set as the framework glue sets it, so the forwarder is its only way out.
    from sentry_flags import FlagsIntegration, set_launchdarkly_context

    def scrub(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        user = event["contexts"]["launchdarklyContext"]["user"]
        del user["phone"]  # dropped
        user["email"] = "[Filtered]"  # scrubbed
        del event["contexts"]["launchdarklyContext"]["org"]  # a whole kind dropped
        return event

    sentry_init(
        integrations=[FlagsIntegration(forwarders=[LaunchDarklyForwarder(ld_client)])],
        before_send=scrub,
        **pii_options(True),
    )
    user = Context.builder("user-9").set("email", "grace@example.com").set("phone", "555-0199")
    org = Context.builder("org-9").kind("org").set("iban", "DE89370400440532013000")
    set_launchdarkly_context(Context.create_multi(user.set("plan", "pro").build(), org.build()))

    capture_error("boom")
    sentry_sdk.flush()

    [event] = wait_custom(ld_receiver)
    context = event["context"]
    assert context["user"]["key"] == "user-9"
    assert context["org"]["key"] == "org-9"
    assert context["user"]["plan"] == "pro"  # left as it was: still sent
    assert sorted(context["user"]["_meta"]["redactedAttributes"]) == ["email", "phone"]
    assert context["org"]["_meta"]["redactedAttributes"] == ["iban"]
    bodies = b"".join(r.body for r in ld_receiver.requests)
    for value in (b"grace@example.com", b"555-0199", b"DE89370400440532013000"):
        assert value not in bodies
    assert b"grace@example.com" not in b"".join(r.body for r in sentry_receiver.requests)


def test_when_the_apps_before_send_removes_launchdarkly_context_only_kinds_and_keys_reach_launchdarkly(
    sentry_init: Callable[..., Any],
    make_ld_client: Callable[..., Any],
    flags: Any,
    ld_receiver: LaunchDarklyReceiver,
) -> None:
    # The context was evaluated on a client that keeps "ssn" private, and is forwarded through
    # another that does not: with launchdarklyContext gone from the event, nothing tells which
    # attributes reached Sentry, so none goes to LaunchDarkly.
    from sentry_flags import FlagsIntegration
    from sentry_flags.launchdarkly import SentryFlagsPlugin

    def drop_it(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        del event["contexts"]["launchdarklyContext"]
        return event

    evaluating = make_ld_client(
        update_processor_class=flags,
        plugins=[SentryFlagsPlugin()],
        private_attributes=["ssn"],
        send_events=False,
    )
    forwarding = make_ld_client(update_processor_class=flags)
    sentry_init(
        integrations=[FlagsIntegration(forwarders=[LaunchDarklyForwarder(forwarding)])],
        before_send=drop_it,
        **pii_options(True),
    )
    context = Context.builder("user-5").set("ssn", "078-05-1120").set("plan", "pro").build()
    evaluating.variation(FLAG, context, False)

    capture_error("boom")
    sentry_sdk.flush()

    [event] = wait_custom(ld_receiver)
    sent = event["context"]
    assert sorted(sent.pop("_meta")["redactedAttributes"]) == ["plan", "ssn"]
    assert sent == {"kind": "user", "key": "user-5"}
    assert b"078-05-1120" not in b"".join(r.body for r in ld_receiver.requests)


def test_event_key_is_configurable(
    sentry_init: Callable[..., Any], ld_client: Any, flags: Any, ld_receiver: LaunchDarklyReceiver
) -> None:
    forwarder = LaunchDarklyForwarder(ld_client, event_key="checkout-errors")
    init_forwarding(sentry_init, forwarder, launchdarkly_client=ld_client)
    ld_client.variation(FLAG, Context.create("user-1"), False)

    capture_error("boom")
    sentry_sdk.flush()

    [event] = wait_custom(ld_receiver)
    assert event["key"] == "checkout-errors"


def test_error_without_context_is_skipped_and_counted(
    sentry_init: Callable[..., Any], ld_client: Any, flags: Any, ld_receiver: LaunchDarklyReceiver
) -> None:
    forwarder = LaunchDarklyForwarder(ld_client)
    init_forwarding(sentry_init, forwarder, launchdarkly_client=ld_client)

    capture_error("no flag was evaluated")
    ld_client.variation(FLAG, Context.create("user-1"), False)
    capture_error("after an evaluation")
    sentry_sdk.flush()

    # The second error arriving shows delivery ran; the first would have come with it.
    [event] = wait_custom(ld_receiver)
    assert event["data"]["exceptionValue"] == "after an evaluation"
    assert_never(lambda: len(custom_events(ld_receiver)) > 1, duration=0.3)
    stats = forwarder.stats
    assert stats.skipped == {"no_context": 1}
    assert stats.forwarded == 1


def test_environment_filter(
    sentry_init: Callable[..., Any], ld_client: Any, flags: Any, ld_receiver: LaunchDarklyReceiver
) -> None:
    production = LaunchDarklyForwarder(ld_client, "prod-errors", environments={"production"})
    staging = LaunchDarklyForwarder(ld_client, "staging-errors", environments=["staging", "qa"])
    init_forwarding(sentry_init, production, staging, environment="staging", launchdarkly_client=ld_client)
    ld_client.variation(FLAG, Context.create("user-1"), False)

    capture_error("boom")
    sentry_sdk.flush()

    wait_custom(ld_receiver, key="staging-errors")
    assert_never(lambda: custom_events(ld_receiver, "prod-errors"), duration=0.3)
    assert production.stats.skipped == {"environment": 1}
    assert production.stats.forwarded == 0
    assert staging.stats.forwarded == 1


def test_each_thread_forwards_its_own_context(
    sentry_init: Callable[..., Any], ld_client: Any, flags: Any, ld_receiver: LaunchDarklyReceiver
) -> None:
    init_forwarding(sentry_init, LaunchDarklyForwarder(ld_client), launchdarkly_client=ld_client)
    # Both threads evaluate before either raises, so a shared slot would show up as
    # both errors carrying the last evaluated context.
    evaluated = threading.Barrier(2, timeout=5)
    failures: list[BaseException] = []

    def work(user: str) -> None:
        try:
            ld_client.variation(FLAG, Context.create(user), False)
            evaluated.wait()
            capture_error(f"failed for {user}")
        except BaseException as exc:  # reported to the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not failures
    sentry_sdk.flush()

    found = wait_custom(ld_receiver, count=2)
    assert {e["data"]["exceptionValue"]: e["context"]["key"] for e in found} == {
        "failed for alice": "alice",
        "failed for bob": "bob",
    }


def test_flush_makes_launchdarkly_send_now(
    sentry_init: Callable[..., Any],
    make_ld_client: Callable[..., Any],
    flags: Any,
    ld_receiver: LaunchDarklyReceiver,
) -> None:
    # With LD's own timer far away, only our flush can get the event out in time.
    ld_client = make_ld_client(update_processor_class=flags, flush_interval=60)
    init_forwarding(sentry_init, LaunchDarklyForwarder(ld_client), launchdarkly_client=ld_client)
    ld_client.variation(FLAG, Context.create("user-1"), False)

    capture_error("boom")
    sentry_sdk.flush()

    wait_custom(ld_receiver)


def test_sdk_failure_is_counted_and_never_reaches_the_app(
    sentry_init: Callable[..., Any], ld_client: Any, flags: Any, mocker: Any
) -> None:
    forwarder = LaunchDarklyForwarder(ld_client)
    init_forwarding(sentry_init, forwarder, launchdarkly_client=ld_client)
    ld_client.variation(FLAG, Context.create("user-1"), False)
    mocker.patch.object(ld_client, "track", side_effect=RuntimeError("event processor gone"))

    capture_error("boom")
    assert flush_forwarders()

    assert forwarder.stats.failed == 1
    assert forwarder.stats.forwarded == 0


# -- the call itself (pure) -------------------------------------------------------------------


def view(**fields: Any) -> ErrorView:
    defaults: dict[str, Any] = {
        "event_id": "e" * 32,
        "timestamp": datetime(2024, 1, 1, tzinfo=timezone.utc),
        "level": "error",
        "ld_context": Context.create("user-1"),
    }
    return ErrorView(**{**defaults, **fields})


class DuckClient:
    """Anything with LDClient's ``track`` is accepted."""

    def __init__(self) -> None:
        self.tracked: list[dict[str, Any]] = []

    def track(self, event_name: str, context: Any, data: Any = None) -> None:
        self.tracked.append({"event_name": event_name, "context": context, "data": data})


def test_call_shape() -> None:
    forwarder = LaunchDarklyForwarder(DuckClient())
    context = Context.create("user-1")
    [call] = forwarder.calls(
        view(
            ld_context=context,
            exception_type="KeyError",
            exception_value="'sku'",
            culprit="shop.cart in add",
            transaction="/cart",
            environment="production",
        ),
        0.0,
    )
    assert call.method == "track"
    assert call.kwargs["event_name"] == "sentry-errors"
    assert call.kwargs["context"] is context
    assert call.kwargs["data"] == {
        "eventId": "e" * 32,
        "exceptionType": "KeyError",
        "exceptionValue": "'sku'",
        "culprit": "shop.cart in add",
        "transaction": "/cart",
        "environment": "production",
        "level": "error",
    }


def test_long_exception_value_is_truncated() -> None:
    [call] = LaunchDarklyForwarder(DuckClient()).calls(view(exception_value="x" * 5000), 0.0)
    value = call.kwargs["data"]["exceptionValue"]
    assert len(value) == MAX_VALUE_LENGTH
    assert value.endswith("...")


def test_message_event_carries_its_message() -> None:
    [call] = LaunchDarklyForwarder(DuckClient()).calls(view(message="disk almost full"), 0.0)
    assert call.kwargs["data"]["message"] == "disk almost full"
    assert "exceptionType" not in call.kwargs["data"]


def test_invalid_context_is_skipped() -> None:
    forwarder = LaunchDarklyForwarder(DuckClient())
    handle(forwarder, view(ld_context=Context.create("key", "kind")), 0.0)
    assert forwarder.stats == Stats(errors=1, skipped={"invalid_context": 1})


def test_duck_typed_client_receives_the_call() -> None:
    client = DuckClient()
    forwarder = LaunchDarklyForwarder(client, "errs")
    handle(forwarder, view(exception_type="ValueError"), 0.0)
    forwarder.flush()  # no flush() on the client: nothing to do, no error
    [tracked] = client.tracked
    assert tracked["event_name"] == "errs"
    assert tracked["data"]["exceptionType"] == "ValueError"
    assert forwarder.stats.forwarded == 1


# Wrong constructor arguments, of every forwarder, are in test_bad_options.py.


def test_lazy_export() -> None:
    from sentry_flags import forwarders

    assert forwarders.LaunchDarklyForwarder is LaunchDarklyForwarder
