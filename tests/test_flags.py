"""Flags on every error: what each request was served, recorded by the LaunchDarkly hook.

Real LDClient on TestData flags, real sentry-sdk sending to the loopback receiver; every
assertion is on what arrived over the wire: Sentry's own ``flags`` context (booleans) and our
``flagEvaluations`` (every value, with variation and reason).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("ldclient")

import sentry_sdk
from ldclient import Context

from helpers import (
    SPANS_CARRY_FLAGS,
    by_summary,
    capture_error,
    ld_context_of,
    only_event,
    raise_and_capture,
    received,
    run_threads,
    sentry_launchdarkly_hook,
    start_child_span,
    start_transaction,
    wait_for_transactions,
)
from receivers import SentryReceiver
from sentry_flags import ErrorView, FlagsIntegration
from sentry_flags._bounds import CONTEXT_BUDGET, relay_size, type_reserve, value_limit
from sentry_flags._flags import COMPACT_AT, FLAGS_KEY, MAX_FLAGS
from sentry_flags.testing import RecordingForwarder, flush_forwarders

EVALUATIONS = "flagEvaluations"
LD_KEY = "launchdarklyContext"
SENTRY_EVENT_LIMIT = 1 << 20  # Sentry's ingest rejects an event over 1 MiB


@pytest.fixture(autouse=True)
def _own_scope(own_isolation_scope: None) -> None:
    pass


def user(key: str = "user-1", **attrs: Any) -> Context:
    builder = Context.builder(key).kind("user")
    for name, value in attrs.items():
        builder.set(name, value)
    return builder.build()


def evaluations(event: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = event["contexts"][EVALUATIONS]["values"]
    return found


def ld_entry(flag: str, value: Any, variation: int, reason: str) -> dict[str, Any]:
    return {"flag": flag, "value": value, "variation": variation, "reason": reason, "source": "launchdarkly"}


def sentry_flags_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = event["contexts"].get("flags", {}).get("values", [])
    return found


@pytest.fixture
def typed_flags(ld_test_data: Any) -> Any:
    td = ld_test_data
    td.update(td.flag("bool-flag").variation_for_all(True))
    td.update(td.flag("str-flag").variations("red", "blue").variation_for_all(1))
    td.update(td.flag("num-flag").variations(1, 2.5).variation_for_all(1))
    td.update(td.flag("json-flag").variations({"limit": 3, "tiers": ["a", "b"]}, {}).variation_for_all(0))
    td.update(td.flag("off-flag").variations(True, False).on(False).off_variation(1))
    return td


def test_every_flag_type_is_on_the_error_booleans_also_in_sentrys_flags(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    ctx = user()
    assert ld_client.variation("bool-flag", ctx, False) is True
    assert ld_client.variation("str-flag", ctx, "x") == "blue"
    assert ld_client.variation("num-flag", ctx, 0) == 2.5
    assert ld_client.variation("json-flag", ctx, {}) == {"limit": 3, "tiers": ["a", "b"]}
    assert ld_client.variation("off-flag", ctx, True) is False
    assert ld_client.variation("missing-flag", ctx, "fallback") == "fallback"
    capture_error("after six evaluations")

    event = only_event(sentry_receiver)
    assert evaluations(event) == [
        ld_entry("bool-flag", True, 0, "FALLTHROUGH"),
        ld_entry("str-flag", "blue", 1, "FALLTHROUGH"),
        ld_entry("num-flag", 2.5, 1, "FALLTHROUGH"),
        ld_entry("json-flag", {"limit": 3, "tiers": ["a", "b"]}, 0, "FALLTHROUGH"),
        ld_entry("off-flag", False, 1, "OFF"),
        # A failed evaluation: the default value, the error code as its reason.
        {"flag": "missing-flag", "value": "fallback", "reason": "FLAG_NOT_FOUND", "source": "launchdarkly"},
    ]
    assert sentry_flags_of(event) == [
        {"flag": "bool-flag", "result": True},
        {"flag": "off-flag", "result": False},
    ]
    assert ld_context_of(event) == {"kind": "user", "key": "user-1"}
    # Never the context's attributes: the flags contexts hold flags only.
    assert "user-1" not in json.dumps(event["contexts"][EVALUATIONS])


def test_variation_detail_is_recorded_like_variation(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    ld_client.variation_detail("str-flag", user(), "x")
    capture_error("after a detailed evaluation")
    [entry] = evaluations(only_event(sentry_receiver))
    assert entry == {"flag": "str-flag", "value": "blue", "variation": 1, "reason": "FALLTHROUGH",
                     "source": "launchdarkly"}  # fmt: skip


def test_the_latest_100_flags_latest_evaluation_wins_and_moves_to_the_end(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, ld_test_data: Any
) -> None:
    td = ld_test_data
    for i in range(MAX_FLAGS + 30):
        td.update(td.flag(f"flag-{i}").variations(f"v{i}", "other").variation_for_all(0))
    td.update(td.flag("flag-40").variations("v40", "changed").variation_for_all(1))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    ctx = user()
    for i in range(MAX_FLAGS + 30):
        ld_client.variation(f"flag-{i}", ctx, "d")
    ld_client.variation("flag-40", ctx, "d")  # again: it becomes the newest
    capture_error("after 131 evaluations")

    found = evaluations(only_event(sentry_receiver))
    names = [e["flag"] for e in found]
    assert len(names) == MAX_FLAGS == len(set(names))
    # 130 flags; flag-40 moved to the end, so the 100 latest reach back to flag-30.
    assert names[0] == "flag-30"
    assert names[-1] == "flag-40"
    assert found[-1]["value"] == "changed"
    assert "flag-29" not in names
    assert names.count("flag-40") == 1


def test_a_long_lived_scope_keeps_a_bounded_log(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    # A worker thread that evaluates forever in one scope must not grow its log forever.
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    ctx = user()
    for _ in range(10 * COMPACT_AT):
        ld_client.variation("str-flag", ctx, "x")
        ld_client.variation("bool-flag", ctx, False)
    log = sentry_sdk.get_isolation_scope()._contexts[FLAGS_KEY]
    assert log.depth <= COMPACT_AT
    capture_error("after many evaluations")
    assert [e["flag"] for e in evaluations(only_event(sentry_receiver))] == ["str-flag", "bool-flag"]


def test_threads_each_see_only_their_own_flags_and_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, ld_test_data: Any
) -> None:
    n = 16
    for i in range(n):
        ld_test_data.update(ld_test_data.flag(f"t-{i}").variations(f"value-{i}", "x").variation_for_all(0))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    barrier = threading.Barrier(n)

    def work(i: int) -> None:
        with sentry_sdk.isolation_scope():
            barrier.wait(timeout=10)
            for _ in range(3):
                ld_client.variation(f"t-{i}", user(f"thread-user-{i}"), "d")
            capture_error(f"thread {i}")

    run_threads(work, n)
    events = by_summary(received(sentry_receiver, n))
    for i in range(n):
        event = events[f"thread {i}"]
        assert ld_context_of(event)["key"] == f"thread-user-{i}"
        assert [(e["flag"], e["value"]) for e in evaluations(event)] == [(f"t-{i}", f"value-{i}")]


def test_asyncio_tasks_each_see_only_their_own_flags_and_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, ld_test_data: Any
) -> None:
    n = 20
    for i in range(n):
        ld_test_data.update(ld_test_data.flag(f"a-{i}").variations(i, -1).variation_for_all(0))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])

    async def task(i: int) -> None:
        with sentry_sdk.isolation_scope():
            ld_client.variation(f"a-{i}", user(f"task-user-{i}"), -2)
            await asyncio.sleep(0.001)  # the other tasks evaluate meanwhile
            capture_error(f"task {i}")

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(n)))

    asyncio.run(main())
    events = by_summary(received(sentry_receiver, n))
    for i in range(n):
        event = events[f"task {i}"]
        assert ld_context_of(event)["key"] == f"task-user-{i}"
        assert [(e["flag"], e["value"]) for e in evaluations(event)] == [(f"a-{i}", i)]


def test_a_forked_scope_never_changes_its_parents_flags(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    ld_client.variation("bool-flag", user(), False)
    with sentry_sdk.isolation_scope():
        ld_client.variation("str-flag", user("child"), "x")
        capture_error("in the child")
    capture_error("in the parent")
    events = by_summary(received(sentry_receiver, 2))
    assert [e["flag"] for e in evaluations(events["in the child"])] == ["bool-flag", "str-flag"]
    assert [e["flag"] for e in evaluations(events["in the parent"])] == ["bool-flag"]


# -- size: what we attach never costs the error -------------------------------------------------


def test_a_3_mb_attribute_is_cut_and_marked_and_the_event_arrives(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)], max_value_length=4 << 20)
    profile = {"document": "x" * (3 << 20)}
    many = {f"a{i}": "y" * 1000 for i in range(40)}  # each fits, together they do not
    ctx = (
        Context.builder("k" * 300)
        .kind("user")
        .set("profile", profile)
        .set("bio", "b" * 10000)
        .set("plan", "pro")
        .build()
    )
    org = Context.builder("org-1").kind("org")
    for name, value in many.items():
        org.set(name, value)
    ld_client.variation("bool-flag", Context.create_multi(ctx, org.build()), False)
    capture_error("with a huge context")

    found = ld_context_of(only_event(sentry_receiver))
    [request] = sentry_receiver.requests_to("/api/")
    assert len(request.body) < SENTRY_EVENT_LIMIT / 4
    # Within what Sentry's ingestion keeps of a context (and the receiver's normalizer,
    # strict, checks that it keeps all of it).
    assert relay_size(found, 0) + type_reserve(LD_KEY) <= CONTEXT_BUDGET
    single = found["user"]
    assert single["key"] == "k" * 300  # kind and key are never cut
    assert "profile" not in single  # an object too large to cut: left out
    # bio was cut to MAX_VALUE_BYTES, then, as the largest left, went for the total.
    assert "bio" not in single
    assert single["plan"] == "pro"
    assert single["_meta"]["cutAttributes"] == ["profile", "bio"]
    org_part = found["org"]
    assert org_part["key"] == "org-1"
    left_out = set(org_part["_meta"]["cutAttributes"])
    assert left_out
    assert left_out == set(many) - set(org_part)  # listed exactly as left out


def test_a_huge_flag_value_is_cut_and_marked(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, ld_test_data: Any
) -> None:
    td = ld_test_data
    td.update(td.flag("big-json").variations({"blob": "z" * 100_000}, {}).variation_for_all(0))
    td.update(td.flag("big-str").variations("s" * 100_000, "").variation_for_all(0))
    for i in range(60):
        td.update(td.flag(f"mid-{i}").variations("m" * 1500, "").variation_for_all(0))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    for name in ("big-json", "big-str", *(f"mid-{i}" for i in range(60))):
        ld_client.variation(name, user(), None)
    capture_error("with huge flag values")

    context = only_event(sentry_receiver)["contexts"][EVALUATIONS]
    meta = context["_meta"]
    assert meta["droppedFlags"] > 0  # the oldest entries went: the total is bounded
    names = [e["flag"] for e in context["values"]]
    kept = {e["flag"]: e for e in context["values"]}
    # The newest survive: what Sentry's ingestion would have dropped is the oldest, by us.
    assert names == [f"mid-{i}" for i in range(60 - len(names), 60)]
    limit = value_limit(sentry_sdk.get_client().options.get("max_value_length"))
    if limit >= 1500:
        assert kept["mid-59"]["value"] == "m" * 1500
        assert "cutValues" not in meta
    else:  # sentry-sdk before 2.3x cuts at 1024 by default: we cut first, and say so
        assert kept["mid-59"]["value"] == "m" * (limit - 3) + "..."
        assert meta["cutValues"] == names
    assert len(kept) + meta["droppedFlags"] == 62


def test_values_are_cut_to_the_clients_max_value_length_by_us_and_marked(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, ld_test_data: Any
) -> None:
    # sentry-sdk cuts every longer string itself (1024 by default before 2.3x), with a mark
    # of its own that Sentry shows as a trim: we cut first, by our rules, and say so.
    td = ld_test_data
    td.update(td.flag("long").variations("x" * 500, "").variation_for_all(0))
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)], max_value_length=100)
    ld_client.variation("long", user(bio="b" * 500, plan="pro"), None)
    capture_error("with a short max_value_length")

    event = only_event(sentry_receiver)
    context = ld_context_of(event)
    assert context["bio"] == "b" * 97 + "..."
    assert context["plan"] == "pro"
    assert context["_meta"]["cutAttributes"] == ["bio"]
    [found] = evaluations(event)
    assert found["value"] == "x" * 97 + "..."
    assert event["contexts"][EVALUATIONS]["_meta"] == {"cutValues": ["long"]}
    assert "contexts" not in (event.get("_meta") or {})  # nothing left for sentry-sdk to cut


# -- coexistence and transactions -----------------------------------------------------------------


def test_with_sentry_sdks_launchdarkly_integration_no_flag_appears_twice(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(
        integrations=[*sentry_launchdarkly_hook(ld_client), FlagsIntegration(launchdarkly_client=ld_client)]
    )
    ctx = user()
    ld_client.variation("bool-flag", ctx, False)
    ld_client.variation("str-flag", ctx, "x")
    ld_client.variation("off-flag", ctx, True)
    sentry_sdk.feature_flags.add_feature_flag("app-flag", True)  # the app's own, by hand
    capture_error("both hooks")

    event = only_event(sentry_receiver)
    assert sentry_flags_of(event) == [
        {"flag": "app-flag", "result": True},
        {"flag": "bool-flag", "result": True},
        {"flag": "off-flag", "result": False},
    ]
    assert [e["flag"] for e in evaluations(event)] == ["bool-flag", "str-flag", "off-flag"]


def test_flag_results_stay_off_transactions_but_mark_the_span_like_sentry_sdk(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)], traces_sample_rate=1.0)
    with start_transaction("checkout"), start_child_span("pay"):
        ld_client.variation("bool-flag", user(), False)
        ld_client.variation("str-flag", user(), "x")
        raise_and_capture("inside the transaction")

    [transaction] = wait_for_transactions(sentry_receiver)
    contexts = transaction.get("contexts", {})
    for key in (EVALUATIONS, "launchdarklyContext", "flags"):
        assert key not in contexts
    assert EVALUATIONS not in json.dumps(transaction)
    if SPANS_CARRY_FLAGS:  # sentry-sdk releases with span flags
        # As sentry-sdk's add_feature_flag: booleans only, on the span that was current.
        [span] = transaction["spans"]
        assert span["data"]["flag.evaluation.bool-flag"] is True
        assert "flag.evaluation.str-flag" not in span["data"]
    event = only_event(sentry_receiver)
    assert [e["flag"] for e in evaluations(event)] == ["bool-flag", "str-flag"]


@pytest.mark.skipif(
    not isinstance(getattr(sentry_sdk.scope.Scope, "streamed_span", None), property),
    reason="span streaming alongside transactions: sentry-sdk 2.7x",
)
def test_with_span_streaming_on_2x_the_streamed_span_gets_the_flags_like_sentry_sdk(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(
        integrations=[FlagsIntegration(launchdarkly_client=ld_client)],
        traces_sample_rate=1.0,
        _experiments={"trace_lifecycle": "stream"},
    )
    with sentry_sdk.traces.start_span(name="checkout"), sentry_sdk.traces.start_span(name="pay"):
        ld_client.variation("bool-flag", user(), False)
        ld_client.variation("str-flag", user(), "x")

    [transaction] = wait_for_transactions(sentry_receiver)
    [span] = transaction["spans"]
    assert span["data"]["flag.evaluation.bool-flag"] is True
    assert "flag.evaluation.str-flag" not in span["data"]


def test_without_the_integration_nothing_of_the_log_is_sent(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    ld_client.variation("str-flag", user(), "x")
    sentry_init()  # a client without FlagsIntegration: the hook still records, nothing is sent
    capture_error("plain client")
    event = only_event(sentry_receiver)
    assert EVALUATIONS not in event["contexts"]
    assert "launchdarklyContext" not in event["contexts"]


def test_errors_sharing_a_context_each_get_their_own_copy(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    # The stage makes the redacted forms once for errors sharing a context and a flag log;
    # an app's before_send changing one event must not reach the next.
    def scribble(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        contexts = event["contexts"]
        if "first" in str(event.get("exception")):
            contexts["launchdarklyContext"]["plan"] = "scribbled"
            contexts[EVALUATIONS]["values"][0]["value"] = "scribbled"
        return event

    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)], before_send=scribble)
    ld_client.variation("json-flag", user(plan="pro"), {})
    capture_error("first")
    capture_error("second")
    ld_client.variation("str-flag", user("user-2"), "x")  # a new context and a longer log
    capture_error("third")
    events = by_summary(received(sentry_receiver, 3))
    assert ld_context_of(events["second"]) == {"kind": "user", "key": "user-1", "plan": "pro"}
    assert evaluations(events["second"])[0]["value"] == {"limit": 3, "tiers": ["a", "b"]}
    assert ld_context_of(events["third"]) == {"kind": "user", "key": "user-2"}
    assert [e["flag"] for e in evaluations(events["third"])] == ["json-flag", "str-flag"]
    # Nor does it reach LaunchDarkly's own copy of the flag's value.
    assert ld_client.variation("json-flag", user(), {}) == {"limit": 3, "tiers": ["a", "b"]}


def _events_handed_to_the_transport() -> list[dict[str, Any]]:
    """The event dicts sentry-sdk hands its transport from now on (observed, then sent on)."""
    transport = sentry_sdk.get_client().transport
    assert transport is not None
    seen: list[dict[str, Any]] = []
    send = transport.capture_envelope

    def capture_envelope(envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            seen.append(event)
        send(envelope)

    transport.capture_envelope = capture_envelope  # type: ignore[method-assign]
    return seen


def test_without_a_before_send_errors_sharing_a_context_share_its_forms(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    # Nothing changes an event after our stage but the app's before_send: without one, the
    # errors of a request carry the same read-only forms (made once), and every event still
    # arrives with the context and flags of its own request.
    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client, forwarders=[recorder])])
    sent = _events_handed_to_the_transport()
    ld_client.variation("json-flag", user(plan="pro"), {})
    capture_error("first")
    capture_error("second")
    ld_client.variation("str-flag", user("user-2"), "x")
    capture_error("third")
    events = by_summary(received(sentry_receiver, 3))
    flush_forwarders()
    first, second, third = (event["contexts"] for event in sent)
    assert first["launchdarklyContext"] is second["launchdarklyContext"]
    assert first[EVALUATIONS] is second[EVALUATIONS]
    assert third["launchdarklyContext"] is not second["launchdarklyContext"]
    for summary in ("first", "second"):
        assert ld_context_of(events[summary]) == {"kind": "user", "key": "user-1", "plan": "pro"}
        assert evaluations(events[summary])[0]["value"] == {"limit": 3, "tiers": ["a", "b"]}
    assert ld_context_of(events["third"]) == {"kind": "user", "key": "user-2"}
    assert [e["flag"] for e in evaluations(events["third"])] == ["json-flag", "str-flag"]
    # Each forwarder's view holds a copy: no forwarder changes what another event carries.
    views = [view.contexts for view in recorder.views]
    assert views[0]["launchdarklyContext"] == views[1]["launchdarklyContext"]
    assert views[0]["launchdarklyContext"] is not first["launchdarklyContext"]


def test_a_before_send_put_in_front_of_ours_after_init_changes_only_its_own_event(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client)])
    options = sentry_sdk.get_client().options
    ours = options["before_send"]
    noted: list[str] = []

    def wrapped(event: dict[str, Any], hint: dict[str, Any]) -> Optional[dict[str, Any]]:
        result = ours(event, hint)
        if result is not None and not noted:  # the first error only
            noted.append(result["event_id"])
            result["contexts"]["launchdarklyContext"]["note"] = "first only"
            result["contexts"][EVALUATIONS]["values"].append({"flag": "added", "result": True})
        return result

    options["before_send"] = wrapped
    ld_client.variation("json-flag", user(plan="pro"), {})
    capture_error("first")
    capture_error("second")
    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["first"])["note"] == "first only"
    assert ld_context_of(events["second"]) == {"kind": "user", "key": "user-1", "plan": "pro"}
    assert [e["flag"] for e in evaluations(events["second"])] == ["json-flag"]


class Scribbler(RecordingForwarder):
    """A custom forwarder that writes into the contexts it is given."""

    def calls(self, view: ErrorView, captured_at: float) -> Any:
        view.contexts["launchdarklyContext"]["scribbled"] = True
        view.contexts[EVALUATIONS]["values"].clear()
        return super().calls(view, captured_at)


def test_a_forwarder_cannot_change_what_later_events_carry(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, typed_flags: Any
) -> None:
    scribbler = Scribbler()
    sentry_init(integrations=[FlagsIntegration(launchdarkly_client=ld_client, forwarders=[scribbler])])
    ld_client.variation("json-flag", user(plan="pro"), {})
    capture_error("first")
    flush_forwarders()  # the forwarder has written into its view of the first error
    capture_error("second")
    events = by_summary(received(sentry_receiver, 2))
    flush_forwarders()
    assert scribbler.stats.forwarded == 2
    for summary in ("first", "second"):
        assert ld_context_of(events[summary]) == {"kind": "user", "key": "user-1", "plan": "pro"}
        assert [e["flag"] for e in evaluations(events[summary])] == ["json-flag"]
