# mypy: disable-error-code="import-untyped"
"""Django: the LaunchDarkly context of each request, built only if an error is captured.

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "sentry_flags.django.FlagsMiddleware",
        ...,
    ]
    SENTRY_FLAGS = {"CONTEXT": "myapp.flags.context_for"}  # optional: (request) -> Context | None

By default a logged-in user is a ``user`` context keyed by ``str(user.pk)`` (name and
email only when the Sentry client allows PII), anyone else an anonymous ``user`` context.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import sentry_sdk

from sentry_flags._context import set_launchdarkly_context
from sentry_flags._sentry import sentry_isolates_request
from sentry_flags._web import (
    AnonymousKey,
    default_context,
    request_isolation,
    require_launchdarkly,
)

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections
    from django.utils.crypto import salted_hmac
    from django.utils.functional import LazyObject, empty
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("sentry_flags.django needs Django: pip install 'sentry-flags[django]'") from exc

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase
    from ldclient import Context

__all__ = ["FlagsMiddleware", "default_request_context"]

logger = logging.getLogger("sentry_flags")

SETTING = "SENTRY_FLAGS"
SETTING_KEYS = frozenset({"CONTEXT"})
SESSION_SALT = "sentry_flags.django.anonymous"
USER_LOAD_TIMEOUT = 2.0  # seconds an error captured on an event loop may wait for its user

ContextForRequest = Callable[["HttpRequest"], Optional["Context"]]


class FlagsMiddleware:
    """Makes each request's LaunchDarkly context known to Sentry's error pipeline.

    Works in sync and async stacks. Per request it stores only a lazy provider: the
    context is built when an error is captured, and an LD flag evaluation later in the
    request replaces it (the latest context wins).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.context_for = _configured_builder()
        if self.context_for is None:
            require_launchdarkly("sentry_flags.django.FlagsMiddleware")
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        if sentry_isolates_request():  # the common case, without a context manager's cost
            self._remember(request)
            return self.get_response(request)
        with sentry_sdk.isolation_scope():
            self._remember(request)
            return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        with request_isolation():
            self._remember(request)
            response: HttpResponseBase = await self.get_response(request)
            return response

    def _remember(self, request: HttpRequest) -> None:
        builder = self.context_for
        if builder is not None:
            set_launchdarkly_context(lambda: builder(request))
            return
        anonymous = AnonymousKey()
        set_launchdarkly_context(lambda: default_request_context(request, anonymous))


def default_request_context(
    request: HttpRequest, anonymous_key: Optional[Callable[[], str]] = None
) -> Optional[Context]:
    """The default context of ``request``: its user, or an anonymous visitor.

    An anonymous visitor is keyed by a keyed hash of the session key when there is a
    session (the same visitor across requests, without the session key itself ever
    leaving the app: it is a credential), else by a random key kept for the request.
    An error captured on an event loop's thread, before the request loaded its user,
    loads it on a helper thread: Django refuses database access on the loop's thread.
    """
    user = _loaded_user(request)
    if user is _UNKNOWN:
        user = _load_off_loop(request)
    if user is _UNKNOWN:
        return None  # better no context than calling a logged-in user anonymous
    if user is not None and getattr(user, "is_authenticated", False):
        return default_context(user.pk, name=_name_of(user), email=_email_of(user))
    key = _session_hash(request) or (anonymous_key or AnonymousKey())()
    return default_context(None, anonymous_key=key)


_UNKNOWN = object()

# Django's private names used here (tests/test_private_names.py checks the list against the
# source): whether request.user is loaded yet, without loading it (a query, which must not
# run on an event loop): LazyObject._wrapped is `empty` until then, and django.contrib.auth's
# get_user()/auser() cache what they load on the request.
PRIVATE_NAMES = ("LazyObject._wrapped", "HttpRequest._cached_user", "HttpRequest._acached_user")


def _loaded_user(request: HttpRequest) -> Any:
    user = getattr(request, "user", None)
    if not isinstance(user, LazyObject) or user._wrapped is not empty:
        return user
    for cached in ("_cached_user", "_acached_user"):  # set by Django's get_user / auser
        if hasattr(request, cached):
            return getattr(request, cached)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return user  # sync code: evaluating the lazy user is fine here
    return _UNKNOWN


def _load_off_loop(request: HttpRequest) -> Any:
    # Blocks the loop briefly, but only while an error is being captured.
    found: list[Any] = []

    def load() -> None:
        try:
            user = request.user
            user.is_authenticated  # noqa: B018 - evaluates the lazy user
            found.append(user._wrapped)
        except Exception:  # an exception escaping a thread would become a Sentry event
            logger.debug("could not load the request's user", exc_info=True)
        finally:
            connections.close_all()  # this thread's connections would outlive it otherwise

    worker = threading.Thread(target=load, name="sentry-flags-user", daemon=True)
    worker.start()
    worker.join(USER_LOAD_TIMEOUT)
    return found[0] if found else _UNKNOWN


def _name_of(user: Any) -> Optional[str]:
    full_name = getattr(user, "get_full_name", None)
    name = full_name() if callable(full_name) else None
    if not name:
        username = getattr(user, "get_username", None)
        name = username() if callable(username) else None
    return name or None


def _email_of(user: Any) -> Optional[str]:
    field = getattr(user, "get_email_field_name", None)
    value = getattr(user, field() if callable(field) else "email", None)
    return value if isinstance(value, str) and value else None


def _session_hash(request: HttpRequest) -> Optional[str]:
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    if not session_key:
        return None
    digest: str = salted_hmac(SESSION_SALT, session_key, algorithm="sha256").hexdigest()
    return digest[:32]


def _configured_builder() -> Optional[ContextForRequest]:
    """The ``SENTRY_FLAGS["CONTEXT"]`` callable, imported once; a bad setting fails start-up."""
    config = getattr(settings, SETTING, None)
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ImproperlyConfigured(f"{SETTING} must be a dict, got {type(config).__name__}")
    unknown = sorted(str(k) for k in config if k not in SETTING_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"unknown {SETTING} key(s) {', '.join(unknown)}: expected {', '.join(sorted(SETTING_KEYS))}"
        )
    target: Union[str, ContextForRequest, None] = config.get("CONTEXT")
    if target is None:
        return None
    if isinstance(target, str):
        try:
            target = import_string(target)
        except ImportError as exc:
            raise ImproperlyConfigured(f'{SETTING}["CONTEXT"]: cannot import {target!r}: {exc}') from exc
    if not callable(target):
        raise ImproperlyConfigured(
            f'{SETTING}["CONTEXT"] must be a callable (request) -> ldclient.Context | None, '
            f"got {type(target).__name__}"
        )
    return target
