"""FlagsExtension: each Flask request's LaunchDarkly context rides on its errors."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import pytest

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")

from ldclient import Context  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402

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

    sentry_init(integrations=[FlaskIntegration(), FlagsIntegration()], send_default_pii=pii)
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
