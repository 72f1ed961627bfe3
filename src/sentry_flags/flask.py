"""Flask: the LaunchDarkly context of each request, built only if an error is captured.

    app = Flask(__name__)
    FlagsExtension(app)                       # or FlagsExtension().init_app(app)
    FlagsExtension(app, context_from_request=lambda request: Context.create(...))

Use it with sentry-sdk's ``FlaskIntegration``, which gives every request its own
isolation scope.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from sentry_flags._context import set_launchdarkly_context
from sentry_flags._web import default_context

try:
    import flask
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
    isolation scope. Per request a ``before_request`` hook stores a closure; the context is
    built only when an error is captured, still inside the request, so requests without
    errors pay almost nothing. A flag evaluation later in the request replaces it (latest
    wins). Guide: docs/frameworks.md, "Flask".

    Args:
        app: The Flask app to set up now. Default `None`: call `init_app` later (the
            application-factory pattern).
        context_from_request: Keyword only. ``(request) -> ldclient.Context | None``, the
            context of a request. Default `None`: Flask-Login's ``current_user``, when
            installed and authenticated, as a ``user`` context keyed by ``get_id()`` (name
            and email only when the app allows PII); anyone else an anonymous context with
            a random key. A builder that raises, or returns `None`, means no context on that
            error; it never reaches the app.

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
        """Set up ``app``: register the per-request hook.

        Raises:
            TypeError: ``app`` is not a Flask application.
        """
        if not isinstance(getattr(app, "extensions", None), dict) or not callable(
            getattr(app, "before_request", None)
        ):
            raise TypeError(f"app must be a Flask application, got {type(app).__name__}")
        app.extensions["sentry_flags"] = self
        app.before_request(self._before_request)

    def _before_request(self) -> None:
        # Latest wins: a flag evaluation later in the request replaces this.
        request = flask.request._get_current_object()  # type: ignore[attr-defined]
        set_launchdarkly_context(lambda: self._build(request))

    def _build(self, request: flask.Request) -> Optional[Context]:
        # Runs when an error is captured, still inside the request context.
        try:
            if self.context_from_request is not None:
                return self.context_from_request(request)
            user = _login_user()
            if user is not None and getattr(user, "is_authenticated", False):
                return default_context(
                    user.get_id() if hasattr(user, "get_id") else getattr(user, "id", None),
                    name=getattr(user, "name", None),
                    email=getattr(user, "email", None),
                )
            return default_context(None)
        except Exception:
            logger.debug("could not build the LaunchDarkly context for a request", exc_info=True)
            return None


def _login_user() -> Any:
    """Flask-Login's user for this request, if Flask-Login is in use."""
    if not flask.has_request_context():
        return None
    try:
        from flask_login import current_user
    except ImportError:
        return None
    try:
        return current_user._get_current_object()
    except Exception:
        return None
