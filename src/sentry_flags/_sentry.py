"""The one place that reaches into sentry-sdk internals; everything else uses its public API.

sentry-sdk has no public per-client hook: an integration's ``setup_once`` runs once per
process, while apps and test suites build many clients. Every client is built in
``_Client._init_impl`` (by ``__init__``, and by ``__setstate__`` when a pickled client is
rebuilt), so that is where each one is bound, once. What is patched, and why:

- ``_Client._init_impl``: bind ``FlagsIntegration`` to the client just built (compose its
  ``before_send``, apply its settings). No public hook runs per client.
- ``_Client.flush``: deliver our queued errors to the vendors first, within part of the
  caller's budget. ``flush`` is what apps call before exiting; there is no flush hook.
- ``_Client.close``: stop our worker after sentry-sdk's own close (which flushed us).

What is read: ``Scope._contexts`` (no public getter; the per-scope values we keep live
there so they fork with the scope) and ``Span.set_flag`` (what ``add_feature_flag`` uses
to put ``flag.evaluation.<key>`` on the current span).

Tested on the oldest supported sentry-sdk (2.26.1, tox env ``sentry-oldest``) and the newest
2.x (tox env ``sentry-latest``; 2.75.0 when this was written).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

import sentry_sdk
from sentry_sdk.client import _Client
from sentry_sdk.scope import Scope

logger = logging.getLogger("sentry_flags")

FLUSH_SHARE = 2.0  # seconds of a Sentry flush we may spend draining the vendors

_installed = False


def install(integration_type: type[Any]) -> None:
    """Patch sentry-sdk's client once per process; idempotent.

    Called when a ``FlagsIntegration`` is built, which is always before the client that
    holds it (``sentry_sdk.init(integrations=[...])``, and unpickling rebuilds the
    integration before the client's ``__setstate__`` runs).
    """
    global _installed
    if _installed:
        return
    _installed = True

    original_init_impl = _Client._init_impl
    original_flush = _Client.flush
    original_close = _Client.close

    def _init_impl(self: Any) -> None:
        original_init_impl(self)
        try:
            integration = self.get_integration(integration_type)
            if integration is not None:
                integration.bind(self)
        except Exception as exc:
            _bind_failed(exc)

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

    _Client._init_impl = _init_impl  # type: ignore[method-assign]
    _Client.flush = flush  # type: ignore[method-assign]
    _Client.close = close  # type: ignore[method-assign]


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


def isolation_contexts() -> dict[str, Any]:
    """The current isolation scope's contexts, to read and write in place.

    ``set_context`` would do for writing, but the hooks run on every flag evaluation and
    also need to read what is there; a scope fork copies this dict, so each request and
    thread writes its own.
    """
    contexts: dict[str, Any] = sentry_sdk.get_isolation_scope()._contexts
    return contexts


def scope_contexts(scope: Any) -> dict[str, Any]:
    contexts = getattr(scope, "_contexts", None)
    return contexts if isinstance(contexts, dict) else {}


def _span_types() -> tuple[type[Any], ...]:
    from sentry_sdk.tracing import Span

    streamed = getattr(getattr(sentry_sdk, "traces", None), "StreamedSpan", None)
    return (Span,) if streamed is None else (Span, streamed)


_SPAN_TYPES = _span_types()
_current_scope = Scope.get_current_scope


def set_span_flag(flag: str, result: bool) -> None:
    """``add_feature_flag``'s span half: ``flag.evaluation.<key>`` on the current span.

    Runs on every boolean evaluation, so the common case (no span) is one attribute read:
    both span kinds live in the current scope's ``_span``.
    """
    span = _current_scope()._span
    if span is None:
        return
    if isinstance(span, _SPAN_TYPES[0]):
        set_flag = getattr(span, "set_flag", None)  # sentry-sdk 2.2x+: capped at 10 per span
        if set_flag is not None:
            set_flag(f"flag.evaluation.{flag}", result)
    elif len(_SPAN_TYPES) > 1 and isinstance(span, _SPAN_TYPES[1]):
        span.set_attribute(f"flag.evaluation.{flag}", result)
