"""Pipeline order (filters -> settings -> user's before_send -> forward) and re-initialisation.

sentry-sdk runs an integration's ``setup_once`` once per process while apps and test
suites call ``sentry_sdk.init`` many times: every client must run with its own options.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

import pytest
import sentry_sdk

from helpers import (
    by_summary,
    flush,
    ld_context_of,
    only_event,
    pii_options,
    raise_and_capture,
    received,
    start_transaction,
    summaries,
    summary,
    wait_for_transactions,
)
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration, set_launchdarkly_context
from sentry_flags.testing import RecordingForwarder, flush_forwarders


@pytest.fixture(autouse=True)
def _own_isolation_scope() -> Any:
    with sentry_sdk.isolation_scope():
        yield


class UserBeforeSend:
    """A user's before_send that records what it saw and can change or drop events."""

    def __init__(self, name: str = "user", drop: Optional[str] = None, **changes: Any) -> None:
        self.name = name
        self.drop = drop
        self.changes = changes
        self.seen: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], hint: dict[str, Any]) -> Optional[dict[str, Any]]:
        self.seen.append(
            {
                "summary": summary(event),
                "environment": event.get("environment"),
                "release": event.get("release"),
                "server_name": event.get("server_name"),
                "logger": event.get("logger"),
                "ld": ld_context_of(event),
                "in_app": [
                    f.get("in_app")
                    for v in (event.get("exception") or {}).get("values", [])
                    for f in (v.get("stacktrace") or {}).get("frames", [])
                ],
            }
        )
        if self.drop is not None and self.drop in (summary(event) or ""):
            return None
        event.update(self.changes)
        event.setdefault("tags", {})["seen_by"] = self.name
        return event

    @property
    def summaries(self) -> list[Optional[str]]:
        return [s["summary"] for s in self.seen]


# -- order -----------------------------------------------------------------------------------


def test_user_before_send_sees_settings_context_and_in_app_applied(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    ldclient = pytest.importorskip("ldclient")
    user = UserBeforeSend()
    sentry_init(
        integrations=[
            FlagsIntegration(
                environment="flags-env",
                release="flags@1",
                server_name="flags-host",
                logger="flags-logger",
                include_paths=["no-frame-matches-this"],
            )
        ],
        before_send=user,
        environment="sdk-env",
        release="sdk@1",
        **pii_options(False),
    )
    set_launchdarkly_context(ldclient.Context.builder("pipe-user").set("email", "p@example.com").build())

    raise_and_capture("boom")

    [seen] = user.seen
    assert (seen["environment"], seen["release"], seen["server_name"], seen["logger"]) == (
        "flags-env",
        "flags@1",
        "flags-host",
        "flags-logger",
    )
    # The user's before_send gets the redacted JSON, never the raw Context.
    assert seen["ld"] == {"kind": "user", "key": "pipe-user", "_meta": {"redactedAttributes": ["email"]}}
    assert seen["in_app"]
    assert not any(seen["in_app"])
    event = only_event(sentry_receiver)
    assert event["tags"]["seen_by"] == "user"


def test_user_before_send_runs_after_our_settings_so_it_can_override_them(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(
        integrations=[FlagsIntegration(environment="flags-env")],
        before_send=UserBeforeSend(environment="user-env"),
    )

    raise_and_capture("boom")

    assert only_event(sentry_receiver)["environment"] == "user-env"


def test_filter_dropped_events_never_reach_the_user_before_send(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    user = UserBeforeSend()
    sentry_init(
        integrations=[FlagsIntegration(ignore_errors=["ignored"], deny_urls=["https://denied.test"])],
        before_send=user,
    )

    assert raise_and_capture("ignored error") is None
    assert (
        sentry_sdk.capture_event({"message": "denied", "request": {"url": "https://denied.test/x"}}) is None
    )
    assert raise_and_capture("kept") is not None

    assert user.summaries == ["kept"]
    assert summaries(sentry_receiver, 1) == ["kept"]


def test_filters_see_the_event_before_the_user_before_send_changes_it(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # The user's before_send rewrites the message into one our filter would drop: too late.
    sentry_init(
        integrations=[FlagsIntegration(ignore_errors=["rewritten"])],
        before_send=UserBeforeSend(message="rewritten"),
    )

    sentry_sdk.capture_message("original")

    assert only_event(sentry_receiver)["message"] == "rewritten"


def test_user_before_send_can_drop_and_dropped_events_are_not_forwarded(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = RecordingForwarder()
    user = UserBeforeSend(drop="drop me")
    sentry_init(
        integrations=[
            FlagsIntegration(ignore_errors=["filtered"], environment="flags-env", forwarders=[recorder])
        ],
        before_send=user,
    )

    assert raise_and_capture("filtered out") is None
    assert raise_and_capture("drop me please") is None
    assert raise_and_capture("forward me") is not None
    assert flush_forwarders()

    assert user.summaries == ["drop me please", "forward me"]
    [view] = recorder.views
    assert view.exception_value == "forward me"
    assert view.tags["seen_by"] == "user"  # forwarders get the event the user's before_send returned
    assert view.environment == "flags-env"
    assert summaries(sentry_receiver, 1) == ["forward me"]


def test_user_before_send_that_raises_is_handled_as_sentry_does_without_us(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    def broken(event: Any, hint: Any) -> Any:
        if "explode" in (summary(event) or ""):
            raise RuntimeError("user before_send bug")
        return event

    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])], before_send=broken)

    assert raise_and_capture("explode") is None  # sentry-sdk swallows it and drops the event
    assert raise_and_capture("fine") is not None
    assert flush_forwarders()

    assert [v.exception_value for v in recorder.views] == ["fine"]
    assert summaries(sentry_receiver, 1) == ["fine"]


def test_user_before_send_returning_a_new_event_is_what_is_sent_and_forwarded(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    def replace(event: Any, hint: Any) -> Any:
        return {**event, "message": "replaced", "exception": None, "tags": {"replaced": "yes"}}

    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder])], before_send=replace)

    raise_and_capture("original")
    assert flush_forwarders()

    [view] = recorder.views
    assert view.message == "replaced"
    assert view.tags == {"replaced": "yes"}
    assert only_event(sentry_receiver)["message"] == "replaced"


def test_transactions_do_not_go_through_our_stage(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    recorder = RecordingForwarder()
    sentry_init(
        integrations=[FlagsIntegration(ignore_errors=["ignored-tx"], forwarders=[recorder])],
        traces_sample_rate=1.0,
    )

    with start_transaction("ignored-tx"):
        pass
    flush()
    assert flush_forwarders()

    assert [t["transaction"] for t in wait_for_transactions(sentry_receiver)] == ["ignored-tx"]
    assert recorder.views == []


# -- re-initialisation -------------------------------------------------------------------------


def test_every_init_uses_the_current_clients_options(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    users: dict[int, UserBeforeSend] = {}
    clients = []
    for i in range(5):
        options: dict[str, Any] = {}
        if i % 2 == 0:
            users[i] = options["before_send"] = UserBeforeSend(name=f"user-{i}")
        client = sentry_init(
            integrations=[
                FlagsIntegration(environment=f"env-{i}", ignore_errors=[f"drop-{i}"], logger=f"log-{i}")
            ],
            **options,
        )
        clients.append(client)

        assert raise_and_capture(f"drop-{i}") is None
        assert raise_and_capture(f"kept-{i} (drop-{i - 1})") is not None  # the old filter is gone
        flush()

    events = by_summary(received(sentry_receiver, 5))
    for i in range(5):
        event = events[f"kept-{i} (drop-{i - 1})"]
        assert event["environment"] == f"env-{i}"
        assert event["logger"] == f"log-{i}"
        assert event.get("tags", {}).get("seen_by") == (f"user-{i}" if i % 2 == 0 else None)
    for i, user in users.items():
        assert user.summaries == [f"kept-{i} (drop-{i - 1})"], i  # never called for later clients
    for i, client in enumerate(clients):
        assert client.options["environment"] == f"env-{i}"
    for client in clients[:-1]:
        client.close(timeout=2)


def test_init_without_the_integration_after_one_with_it(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    first_user = UserBeforeSend(name="first")
    first = sentry_init(
        integrations=[FlagsIntegration(environment="flags-env", ignore_errors=["dropped"])],
        before_send=first_user,
    )
    assert raise_and_capture("dropped") is None
    flush()

    second_user = UserBeforeSend(name="second")
    second = sentry_init(environment="plain-env", before_send=second_user)
    assert second.options["before_send"] is second_user  # not wrapped: no integration here
    set_launchdarkly_context(pytest.importorskip("ldclient").Context.create("not-attached"))
    assert raise_and_capture("dropped, but not by this client") is not None

    event = only_event(sentry_receiver)
    assert event["environment"] == "plain-env"
    assert event["tags"]["seen_by"] == "second"
    assert ld_context_of(event) is None
    assert first_user.seen == []
    first.close(timeout=2)


def test_same_integration_instance_across_inits_wraps_each_clients_before_send(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    integration = FlagsIntegration(environment="shared-env", ignore_errors=["dropped"])
    users = [UserBeforeSend(name="a"), None, UserBeforeSend(name="c")]
    clients = []
    for i, user in enumerate(users):
        clients.append(sentry_init(integrations=[integration], before_send=user))
        assert raise_and_capture(f"dropped {i}") is None
        raise_and_capture(f"kept {i}")
        flush()

    events = by_summary(received(sentry_receiver, 3))
    assert [events[f"kept {i}"].get("tags", {}).get("seen_by") for i in range(3)] == ["a", None, "c"]
    assert {e["environment"] for e in events.values()} == {"shared-env"}
    assert users[0].summaries == ["kept 0"]
    assert users[2].summaries == ["kept 2"]
    for client in clients[:-1]:
        client.close(timeout=2)


def test_composed_before_send_wraps_the_users_once(sentry_init: Callable[..., Any]) -> None:
    user = UserBeforeSend()
    client = sentry_init(integrations=[FlagsIntegration()], before_send=user)
    stage = client.options["before_send"]
    assert stage is not user
    assert callable(stage)

    # Setting the same client on more scopes must not wrap our stage in itself.
    sentry_sdk.get_current_scope().set_client(client)
    sentry_sdk.get_isolation_scope().set_client(client)
    assert client.options["before_send"] is stage

    stage({"message": "direct"}, {})
    assert user.summaries == ["direct"]


def test_regex_and_substring_state_is_per_integration(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlagsIntegration(ignore_errors=[re.compile("^ValueError: one$")])])
    assert raise_and_capture("one") is None
    flush()
    sentry_init(integrations=[FlagsIntegration(ignore_errors=["two"])])
    assert raise_and_capture("one") is not None
    assert raise_and_capture("two") is None

    assert summaries(sentry_receiver, 1) == ["one"]


# -- forwarding rate ------------------------------------------------------------------------------


def test_errors_over_the_forwarding_rate_still_go_to_sentry_and_are_counted(
    sentry_init: Callable[..., Any],
) -> None:
    from sentry_flags._rate import MIN_BURST

    recorder = RecordingForwarder()
    sentry_init(integrations=[FlagsIntegration(forwarders=[recorder], max_forwarded_per_second=0.01)])
    for i in range(MIN_BURST + 20):
        # Our stage passes every one on to Sentry (a dropped event has no id).
        assert raise_and_capture(f"storm {i}") is not None

    assert flush_forwarders()
    assert [v.exception_value for v in recorder.views] == [f"storm {i}" for i in range(MIN_BURST)]
    assert recorder.stats.rate_limited == 20
    assert recorder.stats.errors == MIN_BURST + 20 == recorder.stats.accounted


def test_the_forwarding_rate_defaults_to_a_bound_and_none_lifts_it() -> None:
    from sentry_flags._delivery import DEFAULT_MAX_PER_SECOND

    bounded = FlagsIntegration(forwarders=[RecordingForwarder()])
    assert bounded.delivery is not None
    assert bounded.delivery._bucket is not None
    assert bounded.delivery._bucket.rate == DEFAULT_MAX_PER_SECOND
    unbounded = FlagsIntegration(forwarders=[RecordingForwarder()], max_forwarded_per_second=None)
    assert unbounded.delivery is not None
    assert unbounded.delivery._bucket is None


@pytest.mark.parametrize("rate", [0, -2.5, float("nan"), float("inf"), True, "10"])
def test_the_forwarding_rate_must_be_a_positive_number(rate: Any) -> None:
    with pytest.raises(ValueError, match="max_forwarded_per_second"):
        FlagsIntegration(forwarders=[RecordingForwarder()], max_forwarded_per_second=rate)
