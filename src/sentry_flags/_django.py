# mypy: disable-error-code="import-untyped"
"""Django's private names sentry-flags reads, and why no public API serves.

All three answer one question while an error is captured: has this request loaded its user
yet, and if so, who is it? ``request.user`` is a lazy object; the public way to ask it
anything loads the user (a session read and a user query), which must not happen while an
error is captured, and on an event loop must not happen at all.

- ``LazyObject._wrapped``: what a lazy object holds, Django's ``empty`` until it is
  evaluated. Read from the instance's ``__dict__`` (where ``LazyObject`` keeps it), never
  through the object, which would load it. Without it only Django's caches below tell: a
  user loaded by a lazy object that is not AuthenticationMiddleware's counts as not loaded.
- ``HttpRequest._cached_user``: where ``django.contrib.auth.middleware.get_user`` (what
  AuthenticationMiddleware's lazy ``request.user`` runs) keeps the user it loaded.
- ``HttpRequest._acached_user``: where ``request.auser()`` (Django 5.0+) keeps it. After
  ``await request.auser()`` the lazy ``request.user`` is still unevaluated: this is the only
  sign that the user is known.

A cache name Django's functions no longer use is found when the middleware starts
(:func:`check_user_caches`, which reads their code and runs nothing); a lazy object without
``_wrapped`` when an error is captured. Either way the name steps aside
(:func:`sentry_flags._private.step_aside`: counted, one warning, never an exception) and is
no longer read: an error captured before the request's user is known, in a request with a
session, carries no context rather than a wrong one.

Tested on Django 4.2 (the declared floor, tox env ``deps-oldest``; it has no ``auser``) and
the newest release (5.2 when this was written, the default envs).
"""

from __future__ import annotations

import logging
from types import CodeType
from typing import Any

from django.utils.functional import LazyObject, empty

from sentry_flags._private import PrivateName, step_aside

__all__ = [
    "ACACHED_USER",
    "CACHED_USER",
    "NOT_LOADED",
    "PRIVATE_NAMES",
    "WRAPPED",
    "check_user_caches",
    "loaded_user",
]

WRAPPED = PrivateName(
    "django",
    "LazyObject._wrapped",
    "telling whether the lazy request.user is loaded, without loading it",
    "only Django's own caches on the request tell; an error captured before they do, in a "
    "request with a session, carries no launchdarklyContext",
)
CACHED_USER = PrivateName(
    "django",
    "HttpRequest._cached_user",
    "the user AuthenticationMiddleware's request.user loaded",
    "a user loaded that way is known only from the lazy request.user itself",
)
ACACHED_USER = PrivateName(
    "django",
    "HttpRequest._acached_user",
    "the user request.auser() loaded",
    "an error captured after `await request.auser()`, before request.user was used, in a "
    "request with a session, carries no launchdarklyContext",
)
PRIVATE_NAMES = (WRAPPED, CACHED_USER, ACACHED_USER)

logger = logging.getLogger("sentry_flags")


class _NotLoaded:
    def __repr__(self) -> str:
        return "NOT_LOADED"


NOT_LOADED: Any = _NotLoaded()  # what loaded_user gives for a user nobody loaded yet
_GONE = object()

# The caches Django's functions still use (check_user_caches drops the others).
_CACHES = frozenset({"_cached_user", "_acached_user"})
_trusted = _CACHES


def loaded_user(request: Any) -> Any:
    """``request.user`` if it is loaded (or not a lazy object at all), else :data:`NOT_LOADED`.

    Reads nothing from the session or the database, and never evaluates the lazy object.
    """
    user = getattr(request, "user", None)
    if not isinstance(user, LazyObject):
        return user
    target = _lazy_target(user)
    if target is _GONE:
        step_aside(WRAPPED)
    elif target is not empty:
        return target
    for cached in ("_cached_user", "_acached_user"):  # set by Django's get_user / auser
        if cached in _trusted and hasattr(request, cached):
            return getattr(request, cached)
    return NOT_LOADED


def _lazy_target(user: LazyObject) -> Any:
    # From the instance's __dict__, where LazyObject keeps it: asking the object itself for
    # a name it lacks would evaluate it (its __getattr__ loads the user).
    try:
        held = object.__getattribute__(user, "__dict__")
    except AttributeError:
        return _GONE
    return held.get("_wrapped", _GONE) if isinstance(held, dict) else _GONE


def check_user_caches() -> None:
    """Stop reading a cache Django's ``get_user``/``auser`` no longer use (warned once).

    Called when a middleware starts. Reads their code objects (the names they reference);
    runs nothing. Django 4.2 has no ``auser``: nothing to check there.
    """
    global _trusted
    try:
        from django.contrib.auth import middleware
    except Exception:  # no auth app: nothing loads users, nothing to check
        logger.debug("django.contrib.auth is not importable", exc_info=True)
        return
    trusted = set(_CACHES)
    for function, cached, name in (
        (getattr(middleware, "get_user", None), CACHED_USER.names[0], CACHED_USER),
        (getattr(middleware, "auser", None), ACACHED_USER.names[0], ACACHED_USER),
    ):
        if function is None and name is ACACHED_USER:
            continue  # before Django 5.0
        if not _references(function, cached):
            trusted.discard(cached)
            step_aside(name)
    _trusted = frozenset(trusted)


def _references(function: Any, name: str) -> bool:
    code = getattr(function, "__code__", None)
    return isinstance(code, CodeType) and (name in code.co_consts or name in code.co_names)
