"""FlagsExtension: each Flask request's LaunchDarkly context rides on its errors."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import pytest

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")

import sentry_sdk  # noqa: E402
from ldclient import Context  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402

from helpers import SENTRY_SDK_MAJOR, flask_transaction, pii_options  # noqa: E402
from receivers import SentryReceiver, wait_for  # noqa: E402
from sentry_flags import FlagsIntegration  # noqa: E402
from sentry_flags.flask import FlagsExtension  # noqa: E402


def make_app(context_from_request: Optional[Callable[[Any], Any]] = None, ld: Any = None) -> Any:
    app = flask.Flask("flags_test_app")
    app.logger.disabled = True
    FlagsExtension(app, context_from_request=context_from_request)

    @app.route("/boom/<name>")
    def boom(name: str) -> str:
        if ld is not None:
            ld.variation("some-flag", Context.create(f"evaluated-{name}"), False)
        raise RuntimeError(f"boom {name}")

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    return app


def ld_context_of(event: dict[str, Any]) -> Any:
    return event["contexts"].get("launchdarklyContext")


def test_default_context_is_anonymous_without_a_login(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    make_app().test_client().get("/boom/x")
    (event,) = wait_for(lambda: sentry_receiver.events)
    ctx = ld_context_of(event)
    assert ctx["kind"] == "user"
    assert ctx["anonymous"] is True
    assert len(ctx["key"]) == 32  # a fresh random key per request


def test_context_from_request_is_built_only_when_an_error_is_captured(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    calls: list[str] = []

    def context_for(request: Any) -> Context:
        calls.append(request.path)
        return Context.builder(request.args["user"]).kind("user").set("plan", "pro").build()

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    client = make_app(context_for).test_client()
    for _ in range(5):
        assert client.get("/ok?user=u1").status_code == 200
    assert calls == []  # requests without errors never build a context

    client.get("/boom/a?user=u2")
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert calls == ["/boom/a"]
    assert ld_context_of(event) == {"kind": "user", "key": "u2", "plan": "pro"}


def test_an_evaluation_later_in_the_request_wins(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    app = make_app(lambda request: Context.create("from-request"), ld=ld_client)
    app.test_client().get("/boom/z")
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert ld_context_of(event) == {"kind": "user", "key": "evaluated-z"}


def test_a_failing_builder_never_reaches_the_app(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    def broken(request: Any) -> Context:
        raise KeyError("no user")

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    response = make_app(broken).test_client().get("/boom/b")
    assert response.status_code == 500  # the view's own error, nothing of ours
    (event,) = wait_for(lambda: sentry_receiver.events)
    assert event["exception"]["values"][-1]["value"] == "boom b"
    assert ld_context_of(event) is None


@pytest.mark.parametrize("pii", [False, True])
def test_login_user_name_and_email_only_with_pii(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, pii: bool
) -> None:
    from sentry_flags._web import default_context

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()], **pii_options(pii))
    ctx = default_context(42, name="Ann", email="ann@example.com")
    assert ctx.key == "42"
    assert (ctx.get("email") == "ann@example.com") is pii
    assert (ctx.name == "Ann") is pii


def test_concurrent_requests_keep_their_own_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    app = make_app(lambda request: Context.create(request.args["user"]))
    barrier = threading.Barrier(20)

    def hit(i: int) -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        client.get(f"/boom/{i}?user=user-{i}")

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    events = wait_for(lambda: len(sentry_receiver.events) >= 20 and sentry_receiver.events)
    for event in events:
        i = event["exception"]["values"][-1]["value"].split()[-1]
        assert ld_context_of(event)["key"] == f"user-{i}"


def test_init_app_factory_pattern_and_bad_option() -> None:
    ext = FlagsExtension()
    app = flask.Flask("factory")
    ext.init_app(app)
    assert app.extensions["sentry_flags"] is ext
    with pytest.raises(TypeError, match="context_from_request"):
        FlagsExtension(context_from_request="not callable")  # type: ignore[arg-type]


# -- transaction names, and so Split's culprit event types ---------------------------------------


def _order_error(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    split_client: Any,
    split_receiver: Any,
    *,
    keep_endpoint_names: bool,
) -> tuple[str, set[str]]:
    """An error in a Flask view with a URL variable, forwarded to Split with its culprit
    event: the Sentry event's transaction and the event types Split got."""
    from sentry_flags.forwarders import SplitForwarder

    forwarder = SplitForwarder(split_client, identities={"user": "user.id"}, capture_culprit=True)
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(forwarders=[forwarder])])
    app = flask.Flask("culprit_app")
    app.logger.disabled = True
    FlagsExtension(app)

    if keep_endpoint_names:

        @app.before_request
        def name_by_endpoint() -> None:
            # How an app on sentry-sdk 3 keeps 2.x's names: FlaskIntegration names the
            # transaction when the request starts, and before_request runs after that.
            if flask.request.endpoint:
                sentry_sdk.get_current_scope().set_transaction_name(flask.request.endpoint)

    @app.route("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        sentry_sdk.set_user({"id": "u-1"})
        raise RuntimeError(f"order {order_id} failed")

    assert app.test_client().get("/orders/7").status_code == 500
    sentry_sdk.flush()
    (event,) = wait_for(lambda: sentry_receiver.events)
    return event["transaction"], {e["eventTypeId"] for e in split_receiver.wait_for_events(2)}


def test_split_culprit_event_types_follow_flasks_transaction_names(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, split_client: Any, split_receiver: Any
) -> None:
    from sentry_flags.forwarders.split import culprit_event_type

    transaction, event_types = _order_error(
        sentry_init, sentry_receiver, split_client, split_receiver, keep_endpoint_names=False
    )

    assert transaction == flask_transaction("order", "/orders/<int:order_id>")
    if SENTRY_SDK_MAJOR >= 3:  # the URL rule: not a valid Split event type as is, so slug + hash
        assert event_types == {"sentry_exception", culprit_event_type("sentry_exception", transaction)}
        assert culprit_event_type("sentry_exception", transaction).startswith(
            "sentry_exception:orders_int_order_id-"
        )
    else:
        assert event_types == {"sentry_exception", "sentry_exception:order"}


def test_an_app_keeps_endpoint_transaction_names_on_every_major(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, split_client: Any, split_receiver: Any
) -> None:
    transaction, event_types = _order_error(
        sentry_init, sentry_receiver, split_client, split_receiver, keep_endpoint_names=True
    )

    assert transaction == "order"
    assert event_types == {"sentry_exception", "sentry_exception:order"}
