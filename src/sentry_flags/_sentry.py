"""The one module that holds sentry-sdk's private names; everything else uses its public API.

Each private name below says why no public API serves and what steps aside when a release
no longer has it; each is declared below as a `PrivateName` (``PRIVATE_NAMES``), as the
vendor SDKs' are. A missing name never raises: the feature it serves steps aside through
`_private.step_aside` (counted, by name, in ``_private.stepped_aside()``; a warning naming it
logged once per process), and an error that can then not be forwarded is counted as skipped
with the reason ``sentry_sdk_unsupported``.

- ``sentry_sdk.client._Client._init_impl``: every client is built there (by ``__init__``,
  and by ``__setstate__`` when a pickled client is rebuilt), and it is where
  ``FlagsIntegration`` binds to each one (composes its ``before_send``, applies its
  settings and privacy rules). No public hook runs per client: ``setup_once`` (and
  ``setup_once_with_options``) run once per process, while apps and test suites build many
  clients. Without it nothing is attached to events and nothing is forwarded; each error
  event is counted as skipped.
- ``_Client.flush`` / ``_Client.close``: deliver our queued errors to the vendors within
  part of the caller's flush budget, and stop our worker after Sentry's own close. There is
  no flush hook. Without them the vendors are drained only at interpreter exit.
- ``Scope._contexts``: the per-scope values we keep (the LaunchDarkly context slot, the
  flag log) live in the scope's contexts so that they fork with the scope; the flag hooks
  read and write them on every evaluation and there is no public getter. Without it
  nothing is recorded: no ``launchdarklyContext`` or flag contexts on events.
- ``sentry_sdk.integrations.wsgi._wsgi_middleware_applied`` and
  ``sentry_sdk.integrations.asgi._asgi_middleware_applied``: whether sentry-sdk already
  gave the running request its own isolation scope; no public API says so. Without them
  our middleware forks one itself for every request (then an error sentry-sdk captures
  outside that fork does not see what was set inside it).
- ``sentry_sdk.data_collection._SENSITIVE_DENYLIST``: the key terms whose values
  sentry-sdk always filters under ``data_collection`` (2.7x, 3.x); read so that our
  filtering follows sentry-sdk's own. Without it a copy of the list as of sentry-sdk 3.0.0
  is used.

Public API used where it exists: the current span is ``Scope.get_current_scope().span``
(what ``sentry_sdk.get_current_span()`` returns, without its two extra calls on the path
every boolean flag evaluation takes) and, on 2.7x with span streaming, ``.streamed_span``;
whether a client traces at all, ``sentry_sdk.tracing_utils.has_tracing_enabled``.

Tested on sentry-sdk 2.26.1 (tox env ``sentry-oldest``), the newest 2.x (2.76.0; tox env
``sentry-latest``) and the newest 3.x (3.0.0, also tested on 3.0.0b2; the main suite, which
installs the newest release, and tox env ``sentry-next``, which takes pre-releases too).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

import sentry_sdk
from sentry_sdk.scope import Scope, add_global_event_processor

from sentry_flags._fork import ForkSafeLock
from sentry_flags._private import PrivateName, step_aside
from sentry_flags._shape import is_error_event

logger = logging.getLogger("sentry_flags")

FLUSH_SHARE = 2.0  # seconds of a Sentry flush we may spend draining the vendors
UNSUPPORTED = "sentry_sdk_unsupported"  # skip reason of an error we could not handle

# sentry-sdk's sensitive-key terms (data_collection._SENSITIVE_DENYLIST) as of 3.0.0: used
# when a release that has data_collection no longer has the list.
FALLBACK_SENSITIVE_TERMS = (
    "auth", "token", "secret", "password", "passwd", "pwd", "key", "jwt", "bearer", "sso",
    "saml", "csrf", "xsrf", "credentials", "session", "sid", "identity",
)  # fmt: skip

_installed = False

INIT_IMPL = PrivateName(
    "sentry-sdk",
    "sentry_sdk.client._Client._init_impl",
    "binding to each Sentry client as it is built (our before_send stage, settings, privacy "
    "rules and frame-variable redaction)",
    "sentry-flags cannot bind to Sentry clients: no launchdarklyContext or flags are attached "
    f"and no error is forwarded (each is counted as skipped: {UNSUPPORTED})",
)
FLUSH_CLOSE = PrivateName(
    "sentry-sdk",
    "sentry_sdk.client._Client.flush/close",
    "delivering our queued errors to the vendors when Sentry flushes or closes",
    "sentry_sdk.flush() and close() do not deliver sentry-flags' queued errors to the vendors; "
    "they are delivered in the background and at interpreter exit",
)
SCOPE_CONTEXTS = PrivateName(
    "sentry-sdk",
    "sentry_sdk.scope.Scope._contexts",
    "keeping the LaunchDarkly context and the flags per request, task and thread",
    "no launchdarklyContext or flag contexts are recorded (set_launchdarkly_context, the "
    "LaunchDarkly, OpenFeature and Split hooks do nothing)",
)
_MIDDLEWARE_INSTEAD = (
    "the sentry-flags middleware gives every request its own isolation scope; an error "
    "sentry-sdk captures outside it does not carry the request's flag context"
)
WSGI_APPLIED = PrivateName(
    "sentry-sdk",
    "sentry_sdk.integrations.wsgi._wsgi_middleware_applied",
    "telling whether sentry-sdk already isolates the running WSGI request",
    _MIDDLEWARE_INSTEAD,
)
ASGI_APPLIED = PrivateName(
    "sentry-sdk",
    "sentry_sdk.integrations.asgi._asgi_middleware_applied",
    "telling whether sentry-sdk already isolates the running ASGI request",
    _MIDDLEWARE_INSTEAD,
)
SENSITIVE_DENYLIST = PrivateName(
    "sentry-sdk",
    "sentry_sdk.data_collection._SENSITIVE_DENYLIST",
    "filtering the same sensitive keys as sentry-sdk's data_collection",
    "sentry-flags filters the values of keys with the terms sentry-sdk 3.0.0 filtered, and its own",
)
# Every private name of sentry-sdk used here, as the module docstring explains them
# (tests/test_private_names.py checks this list against the source, both ways).
PRIVATE_NAMES = (INIT_IMPL, FLUSH_CLOSE, SCOPE_CONTEXTS, WSGI_APPLIED, ASGI_APPLIED, SENSITIVE_DENYLIST)


# -- the client: bind, flush, close -----------------------------------------------------------


def _client_class() -> Any:
    try:
        from sentry_sdk.client import _Client
    except ImportError:
        return None
    return _Client


def install(integration_type: type[Any], bind: Callable[[Any, Any], Any]) -> None:
    """Patch sentry-sdk's client once per process; idempotent.

    ``bind(integration, client)`` is called for each client built with an
    ``integration_type`` integration. Called when a ``FlagsIntegration`` is built, which is
    always before the client that holds it (``sentry_sdk.init(integrations=[...])``, and
    unpickling rebuilds the integration before the client's ``__setstate__`` runs).
    """
    global _installed
    if _installed:
        return
    _installed = True
    client_type = _client_class()
    original_init_impl = getattr(client_type, "_init_impl", None)
    if not callable(original_init_impl):
        step_aside(INIT_IMPL)
        add_global_event_processor(_count_unbound(integration_type))
        note_client(
            {"traces_sample_rate": 1.0, "trace_lifecycle": "stream"}
        )  # clients unseen: look at every span
        return

    def _init_impl(self: Any) -> None:
        original_init_impl(self)
        try:
            note_client(self.options)
            integration = self.get_integration(integration_type)
            if integration is not None:
                bind(integration, self)
        except Exception as exc:
            _bind_failed(exc)

    client_type._init_impl = _init_impl
    _patch_flush_close(client_type, integration_type)
    note_client(sentry_sdk.get_client().options)  # one built before this patch


def _patch_flush_close(client_type: Any, integration_type: type[Any]) -> None:
    original_flush = getattr(client_type, "flush", None)
    original_close = getattr(client_type, "close", None)
    if not callable(original_flush) or not callable(original_close):
        step_aside(FLUSH_CLOSE)
        return

    def flush(self: Any, timeout: Optional[float] = None, *args: Any, **kwargs: Any) -> Any:
        try:
            integration = self.get_integration(integration_type)
            if integration is not None:
                budget = float(timeout if timeout is not None else self.options.get("shutdown_timeout", 2))
                started = time.monotonic()
                # At most half the caller's budget: Sentry's own events keep the rest.
                integration.flush(min(budget / 2, FLUSH_SHARE))
                timeout = max(0.0, budget - (time.monotonic() - started))
        except Exception:
            logger.debug("sentry-flags flush failed", exc_info=True)
        return original_flush(self, timeout, *args, **kwargs)

    def close(self: Any, timeout: Optional[float] = None, *args: Any, **kwargs: Any) -> Any:
        result = original_close(self, timeout, *args, **kwargs)  # flushes us first
        try:
            integration = self.get_integration(integration_type)
            if integration is not None:
                integration.close(0.5)
        except Exception:
            logger.debug("sentry-flags close failed", exc_info=True)
        return result

    client_type.flush = flush
    client_type.close = close


def _count_unbound(integration_type: type[Any]) -> Callable[[Any, Any], Any]:
    """A global event processor counting each error sentry-flags could not handle."""

    def count(event: Any, hint: Any) -> Any:
        try:
            if isinstance(event, dict) and is_error_event(event):
                integration = sentry_sdk.get_client().get_integration(integration_type)
                delivery = getattr(integration, "delivery", None)
                if delivery is not None:
                    delivery.skip(UNSUPPORTED)
        except Exception:
            logger.debug("could not count an error sentry-flags cannot handle", exc_info=True)
        return event

    return count


# -- scope contexts ------------------------------------------------------------------------------

_isolation_scope = sentry_sdk.get_isolation_scope


_bind_warned = False


def _bind_failed(exc: Exception) -> None:
    # Such a client sends every event, but without our filters, settings, flag contexts and
    # frame-variable redaction: the app must hear of it. Once: every later client would fail
    # the same way.
    global _bind_warned
    if not _bind_warned:
        _bind_warned = True
        logger.warning(
            "sentry-flags could not set up a Sentry client (%s: %s): its events are sent without "
            "sentry-flags' filters, settings, flag contexts, frame-variable redaction and forwarding",
            type(exc).__name__, exc,
        )  # fmt: skip
    logger.debug("could not bind sentry-flags to a new Sentry client", exc_info=True)


_processor_added = False
_processor_lock = ForkSafeLock()


def add_event_processor() -> None:
    """Register our global event processor, once per process.

    ``FlagsIntegration.setup_once`` does, and so does the first value stored on a scope:
    the plugin, the hooks and `set_launchdarkly_context` work without any
    ``FlagsIntegration``, and without the processor sentry-sdk would send what they stored
    as empty ``launchdarklyContext`` and ``flagEvaluations`` contexts on every event.
    """
    global _processor_added
    with _processor_lock:
        if _processor_added:
            return
        from sentry_flags._stage import process_event  # _stage imports this module

        add_global_event_processor(process_event)  # type: ignore[arg-type]
        _processor_added = True


def isolation_contexts() -> dict[str, Any]:
    """The current isolation scope's contexts, to read and write in place.

    ``set_context`` would do for writing, but the hooks run on every flag evaluation and
    also need to read what is there; a scope fork copies this dict, so each request and
    thread writes its own. Without ``Scope._contexts``, a dict nobody reads.
    """
    if not _processor_added:  # one read on the path every evaluation takes
        add_event_processor()
    try:
        contexts: dict[str, Any] = _isolation_scope()._contexts
    except AttributeError as exc:
        step_aside(SCOPE_CONTEXTS, exc)
        return {}
    return contexts


def scope_contexts(scope: Any) -> dict[str, Any]:
    """``scope``'s contexts, to read; empty when sentry-sdk no longer keeps them there."""
    contexts = getattr(scope, "_contexts", None)
    if isinstance(contexts, dict):
        return contexts
    step_aside(SCOPE_CONTEXTS)
    return {}


# -- requests isolated by sentry-sdk --------------------------------------------------------------


def _request_markers() -> tuple[tuple[Any, ...], list[PrivateName]]:
    found: list[Any] = []
    gone: list[PrivateName] = []
    try:
        from sentry_sdk.integrations.wsgi import _wsgi_middleware_applied

        found.append(_wsgi_middleware_applied)
    except ImportError:
        gone.append(WSGI_APPLIED)
    try:
        from sentry_sdk.integrations.asgi import _asgi_middleware_applied

        found.append(_asgi_middleware_applied)
    except ImportError:  # also when the asgi module cannot import at all
        gone.append(ASGI_APPLIED)
    return tuple(m for m in found if callable(getattr(m, "get", None))), gone


_REQUEST_MARKERS, _MARKERS_GONE = _request_markers()


def sentry_isolates_request() -> bool:
    """Whether sentry-sdk already gave the running request its own isolation scope."""
    if _MARKERS_GONE:
        for name in _MARKERS_GONE:
            step_aside(name)
    for marker in _REQUEST_MARKERS:  # noqa: SIM110 - per request: no generator
        if marker.get(False):
            return True
    return False


# -- data collection ----------------------------------------------------------------------------


def has_data_collection() -> bool:
    """Whether the running sentry-sdk has the ``data_collection`` option (2.7x and 3.x)."""
    try:
        import sentry_sdk.data_collection  # noqa: F401
    except ImportError:
        return False
    return True


def sensitive_terms() -> tuple[str, ...]:
    """The key terms whose values sentry-sdk's ``data_collection`` always filters."""
    try:
        from sentry_sdk import data_collection
    except ImportError:
        return FALLBACK_SENSITIVE_TERMS  # before 2.7x: our own copy serves as well
    terms = getattr(data_collection, "_SENSITIVE_DENYLIST", None)
    if isinstance(terms, (list, tuple)) and terms and all(isinstance(t, str) for t in terms):
        return tuple(t.lower() for t in terms)
    step_aside(SENSITIVE_DENYLIST)
    return FALLBACK_SENSITIVE_TERMS


# -- the current span -----------------------------------------------------------------------------

_current_scope = Scope.get_current_scope
# 2.7x keeps a span-streaming span apart from ``Scope.span``, as ``Scope.streamed_span``; 3.x
# has only streamed spans, as ``Scope.span``.
_HAS_STREAMED_SPAN = isinstance(getattr(Scope, "streamed_span", None), property)
# What the clients built so far can send, noted as each is built: until one has tracing on,
# no span is ever sent and the hot path reads nothing; until one streams spans (2.7x), it
# reads one property, not two. Once seen, for the life of the process: the safe side.
_tracing_seen = False
_streaming_seen = False


def note_client(options: Any) -> None:
    """Note what a newly built client can send (tracing, 2.7x span streaming)."""
    global _tracing_seen, _streaming_seen
    if _tracing_seen and (_streaming_seen or not _HAS_STREAMED_SPAN):
        return
    try:
        from sentry_sdk import tracing_utils

        if tracing_utils.has_tracing_enabled(options):
            _tracing_seen = True
            if _HAS_STREAMED_SPAN and tracing_utils.has_span_streaming_enabled(options):  # type: ignore[attr-defined,unused-ignore]
                _streaming_seen = True
    except Exception:  # an unknown release: look at every span, as if tracing were on
        logger.debug("could not tell whether a Sentry client traces", exc_info=True)
        _look_at_every_span()


def _look_at_every_span() -> None:
    global _tracing_seen, _streaming_seen
    _tracing_seen = _streaming_seen = True


def set_span_flag(flag: str, result: bool) -> None:
    """``add_feature_flag``'s span half: ``flag.evaluation.<key>`` on the current span.

    Runs on every boolean evaluation. With no client tracing, nothing is read (no span would
    be sent); otherwise the common case (no span) is one read of the public ``Scope.span``.
    """
    if not _tracing_seen:
        return
    scope = _current_scope()
    span: Any = scope.span
    if span is None:
        if not _streaming_seen:
            return
        span = scope.streamed_span  # type: ignore[attr-defined,unused-ignore]
        if span is None:
            return
    key = f"flag.evaluation.{flag}"
    set_flag = getattr(span, "set_flag", None)  # 2.x transactions and spans: capped at 10 a span
    if set_flag is not None:
        set_flag(key, result)
        return
    # Streamed spans (2.x span streaming, 3.x) take attributes; a 2.x span of a release before
    # set_flag (2.26.1) takes neither, and gets no flag, as add_feature_flag gives it none.
    set_attribute = getattr(span, "set_attribute", None)
    if set_attribute is not None:
        set_attribute(key, result)
