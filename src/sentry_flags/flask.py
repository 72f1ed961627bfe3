"""Flask: the LaunchDarkly context of each request, built only if an error is captured.

    app = Flask(__name__)
    FlagsExtension(app)                       # or FlagsExtension().init_app(app)
    FlagsExtension(app, context_from_request=lambda request: Context.create(...))

Use it with sentry-sdk's ``FlaskIntegration``, which gives every request its own
isolation scope.

No per-request hook: the extension stores nothing while a request runs. When an error is
captured inside a request of an app with the extension, the request is found through Flask's
own request context and its context built then. A context stored during the request (a flag
evaluation, `set_launchdarkly_context`, ``None`` included) wins over it; one the request's
scope inherited from the thread that started it does not. An error captured after Flask
popped the request context (a streamed response's generator, even with
``stream_with_context``; an outer WSGI middleware) carries only what the request stored.

By default a user Flask-Login loaded is a ``user`` context keyed by ``get_id()`` (name and
email only when the Sentry client allows PII), anyone else an anonymous ``user`` context.
The context is built when an error is captured, from what the request already holds: the
app's ``user_loader`` never runs for it. A user the request has not loaded is keyed by the
id Flask-Login keeps in the session; where only the ``user_loader`` could tell who it is (a
"remember me" cookie, a ``request_loader``), the error carries no context. For an unhandled
exception the user is loaded first, before sentry-sdk captures it.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, Optional

import sentry_sdk

from sentry_flags._context import ContextProvider, ContextSlot, add_ambient_source
from sentry_flags._flask_login import (
    NOT_LOADED,
    UNKNOWN,
    check_loaded,
    flask_login,
    loaded_user,
    session_user_id,
)
from sentry_flags._integration import FlagsIntegration
from sentry_flags._web import default_context

try:
    import flask
    import flask.globals
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("sentry_flags.flask needs Flask: pip install 'sentry-flags[flask]'") from exc

if TYPE_CHECKING:
    from ldclient import Context

__all__ = ["FlagsExtension"]

logger = logging.getLogger("sentry_flags")

ContextFromRequest = Callable[["flask.Request"], Optional["Context"]]


class FlagsExtension:
    """Makes each request's LaunchDarkly context known to Sentry's error pipeline.

    Use it with sentry-sdk's ``FlaskIntegration``, which gives every request its own
    isolation scope. Nothing runs per request: when an error is captured inside a request
    of an app with the extension, the request is found through Flask's request context and
    its context built then, from what the request already holds (capturing never runs the
    app's Flask-Login ``user_loader``), so requests without errors pay nothing. A context
    stored during the request wins: a flag evaluation, or `set_launchdarkly_context`
    (``None``: no context at all). An error captured after Flask popped the request context
    (a streamed response's generator, even with ``stream_with_context``) gets only such a
    stored context. Guide: docs/frameworks.md, "Flask".

    Args:
        app: The Flask app to set up now. Default `None`: call `init_app` later (the
            application-factory pattern).
        context_from_request: Keyword only. ``(request) -> ldclient.Context | None``, the
            context of a request. Default `None`: the user Flask-Login loaded for the
            request, as a ``user`` context keyed by ``get_id()`` (name and email only when
            the app allows PII); a user Flask-Login did not load yet, keyed by the user id
            its session holds, without name or email; no context where only the
            ``user_loader`` could tell who it is; anyone else an anonymous context with a
            random key, one per request. A builder that raises, or returns `None`, means no
            context on that error; it never reaches the app.

    Raises:
        TypeError: ``context_from_request`` is not callable, or ``app`` is not a Flask app.
    """

    def __init__(
        self, app: Optional[flask.Flask] = None, *, context_from_request: Optional[ContextFromRequest] = None
    ) -> None:
        if context_from_request is not None and not callable(context_from_request):
            raise TypeError(
                "context_from_request must be a callable (request) -> ldclient.Context | None, "
                f"got {type(context_from_request).__name__}"
            )
        self.context_from_request = context_from_request
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Set up ``app`` (the application factory pattern): no per-request hook is added.

        Raises:
            TypeError: ``app`` is not a Flask application.
        """
        if not isinstance(getattr(app, "extensions", None), dict) or not callable(
            getattr(app, "handle_exception", None)
        ):
            raise TypeError(f"app must be a Flask application, got {type(app).__name__}")
        first = EXTENSION_KEY not in app.extensions
        app.extensions[EXTENSION_KEY] = self
        add_ambient_source(_FLASK_REQUESTS)
        if first:
            _load_user_before_capture(app)

    def _provider(self, ctx: Any) -> ContextProvider:
        """The context of the request of ``ctx``, built when called (per error)."""
        # The objects of this request, not Flask's context-bound proxies: the provider is
        # called later in the capture, and must build this request's context whatever is
        # pushed then. The request context, not its session: reading ``session`` marks it
        # accessed, and Flask then adds ``Vary: Cookie`` to the response (on Flask 3, even
        # unread); only ``_default_context`` reads it, and only while an error is captured.
        request = ctx.request
        builder = self.context_from_request
        if builder is not None:
            return lambda: builder(request)
        app, g = ctx.app, _unproxied(flask.g)
        return lambda: _default_context(app, request, g, ctx, lambda: _anonymous_key(request))


class _FlaskRequests:
    """The ambient source (`sentry_flags._context.AmbientSource`) of Flask requests.

    Asked while an error is captured, on the capturing thread: the running request, if its
    app has a `FlagsExtension`.

    The unit of work is the request object, not its request context: a copy of the context
    (``flask.copy_current_request_context``, pushed in another thread) is another
    object around the same request, and what the view stored must count there too.
    """

    __slots__ = ()

    def owner(self) -> Any:
        if not flask.has_request_context():
            return None
        return _unproxied(flask.request)

    def slot(self, owner: Any) -> Optional[ContextSlot]:
        # The request context pushed now (on the capturing thread, just after ``owner()``):
        # its app, ``g`` and session, for the request ``owner``.
        ctx = _unproxied(flask.globals.request_ctx)
        if ctx.request is not owner:
            return None
        extension = ctx.app.extensions.get(EXTENSION_KEY)
        if not isinstance(extension, FlagsExtension):
            return None  # an app without the extension: nothing of ours in its requests
        return ContextSlot(extension._provider(ctx), None)


_FLASK_REQUESTS = _FlaskRequests()
EXTENSION_KEY = "sentry_flags"
"""The key of ``app.extensions`` an app's `FlagsExtension` is kept under."""
# Where a request keeps its anonymous key, so that all its errors share one LaunchDarkly
# context: made by its first error, in the WSGI environ (per request, dead with it; a
# namespaced key, as WSGI middleware add theirs). Not ``flask.g``: an app context pushed
# around several requests (in tests, say) would share it.
_ANONYMOUS_KEY = "sentry_flags.anonymous_key"


def _anonymous_key(request: flask.Request) -> str:
    environ = request.environ
    key = environ.get(_ANONYMOUS_KEY)
    if isinstance(key, str):
        return key
    # Two threads of one request (copy_current_request_context) may both get here: the
    # first setdefault wins, and both use its key.
    fresh = uuid.uuid4().hex
    key = environ.setdefault(_ANONYMOUS_KEY, fresh)
    if not isinstance(key, str):  # something else under our key: ours replaces it
        key = environ[_ANONYMOUS_KEY] = fresh
    return key


def _default_context(
    app: flask.Flask, request: flask.Request, g: Any, ctx: Any, anonymous: Callable[[], str]
) -> Optional[Context]:
    """The default context: Flask-Login's user if the app uses Flask-Login, else anonymous.

    Runs while an error is captured: reads only what the request already holds, never the
    app's ``user_loader``.
    """
    manager = getattr(app, "login_manager", None)
    if manager is None:  # no Flask-Login: nobody is logged in
        return default_context(None, anonymous_key=anonymous())
    user = loaded_user(g)
    if user is NOT_LOADED:
        # Only now, while an error is captured, is the session read (``ctx.session``).
        return _unloaded_user_context(app, manager, request, ctx.session, anonymous)
    if not getattr(user, "is_authenticated", False):
        return default_context(None, anonymous_key=anonymous())
    key = user.get_id() if callable(getattr(user, "get_id", None)) else getattr(user, "id", None)
    if key is None or key == "":
        return None  # logged in, but with no id to key a context by
    name, email = _text(getattr(user, "name", None)), _text(getattr(user, "email", None))
    return default_context(key, name=name, email=email)


def _unloaded_user_context(
    app: flask.Flask, manager: Any, request: flask.Request, session: Any, anonymous: Callable[[], str]
) -> Optional[Context]:
    """Who the request's user is, as far as can be told without loading it.

    Follows Flask-Login's own order (the session, the remember cookie, the request loader,
    the header), stopping with None (no context) where only the ``user_loader`` could tell.
    """
    user_id = session_user_id(session)
    if user_id is UNKNOWN:
        return None
    protection = app.config.get("SESSION_PROTECTION", getattr(manager, "session_protection", None))
    if user_id is not None:
        if protection == "strong" and not getattr(session, "permanent", False):
            return None  # Flask-Login would drop this session if it came from elsewhere
        return default_context(user_id)  # without name or email: the user was not read
    module = flask_login()
    cookie = app.config.get("REMEMBER_COOKIE_NAME", getattr(module, "COOKIE_NAME", "remember_token"))
    if cookie in request.cookies:
        return None  # a "remember me" login, which the user_loader may turn into a user
    if getattr(manager, "request_callback", None) is not None:
        return None  # the app's request_loader may authenticate this request
    header = app.config.get("AUTH_HEADER_NAME", getattr(module, "AUTH_HEADER_NAME", "Authorization"))
    if header in request.headers:
        return None  # a header_loader (deprecated in Flask-Login) may
    return default_context(None, anonymous_key=anonymous())


def _load_user_before_capture(app: flask.Flask) -> None:
    """Make ``app`` load Flask-Login's user before sentry-sdk captures an unhandled exception.

    sentry-sdk's ``FlaskIntegration`` captures from a ``got_request_exception`` receiver,
    which Flask sends first thing in ``handle_exception``; blinker calls receivers in no
    defined order, so a receiver of ours could not be sure to run first. Wrapping the app's
    ``handle_exception`` (as Flask-RESTful does) runs on the request's thread, inside the
    request, before the signal: loading the user there is the app's own ``current_user``
    read, not one made while capturing.
    """
    handle_exception = app.handle_exception

    @functools.wraps(handle_exception)
    def load_user_then_handle(e: Exception) -> Any:
        _load_login_user(app)
        return handle_exception(e)

    app.handle_exception = load_user_then_handle  # type: ignore[method-assign]


def _load_login_user(app: flask.Flask) -> None:
    try:
        extension = app.extensions.get(EXTENSION_KEY)
        if not isinstance(extension, FlagsExtension) or extension.context_from_request is not None:
            return  # a builder of yours gets the request as it is
        if sentry_sdk.get_client().get_integration(FlagsIntegration) is None:
            return  # nothing of ours captures this error
        module = flask_login() if getattr(app, "login_manager", None) is not None else None
        if module is None or not flask.has_request_context():
            return
        if module.current_user._get_current_object() is not None:
            check_loaded(flask.g)
    except Exception:  # a user_loader that fails (its database down, say): as if never loaded
        logger.debug("could not load Flask-Login's user before capturing an error", exc_info=True)


def _unproxied(proxy: Any) -> Any:
    return proxy._get_current_object()  # werkzeug's LocalProxy: the object it stands for


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None
