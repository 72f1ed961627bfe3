"""A framework's private name gone in the installed release: the feature steps aside.

Each name is taken away the way a release that renamed it would (Django's lazy user keeping
what it wraps elsewhere, its ``get_user``/``auser`` caching under other names; Flask-Login
keeping its user and its session key elsewhere), and requests go through the real Django and
Flask test clients. The app answers as it always does; the error carries no context, or the
one the request itself shows, never a wrong one; the step aside is warned about once and
counted.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from helpers import ld_context_of, only_event, pii_options, received, warnings_about
from receivers import SentryReceiver
from sentry_flags import FlagsIntegration
from sentry_flags._private import stepped_aside

# Django's test client bypasses the handler sentry-sdk patches to fork a scope per request.
pytestmark = pytest.mark.usefixtures("own_isolation_scope")


@pytest.fixture(autouse=True)
def _fresh(fresh_private: None) -> None:
    """No step aside counted or warned about yet in this process (conftest's fresh_private)."""


# -- Django -----------------------------------------------------------------------------------


@pytest.fixture
def django_init(
    sentry_init: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    pytest.importorskip("django")
    pytest.importorskip("ldclient")
    from sentry_sdk.integrations.django import DjangoIntegration

    from django_project.settings import configure
    from sentry_flags import _django

    configure(str(tmp_path_factory.mktemp("django") / "db.sqlite3"))
    # What check_user_caches decided stays for the process: put it back after the test.
    monkeypatch.setattr(_django, "_trusted", _django._trusted)

    def start() -> Any:
        return sentry_init(integrations=[DjangoIntegration(), FlagsIntegration()], **pii_options(False))

    return start


def logged_in_django(*, asynchronous: bool = False) -> tuple[Any, str]:
    import uuid

    from django.contrib.auth.models import User
    from django.test import AsyncClient, Client

    user = User.objects.create_user(username=f"u-{uuid.uuid4().hex[:12]}", password="pw")
    browser = (
        AsyncClient(raise_request_exception=False) if asynchronous else Client(raise_request_exception=False)
    )
    browser.force_login(user)
    return browser, str(user.pk)


def lazy_object_keeping_its_target_elsewhere() -> type:
    """A ``SimpleLazyObject`` of a Django that keeps what it wraps under another name."""
    from django.utils.functional import SimpleLazyObject, empty

    class Renamed(SimpleLazyObject):  # type: ignore[misc]
        def __getattribute__(self, name: str) -> Any:
            if name == "_wrapped":
                return object.__getattribute__(self, "__dict__").get("_target", empty)
            return super().__getattribute__(name)

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "_wrapped":
                object.__getattribute__(self, "__dict__")["_target"] = value
            else:
                super().__setattr__(name, value)

    return Renamed


def get_user_caching_elsewhere(request: Any) -> Any:
    """``django.contrib.auth.middleware.get_user`` of a Django that caches under another name."""
    from django.contrib import auth

    if not hasattr(request, "_user_cache"):
        request._user_cache = auth.get_user(request)
    return request._user_cache


async def auser_caching_elsewhere(request: Any) -> Any:
    """``django.contrib.auth.middleware.auser`` of a Django that caches under another name."""
    from django.contrib import auth

    if not hasattr(request, "_auser_cache"):
        request._auser_cache = await auth.aget_user(request)
    return request._auser_cache


def test_without_lazy_objects_wrapped_djangos_cache_still_tells_the_loaded_user(
    django_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.contrib.auth import middleware

    from sentry_flags._django import WRAPPED

    monkeypatch.setattr(middleware, "SimpleLazyObject", lazy_object_keeping_its_target_elsewhere())
    django_init()
    browser, pk = logged_in_django()
    assert browser.get("/capture-after-user/w").status_code == 200
    assert browser.get("/capture-after-user/x").status_code == 200

    events = received(sentry_receiver, 2)
    assert [ld_context_of(e) for e in events] == [{"kind": "user", "key": pk}] * 2
    assert len(warnings_about(caplog, WRAPPED)) == 1
    assert stepped_aside()[WRAPPED.path] == 2


def test_without_wrapped_and_cached_user_a_view_exception_carries_no_context(
    django_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.contrib.auth import middleware

    from sentry_flags._django import CACHED_USER, WRAPPED

    monkeypatch.setattr(middleware, "SimpleLazyObject", lazy_object_keeping_its_target_elsewhere())
    monkeypatch.setattr(middleware, "get_user", get_user_caching_elsewhere)
    django_init()
    browser, _ = logged_in_django()
    assert browser.get("/boom/a").status_code == 500  # the app answers as it always does
    assert browser.get("/boom/b").status_code == 500

    events = received(sentry_receiver, 2)
    assert [ld_context_of(e) for e in events] == [None, None]  # who it is cannot be told: none
    assert len(warnings_about(caplog, WRAPPED)) == 1
    assert len(warnings_about(caplog, CACHED_USER)) == 1  # found when the middleware started


def test_without_acached_user_an_error_after_auser_carries_no_context(
    django_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import django

    if django.VERSION < (5, 0):
        pytest.skip("request.auser() is Django 5.0+")
    from django.contrib.auth import middleware

    from sentry_flags._django import ACACHED_USER

    monkeypatch.setattr(middleware, "auser", auser_caching_elsewhere)
    django_init()
    browser, _ = logged_in_django(asynchronous=True)

    async def go() -> int:
        response = await browser.get("/async/capture-after-auser/c")
        return int(response.status_code)

    assert asyncio.run(go()) == 200
    assert ld_context_of(only_event(sentry_receiver)) is None
    assert len(warnings_about(caplog, ACACHED_USER)) == 1


# -- Flask-Login ------------------------------------------------------------------------------


@pytest.fixture
def flask_init(sentry_init: Callable[..., Any]) -> Callable[..., Any]:
    pytest.importorskip("flask_login")
    pytest.importorskip("ldclient")
    from sentry_sdk.integrations.flask import FlaskIntegration

    from flask_login_app import watch

    def start() -> Any:
        return sentry_init(
            integrations=[FlaskIntegration(), FlagsIntegration()],
            before_send=watch.close,
            **pii_options(False),
        )

    return start


def test_without_g_login_user_errors_are_keyed_by_the_session_user_id(
    flask_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import flask
    import flask_login
    import flask_login.utils

    from flask_login_app import LoginApp
    from sentry_flags._flask_login import LOGIN_USER

    # A Flask-Login that keeps the request's user under another name on g.
    def keep(self: Any, user: Any = None) -> None:
        flask.g.flask_login_user = self.anonymous_user() if user is None else user

    def get_user() -> Any:
        if "flask_login_user" not in flask.g:
            flask.current_app.login_manager._load_user()
        return flask.g.flask_login_user

    monkeypatch.setattr(flask_login.LoginManager, "_update_request_context_with_user", keep)
    monkeypatch.setattr(flask_login.utils, "_get_user", get_user)
    flask_init()
    app = LoginApp()
    client = app.logged_in("42")
    assert client.get("/boom/a").status_code == 500
    assert client.get("/boom/b").status_code == 500

    events = received(sentry_receiver, 2)
    assert [ld_context_of(e) for e in events] == [{"kind": "user", "key": "42"}] * 2
    assert app.capture_loads() == []
    assert len(warnings_about(caplog, LOGIN_USER)) == 1


def test_without_the_session_key_an_unloaded_user_gives_no_context(
    flask_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import flask_login.config

    from flask_login_app import LoginApp
    from sentry_flags._flask_login import SESSION_USER_ID

    # A Flask-Login whose SESSION_KEYS say the user id is kept under another key.
    monkeypatch.setattr(
        flask_login.config, "SESSION_KEYS", (flask_login.config.SESSION_KEYS - {"_user_id"}) | {"_uid"}
    )
    flask_init()
    app = LoginApp()
    client = app.logged_in("42")
    assert client.get("/capture/a").status_code == 200
    assert client.get("/capture/b").status_code == 200
    assert client.get("/boom/c").status_code == 500

    events = received(sentry_receiver, 3)
    # Not "anonymous": whoever it is cannot be told without the user_loader.
    assert [ld_context_of(e) for e in events[:2]] == [None, None]
    assert ld_context_of(events[2]) == {"kind": "user", "key": "42"}  # loaded before the capture
    assert app.capture_loads() == []
    assert len(warnings_about(caplog, SESSION_USER_ID)) == 1
