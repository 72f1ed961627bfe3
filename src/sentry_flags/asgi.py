"""ASGI (Starlette, FastAPI): the LaunchDarkly context of each request, built only on error.

    app.add_middleware(FlagsMiddleware)                                  # Starlette/FastAPI
    app.add_middleware(FlagsMiddleware, context_from_scope=my_builder)   # (scope) -> Context | None
    app = FlagsMiddleware(app)                                           # any ASGI app

Per-request isolation comes from sentry-sdk's ASGI middleware (its Starlette and FastAPI
integrations apply it to every app). Where it is not running, each request gets its own
isolation scope here, so concurrent requests never see each other's context; where it is,
ours forks nothing: an error it captures on the way out must see what the request stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, MutableMapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from sentry_flags._context import set_launchdarkly_context
from sentry_flags._web import AnonymousKey, default_context, request_isolation

if TYPE_CHECKING:
    from ldclient import Context

__all__ = ["FlagsMiddleware", "context_for_user"]

logger = logging.getLogger("sentry_flags")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ContextFromScope = Callable[[Scope], Optional["Context"]]

REQUEST_TYPES = frozenset({"http", "websocket"})


class FlagsMiddleware:
    """Makes each request's LaunchDarkly context known to Sentry's error pipeline.

    Per request it only stores a closure over the ASGI scope; ``context_from_scope`` runs
    when an error event is captured (by then inner middleware, e.g. authentication, has
    filled the scope in). A flag evaluation later in the request replaces it. Where
    sentry-sdk's ASGI middleware is not running, each ``http``/``websocket`` request gets an
    isolation scope of its own here. Guide: docs/frameworks.md, "ASGI".

    Args:
        app: The ASGI app to wrap (Starlette's ``add_middleware`` passes it).
        context_from_scope: Keyword only. ``(scope) -> ldclient.Context | None``, the
            context of a request. Default `None`: `context_for_user` (``scope["user"]``
            when authenticated, else an anonymous context). A builder that raises, or
            returns `None`, means no context on that error.

    Raises:
        TypeError: ``app`` or ``context_from_scope`` is not callable.
    """

    def __init__(self, app: ASGIApp, *, context_from_scope: Optional[ContextFromScope] = None) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application (a callable), got {type(app).__name__}")
        if context_from_scope is not None and not callable(context_from_scope):
            raise TypeError(
                "context_from_scope must be a callable (scope) -> ldclient.Context | None, "
                f"got {type(context_from_scope).__name__}"
            )
        self.app = app
        self.context_from_scope = context_from_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in REQUEST_TYPES:
            await self.app(scope, receive, send)
            return
        with request_isolation():
            anonymous = AnonymousKey()  # one random key per request, made only if needed
            set_launchdarkly_context(lambda: self.build(scope, anonymous))
            await self.app(scope, receive, send)

    def build(self, scope: Scope, anonymous_key: Optional[Callable[[], str]] = None) -> Optional[Context]:
        """The context of the request ``scope``; `None` (no context) if building it fails.

        Args:
            scope: The ASGI scope of the request.
            anonymous_key: Gives the key of an anonymous visitor. Default `None`: random.
        """
        try:
            if self.context_from_scope is not None:
                return self.context_from_scope(scope)
            return context_for_user(scope, anonymous_key)
        except Exception:
            logger.debug("could not build the LaunchDarkly context for a request", exc_info=True)
            return None


def context_for_user(scope: Scope, anonymous_key: Optional[Callable[[], str]] = None) -> Context:
    """The default: ``scope["user"]`` (Starlette's AuthenticationMiddleware) when it is
    authenticated, keyed by its ``identity``; otherwise an anonymous visitor, keyed by
    ``anonymous_key()`` or a random key (plain ASGI has no session key to go by)."""
    user = scope.get("user")
    if user is not None and _attr(user, "is_authenticated") is True:
        key = _identity(user)
        if key:
            return default_context(
                key,
                name=_text(_attr(user, "display_name")),
                email=_text(_attr(user, "email")),
            )
    return default_context(None, anonymous_key=anonymous_key() if anonymous_key is not None else None)


def _identity(user: Any) -> Optional[str]:
    # Older Starlette: SimpleUser has no identity; its username (display_name) is what it has.
    for attr in ("identity", "id", "pk", "display_name"):
        value = _attr(user, attr)
        if value is not None and value != "":
            return str(value)
    return None


def _attr(user: Any, name: str) -> Any:
    try:
        return getattr(user, name, None)
    except Exception:  # Starlette's BaseUser raises NotImplementedError for what it lacks
        return None


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None
