"""FlagsExtension: each Flask request's LaunchDarkly context rides on its errors."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Optional

import pytest

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")

import sentry_sdk  # noqa: E402
from ldclient import Context  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402

from helpers import SENTRY_SDK_MAJOR, flask_transaction, only_event, pii_options, received  # noqa: E402
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


# -- Flask-Login: capture reads only what the request holds, never the user_loader ------------------


def login_app(sentry_init: Callable[..., Any], *, pii: bool = False, **options: Any) -> Any:
    pytest.importorskip("flask_login")
    from flask_login_app import LoginApp, watch

    sentry_init(
        integrations=[FlaskIntegration(), FlagsIntegration()], before_send=watch.close, **pii_options(pii)
    )
    return LoginApp(**options)


@pytest.mark.parametrize("pii", [False, True])
def test_a_view_exception_carries_the_user_loaded_before_the_capture(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, pii: bool
) -> None:
    app = login_app(sentry_init, pii=pii)
    assert app.logged_in("42").get("/boom/v").status_code == 500  # the view never used current_user

    ctx = ld_context_of(only_event(sentry_receiver))
    assert ctx == (
        {"kind": "user", "key": "42", "name": "Ann", "email": "ann@example.com"}
        if pii
        else {
            "kind": "user",
            "key": "42",
        }
    )
    assert app.loads == [("42", False)]  # loaded before sentry-sdk captured, not while


def test_a_plugin_clients_private_attributes_apply_to_the_default_context(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
) -> None:
    # The LD client is hooked through its plugin only (no launchdarkly_client=): its private
    # attributes still apply to the context the extension builds, which no evaluation saw.
    from sentry_flags.launchdarkly import SentryFlagsPlugin

    app = login_app(sentry_init, pii=True)
    make_ld_client(
        update_processor_class=ld_test_data, plugins=[SentryFlagsPlugin()], private_attributes=["email"]
    )
    assert app.logged_in("42").get("/boom/v").status_code == 500

    assert ld_context_of(only_event(sentry_receiver)) == {
        "kind": "user", "key": "42", "name": "Ann", "_meta": {"redactedAttributes": ["email"]},
    }  # fmt: skip
    assert b"ann@example.com" not in sentry_receiver.requests[-1].raw_body


def test_an_error_reported_before_the_user_was_loaded_is_keyed_by_the_session_user_id(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # PII off: with it on, sentry-sdk's own FlaskIntegration reads current_user to set
    # Sentry's user (when the request starts on recent releases, while capturing on 2.26).
    app = login_app(sentry_init, pii=False)
    assert app.logged_in("42").get("/capture/r").status_code == 200

    # Nobody read the user, so there is nothing but its id: no name, no email.
    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": "42"}
    assert app.loads == []


def test_an_error_reported_after_the_view_used_its_user_carries_it(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init, pii=True)
    assert app.logged_in("7").get("/capture-after-user/u").status_code == 200

    assert ld_context_of(only_event(sentry_receiver)) == {
        "kind": "user",
        "key": "7",
        "name": "Bob",
        "email": "bob@example.com",
    }
    assert app.capture_loads() == []


def test_an_anonymous_visitor_is_anonymous_with_one_key_per_request_and_no_loader_call(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init)
    client = app.client()
    assert client.get("/capture/a?times=2").status_code == 200
    assert client.get("/boom/b").status_code == 500

    events = received(sentry_receiver, 3)
    contexts = [ld_context_of(e) for e in events]
    assert all(c["kind"] == "user" and c["anonymous"] is True for c in contexts)
    assert contexts[0]["key"] == contexts[1]["key"] != contexts[2]["key"]  # one key per request
    assert app.loads == []  # an empty session: nothing to load


def test_after_logout_in_the_request_the_visitor_is_anonymous(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init)
    client = app.logged_in("42")
    assert client.get("/logout").status_code == 200
    assert client.get("/capture/o").status_code == 200

    assert ld_context_of(only_event(sentry_receiver))["anonymous"] is True


def test_with_a_request_loader_an_unloaded_user_is_not_guessed(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init, request_loader=True)
    client = app.client()
    # Reported before anything loaded the user: only the request_loader could tell who this is.
    assert client.get("/capture/t", headers={"X-Token": "t42"}).status_code == 200
    # Raised by the view: loaded (by the request_loader) before sentry-sdk captured it.
    assert client.get("/boom/t", headers={"X-Token": "t42"}).status_code == 500

    first, second = received(sentry_receiver, 2)
    assert ld_context_of(first) is None  # rather than calling a logged-in user anonymous
    assert ld_context_of(second) == {"kind": "user", "key": "42"}
    assert app.loads == [("t42", False)]


def test_a_remember_me_login_is_not_guessed_before_the_user_is_loaded(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init)
    client = app.logged_in("42", remember=True)
    client.delete_cookie("session")  # the browser was closed: only the remember cookie is left
    assert client.get("/capture/c").status_code == 200
    assert client.get("/boom/c").status_code == 500

    first, second = received(sentry_receiver, 2)
    assert ld_context_of(first) is None
    assert ld_context_of(second) == {"kind": "user", "key": "42"}
    assert app.loads == [("42", False)]  # by the cookie, before the second capture


def test_with_strong_session_protection_an_unloaded_user_is_not_guessed(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init, protection="strong")
    client = app.logged_in("42")
    assert client.get("/capture/s").status_code == 200
    assert client.get("/boom/s").status_code == 500

    first, second = received(sentry_receiver, 2)
    assert ld_context_of(first) is None  # Flask-Login may yet drop this session
    assert ld_context_of(second) == {"kind": "user", "key": "42"}
    assert app.capture_loads() == []


def test_a_user_loader_that_fails_never_reaches_the_app(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init, loader_fails=True)
    response = app.logged_in("42").get("/boom/d")

    assert response.status_code == 500  # the view's own error, answered as Flask does
    event = only_event(sentry_receiver)
    assert event["exception"]["values"][-1]["value"] == "boom d"
    assert ld_context_of(event) == {"kind": "user", "key": "42"}  # what the session says
    assert app.loads == [("42", False)]


def test_a_builder_of_yours_gets_the_request_as_it_is(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    app = login_app(sentry_init, context_from_request=lambda request: Context.create("mine"))
    assert app.logged_in("42").get("/boom/m").status_code == 500

    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": "mine"}
    assert app.loads == []  # nobody loaded the user for it


def test_flask_login_is_never_imported_for_an_app_that_does_not_use_it(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    class NotInstalled:
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            if name.partition(".")[0] == "flask_login":
                asked.append(name)
                raise ImportError(name)

    for name in [m for m in sys.modules if m.partition(".")[0] == "flask_login"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NotInstalled(), *sys.meta_path])
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    client = make_app().test_client()
    assert client.get("/boom/n").status_code == 500

    assert ld_context_of(only_event(sentry_receiver))["anonymous"] is True
    assert asked == []


def test_without_our_integration_the_user_is_not_loaded_for_us(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    pytest.importorskip("flask_login")
    from flask_login_app import LoginApp

    sentry_init(integrations=[FlaskIntegration()])
    app = LoginApp()
    assert app.logged_in("42").get("/boom/n").status_code == 500

    assert ld_context_of(only_event(sentry_receiver)) is None
    assert app.loads == []  # the app's error path costs what it did without sentry-flags


@pytest.mark.parametrize("cookie", [False, True])
def test_the_extension_leaves_the_session_and_the_response_headers_alone(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, cookie: bool
) -> None:
    # Reading the session marks it accessed, and Flask then sends `Vary: Cookie`: a page
    # that never used the session would no longer be cached once per URL.
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    responses = []
    for with_extension in (False, True):
        app = flask.Flask("flags_headers_app")
        app.secret_key = "test"
        if with_extension:
            FlagsExtension(app)

        @app.route("/ok")
        def ok() -> str:
            return "ok"

        client = app.test_client()
        if cookie:
            with client.session_transaction() as session:
                session["visits"] = 1
        responses.append(client.get("/ok"))
    plain, ours = responses
    assert ours.status_code == plain.status_code == 200
    assert ours.headers.get("Vary") == plain.headers.get("Vary")
    assert ours.headers.getlist("Set-Cookie") == plain.headers.getlist("Set-Cookie")
    assert sentry_receiver.events == []
