"""A Flask app with a real Flask-Login, whose ``user_loader`` counts its calls.

Each call is recorded with whether an error was being captured at that moment: a capture is
watched from the event processors (a global one of ours) to the app's ``before_send``
(``watch.close``); our stage, which builds the context, runs in between.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import flask
import flask_login
import sentry_sdk

from sentry_flags.flask import FlagsExtension


class CaptureWatch:
    """Whether sentry-sdk is capturing an event right now (on any thread)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.captures = 0
        sentry_sdk.scope.add_global_event_processor(self._opened)

    def _opened(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        self.open.set()
        return event

    def close(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        self.open.clear()
        self.captures += 1
        return event


watch = CaptureWatch()


class User(flask_login.UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str, name: str, email: str) -> None:
        self.id = user_id
        self.name = name
        self.email = email


USERS = {"42": User("42", "Ann", "ann@example.com"), "7": User("7", "Bob", "bob@example.com")}
TOKENS = {"t42": "42"}


class LoginApp:
    """The app, its ``LoginManager`` and what its loaders were asked."""

    def __init__(
        self,
        *,
        request_loader: bool = False,
        protection: Optional[str] = "basic",
        loader_fails: bool = False,
        context_from_request: Any = None,
    ) -> None:
        self.loads: list[tuple[str, bool]] = []  # (user id or token, while capturing)
        watch.open.clear()  # an earlier test's capture without watch.close
        app = self.app = flask.Flask("login_app")
        app.secret_key = "sentry-flags-tests"
        app.logger.disabled = True
        manager = self.manager = flask_login.LoginManager(app)
        manager.session_protection = protection

        @manager.user_loader
        def load_user(user_id: str) -> Optional[User]:
            self.loads.append((user_id, watch.open.is_set()))
            if loader_fails:
                raise ConnectionError("the user database is down")
            return USERS.get(user_id)

        if request_loader:

            @manager.request_loader
            def load_from_request(request: flask.Request) -> Optional[User]:
                token = request.headers.get("X-Token", "")
                self.loads.append((token, watch.open.is_set()))
                return USERS.get(TOKENS.get(token, ""))

        FlagsExtension(app, context_from_request=context_from_request)

        @app.route("/login/<user_id>")
        def login(user_id: str) -> str:
            flask_login.login_user(USERS[user_id], remember=flask.request.args.get("remember") == "1")
            return "in"

        @app.route("/logout")
        def logout() -> str:
            flask_login.logout_user()
            return "out"

        @app.route("/boom/<name>")
        def boom(name: str) -> str:
            raise RuntimeError(f"boom {name}")  # never touches current_user

        @app.route("/capture/<name>")
        def capture(name: str) -> str:
            # Reported by the view itself, before anything loaded the request's user.
            for _ in range(int(flask.request.args.get("times", "1"))):
                sentry_sdk.capture_exception(RuntimeError(f"boom {name}"))
            return "reported"

        @app.route("/capture-after-user/<name>")
        def capture_after_user(name: str) -> str:
            flask_login.current_user.is_authenticated  # noqa: B018 - the view uses its user
            sentry_sdk.capture_exception(RuntimeError(f"boom {name}"))
            return "reported"

    def client(self) -> Any:
        return self.app.test_client()

    def logged_in(self, user_id: str = "42", *, remember: bool = False) -> Any:
        """A test client whose session has ``user_id`` logged in (no loader call: login_user
        is given the user)."""
        client = self.client()
        assert client.get(f"/login/{user_id}?remember={int(remember)}").status_code == 200
        return client

    def capture_loads(self) -> list[str]:
        """The loader calls made while an error was being captured: must be none."""
        return [who for who, capturing in self.loads if capturing]
