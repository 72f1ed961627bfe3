"""Sentry's own normalizer (sentry-relay) on every event the loopback SentryReceiver accepts.

Every test's receiver runs it (tests/receivers.py) and fails the test on an error under a
context sentry-flags writes; these prove that check catches one, and that what we send
comes out of Relay as we sent it.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
import sentry_sdk

from helpers import capture_error, ld_context_of, only_event
from receivers import OUR_CONTEXTS, SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags.testing import receivers as shipped

pytestmark = pytest.mark.usefixtures("own_isolation_scope")


def relay_checks_the_flags_context() -> bool:
    """Whether the installed sentry-relay knows the ``flags`` context's schema (0.8.45, the
    newest for Python 3.9, takes any object there)."""
    processing = pytest.importorskip("sentry_relay.processing")
    probe = {"message": "probe", "contexts": {"flags": {"values": [{"flag": 1, "result": True}]}}}
    return "_meta" in processing.StoreNormalizer(project_id=1).normalize_event(probe)


@pytest.mark.parametrize(
    ("context", "where", "error"),
    [
        (["not", "an", "object"], ("contexts", "flags"), "invalid_data: expected an object"),
        (
            {"values": [{"flag": "ok", "result": True}, {"flag": 7, "result": False}]},
            ("contexts", "flags", "values", "1", "flag"),
            "invalid_data: expected a string",
        ),
    ],
    ids=["not-an-object", "flag-not-a-string"],
)
def test_a_context_sentry_would_drop_fails_the_receiver(
    sentry_init: Callable[..., Any], context: Any, where: tuple[str, ...], error: str
) -> None:
    if isinstance(context, dict) and not relay_checks_the_flags_context():
        pytest.skip("this sentry-relay does not check the flags context's schema")
    receiver = shipped.SentryReceiver(normalize=True, strict=True)
    sentry_init(dsn=receiver.dsn)
    bad = {"message": "bad flags", "level": "error", "contexts": {"flags": context}}
    event_id = sentry_sdk.capture_event(bad)
    sentry_sdk.flush(timeout=5)
    receiver.wait_for_events(1)
    with pytest.raises(AssertionError, match=r"contexts\.flags") as failed:
        receiver.__exit__(None, None, None)  # the end of a `with SentryReceiver(...)` block

    [problem] = receiver.ingest_problems()
    assert problem.event_id == event_id
    assert problem.path == where
    assert problem.errors == (error,)
    assert problem.where in str(failed.value)
    assert receiver.ingest_problems(["launchdarklyContext"]) == []  # asked about another context


def test_what_sentry_flags_sends_comes_out_of_relay_as_sent(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, ld_test_data: Any
) -> None:
    from ldclient import Context

    ld_test_data.update(ld_test_data.flag("checkout").boolean_flag().variation_for_all(True))
    ld_test_data.update(ld_test_data.flag("theme").variations("light", {"dark": [1, 2]}).variation_for_all(1))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    user = Context.builder("u-1").set("plan", "pro").private("plan").set("team", "blue").build()
    org = Context.builder("acme").kind("org").set("seats", 12).build()
    both = Context.create_multi(user, org)
    ld_client.variation("checkout", both, False)
    ld_client.variation("theme", both, None)
    capture_error("checkout failed")

    sent = only_event(sentry_receiver)
    assert ld_context_of(sent)["user"]["_meta"] == {"redactedAttributes": ["plan"]}
    [kept] = sentry_receiver.normalized_events
    for name in OUR_CONTEXTS:
        assert name in sent["contexts"], name
        # Relay adds the context's type; nothing else changes.
        assert kept["contexts"][name] == {**sent["contexts"][name], "type": name}, json.dumps(kept)
    assert sentry_receiver.ingest_problems(errors_only=False) == []


@pytest.mark.parametrize(
    ("context", "where", "said"),
    [
        # Over Relay's 8 KiB: the string is cut where the budget runs out, with a remark (and
        # the "type" Relay adds after it has no budget left: deleted).
        ({"bio": "b" * 9000}, ("contexts", "launchdarklyContext", "bio"), "remark !limit"),
        # The budget spent exactly: the "type" Relay adds is deleted; sentry-relay 0.10.1
        # leaves no mark at all, 0.8.45 the context's original length.
        (
            {"bio": "b" * 8189},
            ("contexts", "launchdarklyContext", "type"),
            r"launchdarklyContext(\.type: remark changed without a mark|: was 2 long)",
        ),
        # Deeper than 5: made a JSON string, with no mark.
        (
            {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}},
            ("contexts", "launchdarklyContext", "a", "b", "c", "d", "e", "f"),
            r"launchdarklyContext\.a\.b\.c\.d\.e\.f: remark changed without a mark",
        ),
    ],
    ids=["trimmed", "deleted", "stringified-silently"],
)
def test_what_sentry_would_trim_or_change_fails_the_tests_receiver(
    sentry_init: Callable[..., Any], context: dict[str, Any], where: tuple[str, ...], said: str
) -> None:
    receiver = shipped.SentryReceiver(normalize=True, strict=True, errors_only=False)
    sentry_init(dsn=receiver.dsn, max_value_length=1 << 20)  # sentry-sdk cuts nothing itself
    sentry_sdk.capture_event(
        {"message": "big", "level": "error", "contexts": {"launchdarklyContext": context}}
    )
    sentry_sdk.flush(timeout=5)
    receiver.wait_for_events(1)
    with pytest.raises(AssertionError, match=said):
        receiver.__exit__(None, None, None)  # the end of a `with SentryReceiver(...)` block
    # Reported at the place, or (a trim Relay marked) at what holds it.
    assert any(where[: len(p.path)] == p.path for p in receiver.ingest_problems())
    # Only errors (the shipped receiver's default): a trim passes.
    assert receiver.ingest_problems(errors_only=True) == []
    receiver.assert_ingestible()


def test_the_tests_receiver_fails_on_trims() -> None:
    with SentryReceiver() as receiver:
        assert receiver.strict
        assert not receiver.errors_only
