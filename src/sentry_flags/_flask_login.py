"""Flask-Login's private names sentry-flags reads, and why no public API serves.

Both answer, while an error is captured, who the request's user is without loading it:
Flask-Login's public ``current_user`` runs the app's ``user_loader`` (a database read,
typically) when the request has not used it yet, and nothing public says whether it has.

- ``g._login_user``: the user Flask-Login loaded for this request (what ``current_user``
  gives once loaded; ``login_user`` and ``logout_user`` set it too). Without it a loaded
  user is not recognised: the error is keyed by the session's user id without name or
  email, as for a user the request never loaded.
- ``session["_user_id"]``: the id ``login_user`` keeps in Flask's session, which Flask opened
  when the request started, so reading it reads nothing. It is what ``user_loader`` would
  be given, and what ``get_id()`` returned at login. Flask-Login's public ``SESSION_KEYS``
  lists the keys it keeps in the session: one without ``_user_id`` means the id is kept
  elsewhere, and then an error captured before the request loaded its user carries no
  context, rather than calling a logged-in user anonymous.

Public and used as such: ``app.login_manager`` (whether the app uses Flask-Login at all),
``LoginManager.request_callback`` and ``.session_protection``, ``COOKIE_NAME`` and
``AUTH_HEADER_NAME`` and the config keys that override them, ``current_user``. The module
never imports Flask-Login: an app that uses it has imported it.

Tested on Flask-Login 0.6.3, both the declared floor (tox env ``deps-oldest``; 0.6.2 does not
import with the Werkzeug Flask 2.3.3 installs) and the newest release (the default envs). A
name gone in another release makes its feature step aside
(:func:`sentry_flags._private.step_aside`): counted, one warning, never an exception.
"""

from __future__ import annotations

import sys
from typing import Any

from sentry_flags._private import PrivateName, step_aside

__all__ = [
    "LOGIN_USER",
    "NOT_LOADED",
    "PRIVATE_NAMES",
    "SESSION_USER_ID",
    "UNKNOWN",
    "check_loaded",
    "flask_login",
    "loaded_user",
    "session_user_id",
]

LOGIN_USER = PrivateName(
    "flask-login",
    "g._login_user",
    "the user Flask-Login loaded for the request, read without loading it",
    "errors are keyed by the session's user id, without name or email",
)
SESSION_USER_ID = PrivateName(
    "flask-login",
    'session["_user_id"]',
    "the logged-in user's id, read from the session without loading the user",
    "an error captured before the request loaded its user carries no launchdarklyContext",
)
PRIVATE_NAMES = (LOGIN_USER, SESSION_USER_ID)


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NOT_LOADED: Any = _Marker("NOT_LOADED")  # loaded_user: the request has not loaded its user
UNKNOWN: Any = _Marker("UNKNOWN")  # session_user_id: this Flask-Login keeps the id elsewhere


def flask_login() -> Any:
    """The ``flask_login`` module if something imported it, else None. Imports nothing."""
    return sys.modules.get("flask_login")


def loaded_user(g: Any) -> Any:
    """The user Flask-Login loaded into ``g`` (the request's ``flask.g``), or :data:`NOT_LOADED`."""
    return getattr(g, "_login_user", NOT_LOADED)


def check_loaded(g: Any) -> None:
    """Called right after ``current_user`` loaded the user: if ``g`` does not have it, this
    Flask-Login keeps it elsewhere."""
    if loaded_user(g) is NOT_LOADED:
        step_aside(LOGIN_USER)


def session_user_id(session: Any) -> Any:
    """The logged-in user's id in ``session``; None when nobody is logged in there;
    :data:`UNKNOWN` when this Flask-Login does not keep it under ``_user_id``."""
    module = flask_login()
    if module is None:
        return UNKNOWN
    keys = getattr(getattr(module, "config", None), "SESSION_KEYS", None)
    if not isinstance(keys, (set, frozenset, list, tuple)) or "_user_id" not in keys:
        step_aside(SESSION_USER_ID)
        return UNKNOWN
    user_id = session.get("_user_id")
    return None if user_id is None or user_id == "" else user_id
