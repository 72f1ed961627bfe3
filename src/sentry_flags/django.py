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
The context is built when an error is captured, from what the request already loaded: no
database read, no thread, nothing that blocks. An error captured before the request loaded
its user, in a request with a session, carries no context (see ``default_request_context``).
"""

from __future__ import annotations

import logging
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
    from django.utils.crypto import salted_hmac
    from django.utils.functional import LazyObject
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("sentry_flags.django needs Django: pip install 'sentry-flags[django]'") from exc

from sentry_flags._django import NOT_LOADED, check_user_caches, loaded_user

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase
    from ldclient import Context

__all__ = ["FlagsMiddleware", "default_request_context"]

logger = logging.getLogger("sentry_flags")

SETTING = "SENTRY_FLAGS"
SETTING_KEYS = frozenset({"CONTEXT"})
SESSION_SALT = "sentry_flags.django.anonymous"

ContextForRequest = Callable[["HttpRequest"], Optional["Context"]]


class FlagsMiddleware:
    """Makes each request's LaunchDarkly context known to Sentry's error pipeline.

    Works in sync and async stacks. Per request it stores only a lazy provider: the
    context is built when an error is captured, and an LD flag evaluation later in the
    request replaces it (the latest context wins). Add
    ``"sentry_flags.django.FlagsMiddleware"`` to ``MIDDLEWARE`` after
    ``AuthenticationMiddleware``; ``SENTRY_FLAGS = {"CONTEXT": "myapp.flags.context_for"}``
    in the settings names a builder ``(request) -> Context | None`` of your own (default:
    `default_request_context`). Guide: docs/frameworks.md, "Django".

    Args:
        get_response: The next middleware or view; Django passes it.

    Raises:
        django.core.exceptions.ImproperlyConfigured: ``SENTRY_FLAGS["CONTEXT"]`` does not
            name a callable (raised when Django loads the middleware).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.context_for = _configured_builder()
        if self.context_for is None:
            require_launchdarkly("sentry_flags.django.FlagsMiddleware")
            check_user_caches()
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

    def process_exception(self, request: HttpRequest, exception: BaseException) -> None:
        """Load the request's user before Sentry captures the view's exception.

        Django runs this on the request's thread (in async mode, on its sync thread, never on
        the event loop) before it reports the exception, so capturing it reads nothing. Only
        for the default context: a builder of yours gets the request as it is.
        """
        if self.context_for is None:
            _load_user(request)

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

    Runs while an error is captured, so it reads only what the request already loaded and
    never the session store or the user table. An anonymous visitor is keyed by a keyed hash
    of the session key when there is a session (the same visitor across requests, without
    the session key itself ever leaving the app: it is a credential), else by a random key
    kept for the request. None when the request has a session but never loaded its user:
    whoever it is cannot be told without a database read, and a logged-in user must not be
    called anonymous. (For an exception raised by the view, `FlagsMiddleware` loads the
    user in ``process_exception``, before Sentry captures it.)
    """
    user = loaded_user(request)
    if user is NOT_LOADED:
        if _session_key(request):
            return None
        user = None  # no session, so nobody logged in
    if user is not None and getattr(user, "is_authenticated", False):
        return default_context(user.pk, name=_name_of(user), email=_email_of(user))
    key = _session_hash(request) or (anonymous_key or AnonymousKey())()
    return default_context(None, anonymous_key=key)


def _load_user(request: HttpRequest) -> None:
    """Evaluate the request's lazy user, so that capturing its error needs no database read."""
    user = getattr(request, "user", None)
    if not isinstance(user, LazyObject):
        return
    try:
        user.is_authenticated  # noqa: B018 - evaluates the lazy user (free once loaded); Django keeps it
    except Exception:  # a database that is down, say: the error then carries no context
        logger.debug("could not load the request's user", exc_info=True)


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


def _session_key(request: HttpRequest) -> Optional[str]:
    # The key of the session cookie, held in memory: reading it loads nothing.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    return session_key if isinstance(session_key, str) and session_key else None


def _session_hash(request: HttpRequest) -> Optional[str]:
    session_key = _session_key(request)
    if session_key is None:
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
