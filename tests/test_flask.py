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

from helpers import (  # noqa: E402
    SENTRY_SDK_MAJOR,
    by_summary,
    flask_transaction,
    only_event,
    pii_options,
    raise_and_capture,
    received,
)
from receivers import SentryReceiver, wait_for  # noqa: E402
from sentry_flags import FlagsIntegration, set_launchdarkly_context  # noqa: E402
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


# -- no per-request hook: the request is found when an error is captured ---------------------------


def test_the_extension_adds_nothing_that_runs_per_request(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    app = make_app(lambda request: Context.create(request.args["user"]))

    for per_request in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        assert not any(per_request.values()), per_request
    assert app.test_client().get("/boom/h?user=u-h").status_code == 500
    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": "u-h"}


def test_an_app_without_the_extension_gets_no_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    ours = make_app(lambda request: Context.create("ours"))
    plain = flask.Flask("plain_app")
    plain.logger.disabled = True

    @plain.route("/boom/<name>")
    def boom(name: str) -> str:
        raise RuntimeError(f"boom {name}")

    assert ours.test_client().get("/boom/ours").status_code == 500
    assert plain.test_client().get("/boom/plain").status_code == 500

    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["boom ours"]) == {"kind": "user", "key": "ours"}
    assert ld_context_of(events["boom plain"]) is None


def test_a_context_stored_during_the_request_wins_over_the_requests_own(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    app = flask.Flask("precedence_app")

    @app.before_request
    def evaluate_early() -> None:
        # The app's own hook, registered before the extension: a flag evaluated there is the
        # request's latest context too.
        if "early" in flask.request.args:
            ld_client.variation("some-flag", Context.create("evaluated-early"), False)

    FlagsExtension(app, context_from_request=lambda request: Context.create("from-request"))

    @app.route("/capture/<name>")
    def capture(name: str) -> str:
        if name == "manual":
            set_launchdarkly_context(Context.create("manual"))
        elif name == "lazy":
            set_launchdarkly_context(lambda: Context.create("lazy"))
        elif name.startswith("cleared"):
            set_launchdarkly_context(None)
            if name == "cleared-then-evaluated":
                ld_client.variation("some-flag", Context.create("evaluated-after-clearing"), False)
        raise_and_capture(f"capture {name}")
        return "ok"

    client = app.test_client()
    names = ["nothing-stored", "manual", "lazy", "cleared", "cleared-then-evaluated", "early"]
    for name in names:
        assert client.get(f"/capture/{name}?early=1" if name == "early" else f"/capture/{name}").text == "ok"

    events = by_summary(received(sentry_receiver, len(names)))
    keys = {name: (ld_context_of(events[f"capture {name}"]) or {}).get("key") for name in names}
    assert keys == {
        "nothing-stored": "from-request",
        "manual": "manual",
        "lazy": "lazy",
        "cleared": None,  # set_launchdarkly_context(None): no context, not the request's
        "cleared-then-evaluated": "evaluated-after-clearing",
        "early": "evaluated-early",
    }


def test_a_context_the_request_inherited_does_not_win_over_its_own(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    service = Context.create("service")
    app = flask.Flask("inherited_app")
    app.logger.disabled = True
    FlagsExtension(app, context_from_request=lambda request: Context.create("from-request"))

    @app.route("/boom/<name>")
    def boom(name: str) -> str:
        if name == "evaluated-again":
            # The very Context evaluated at start-up, evaluated by this request: now its own.
            ld_client.variation("some-flag", service, False)
        raise RuntimeError(f"boom {name}")

    with sentry_sdk.isolation_scope():
        # At start-up, before any request: each request's isolation scope is forked from this one.
        ld_client.variation("some-flag", service, False)
        client = app.test_client()
        assert client.get("/boom/inherited").status_code == 500
        assert client.get("/boom/evaluated-again").status_code == 500
        raise_and_capture("outside any request")

    events = by_summary(received(sentry_receiver, 3))
    assert ld_context_of(events["boom inherited"]) == {"kind": "user", "key": "from-request"}
    assert ld_context_of(events["boom evaluated-again"]) == {"kind": "user", "key": "service"}
    assert ld_context_of(events["outside any request"]) == {"kind": "user", "key": "service"}


def test_an_error_outside_any_request_carries_no_request_context(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    app = make_app(lambda request: Context.create("from-request"))
    assert app.test_client().get("/ok").status_code == 200

    with app.app_context():  # an app context is no request
        raise_and_capture("in an app context")
    raise_and_capture("outside")

    for event in received(sentry_receiver, 2):
        assert ld_context_of(event) is None


def test_get_launchdarkly_context_in_a_request_is_what_its_errors_carry(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    from sentry_flags import get_launchdarkly_context

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    app = make_app(lambda request: Context.create(request.args["user"]))

    @app.route("/context")
    def context() -> str:
        if "clear" in flask.request.args:
            set_launchdarkly_context(None)
        found = get_launchdarkly_context()
        return "none" if found is None else found.key

    client = app.test_client()
    assert client.get("/context?user=u-1").text == "u-1"
    assert client.get("/context?user=u-1&clear=1").text == "none"
    assert get_launchdarkly_context() is None  # outside the request


def test_all_errors_of_a_request_share_one_anonymous_key(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    app = make_app()

    @app.route("/twice/<name>")
    def twice(name: str) -> str:
        raise_and_capture(f"{name} first")
        raise_and_capture(f"{name} second")
        return "ok"

    client = app.test_client()
    assert client.get("/twice/a").status_code == 200
    assert client.get("/twice/b").status_code == 200

    events = by_summary(received(sentry_receiver, 4))
    keys = {name: ld_context_of(event)["key"] for name, event in events.items()}
    assert all(ld_context_of(event)["anonymous"] is True for event in events.values())
    assert keys["a first"] == keys["a second"] != keys["b first"] == keys["b second"]


def test_an_error_after_flask_popped_the_request_context_carries_only_what_the_request_stored(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    # A streamed response's generator runs after the view returned; sentry-sdk's WSGI
    # middleware captures its error once Flask popped the request context, even with
    # stream_with_context (which pops it as the error leaves the generator).
    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    app = make_app(lambda request: Context.create("from-request"))

    @app.route("/stream/<name>")
    def stream(name: str) -> Any:
        if name == "evaluated":
            ld_client.variation("some-flag", Context.create("evaluated-in-the-view"), False)

        def chunks() -> Any:
            yield "first chunk"
            raise RuntimeError(f"stream {name}")

        return flask.Response(flask.stream_with_context(chunks()))

    client = app.test_client()
    for name in ("plain", "evaluated"):
        with pytest.raises(RuntimeError, match=f"stream {name}"):
            client.get(f"/stream/{name}").get_data()

    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["stream plain"]) is None
    assert ld_context_of(events["stream evaluated"]) == {"kind": "user", "key": "evaluated-in-the-view"}


@pytest.mark.parametrize("failing", ["owner", "slot"])
def test_a_failing_lookup_of_the_request_never_reaches_the_app(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    ld_client: Any,
    mocker: Any,
    failing: str,
) -> None:
    from sentry_flags import get_launchdarkly_context
    from sentry_flags.flask import _FLASK_REQUESTS

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    app = make_app(lambda request: Context.create("from-request"))

    @app.route("/evaluated")
    def evaluated() -> str:
        context = Context.create("evaluated")
        ld_client.variation("some-flag", context, False)
        ld_client.variation("other-flag", context, False)  # the same Context: its slot is kept
        raise RuntimeError("boom evaluated")

    @app.route("/context")
    def context() -> str:
        return repr(get_launchdarkly_context())

    lookup = mocker.patch.object(type(_FLASK_REQUESTS), failing, side_effect=RuntimeError("lookup failed"))
    client = app.test_client()
    assert client.get("/boom/plain").status_code == 500  # the view's own error, nothing of ours
    assert client.get("/evaluated").status_code == 500
    assert client.get("/context").text == "None"
    assert lookup.called

    events = by_summary(received(sentry_receiver, 2))
    assert ld_context_of(events["boom plain"]) is None
    # What the request stored still rides on its errors, with its flags.
    assert ld_context_of(events["boom evaluated"]) == {"kind": "user", "key": "evaluated"}
    flags = events["boom evaluated"]["contexts"]["flags"]["values"]
    assert flags == [{"flag": "some-flag", "result": False}, {"flag": "other-flag", "result": False}]


@pytest.mark.parametrize("stored", ["nothing", "set-by-hand", "evaluated"])
def test_a_copied_request_context_keeps_what_the_request_stored(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any, stored: str
) -> None:
    # flask.copy_current_request_context: another request context around the same request,
    # pushed in a thread. What the view stored is the request's, there too.
    from sentry_flags import get_launchdarkly_context

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration(launchdarkly_client=ld_client)])
    app = make_app(lambda request: Context.create("from-request"))
    seen: list[Optional[str]] = []

    @app.route("/background")
    def background() -> str:
        if stored == "set-by-hand":
            set_launchdarkly_context(Context.create("stored"))
        elif stored == "evaluated":
            ld_client.variation("some-flag", Context.create("evaluated"), False)

        @flask.copy_current_request_context
        def work() -> None:
            found = get_launchdarkly_context()
            seen.append(None if found is None else found.key)
            raise_and_capture("in the thread")

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=10)
        return "ok"

    assert app.test_client().get("/background").text == "ok"

    expected = {"nothing": "from-request", "set-by-hand": "stored", "evaluated": "evaluated"}[stored]
    assert seen == [expected]
    assert ld_context_of(only_event(sentry_receiver)) == {"kind": "user", "key": expected}


def test_without_per_request_scopes_each_request_keeps_the_context_it_evaluated(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver, ld_client: Any
) -> None:
    # No FlaskIntegration: every request on this thread shares one isolation scope, and the
    # slot the first request stored for a Context is still there when the second evaluates it.
    sentry_init(
        auto_enabling_integrations=False, integrations=[FlagsIntegration(launchdarkly_client=ld_client)]
    )
    app = flask.Flask("shared_scope_app")
    FlagsExtension(app, context_from_request=lambda request: Context.create("from-request"))
    shared = Context.create("evaluated")

    @app.route("/capture/<name>")
    def capture(name: str) -> str:
        ld_client.variation("some-flag", shared, False)
        raise_and_capture(f"capture {name}")
        return "ok"

    client = app.test_client()
    for name in ("first", "second", "third"):
        assert client.get(f"/capture/{name}").text == "ok"

    events = by_summary(received(sentry_receiver, 3))
    for name in ("first", "second", "third"):
        assert ld_context_of(events[f"capture {name}"]) == {"kind": "user", "key": "evaluated"}, name


def test_threads_of_one_request_share_its_anonymous_key(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # Two threads of one request (copy_current_request_context) capture at once: both find
    # the request without a key and make one; the request keeps one key for both.
    from sentry_flags.flask import _ANONYMOUS_KEY

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()])
    app = make_app()
    both_looked = threading.Barrier(2)
    looking = threading.Lock()
    looked: list[str] = []

    class Environ(dict):  # type: ignore[type-arg]
        """The WSGI environ, as an outer middleware may hand it on: the first two look-ups of
        the anonymous key wait for each other, as two threads may interleave."""

        def get(self, key: Any, default: Any = None) -> Any:
            found = super().get(key, default)
            if key == _ANONYMOUS_KEY:
                with looking:
                    looked.append(key)
                    wait = len(looked) <= 2
                if wait:
                    both_looked.wait(timeout=10)
            return found

    wsgi_app = app.wsgi_app
    app.wsgi_app = lambda environ, start_response: wsgi_app(Environ(environ), start_response)  # type: ignore[method-assign]

    @app.route("/threads")
    def threads() -> str:
        @flask.copy_current_request_context
        def work(i: int) -> None:
            raise_and_capture(f"thread {i}")

        started = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join(timeout=20)
        return "ok"

    assert app.test_client().get("/threads").text == "ok"

    events = by_summary(received(sentry_receiver, 2))
    first, second = (ld_context_of(events[f"thread {i}"]) for i in range(2))
    assert first["anonymous"] is True
    assert first["key"] == second["key"]
