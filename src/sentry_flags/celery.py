"""Celery: a task's errors carry the LaunchDarkly context that was active when it was sent.

    import sentry_flags.celery
    sentry_flags.celery.connect()        # in the code that both producer and worker import

``before_task_publish`` puts the context into the task message's headers; ``task_prerun``
restores it for the task (a Flask request context the task pushes keeps it),
``task_postrun`` puts back what was there before (a worker thread, or the caller of an
eager task, keeps its own).

What travels through the broker is the context as Sentry shows it (``launchdarklyContext``):
private attributes are left out, and so are names and emails when the app does not allow
PII, because the broker and whatever reads its queues are one more place the data would
be kept. With ``connect(attributes=False)`` only kinds and keys travel. Celery's message
protocol 2 (the default since Celery 4) is needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

import sentry_sdk

from sentry_flags._context import (
    CONTEXT_KEY,
    NO_REDACTION,
    TaskRun,
    any_client_redaction,
    current_slot,
    redact,
    set_task_context,
)
from sentry_flags._fork import ForkSafeLock
from sentry_flags._integration import FlagsIntegration
from sentry_flags._privacy import allows_user_info
from sentry_flags._sentry import scope_contexts

try:
    from celery import signals
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("sentry_flags.celery needs Celery: pip install 'sentry-flags[celery]'") from exc

if TYPE_CHECKING:
    from ldclient import Context

__all__ = ["HEADER", "connect", "disconnect"]

logger = logging.getLogger("sentry_flags")

HEADER = "sentry_flags_ld_context"
MAX_HEADER_BYTES = 8192  # past this only kinds and keys travel: brokers cap header sizes
_UID = "sentry_flags.celery"
_MISSING = object()

_state_lock = ForkSafeLock()
_connected: Optional[bool] = None  # None: not connected; else the ``attributes`` option
# task id -> (isolation scope, slot before the task, the task's run)
_previous: dict[str, tuple[Any, Any, Optional[TaskRun]]] = {}


def connect(*, attributes: bool = True) -> None:
    """Connect the signal handlers, in the code both the sender and the worker import.

    Connects once; calling again only changes ``attributes``. Initialise Sentry (with
    ``CeleryIntegration`` and `FlagsIntegration`) before the worker starts. Guide:
    docs/frameworks.md, "Celery".

    Args:
        attributes: Keyword only. Send the context's attributes as ``launchdarklyContext``
            shows them (redacted). Default `True`; `False` sends only kinds, keys and
            ``anonymous``.

    Raises:
        TypeError: ``attributes`` is not a `bool`.
    """
    global _connected
    if not isinstance(attributes, bool):  # "no" from an env var would mean True
        raise TypeError(f"attributes must be a bool, got {attributes!r}")
    with _state_lock:
        first = _connected is None
        _connected = attributes
    if first:
        signals.before_task_publish.connect(_before_task_publish, weak=False, dispatch_uid=_UID)
        signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid=_UID)
        signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid=_UID)


def disconnect() -> None:
    """Undo `connect`: disconnect the signal handlers."""
    global _connected
    with _state_lock:
        _connected = None
    signals.before_task_publish.disconnect(_before_task_publish, dispatch_uid=_UID)
    signals.task_prerun.disconnect(_task_prerun, dispatch_uid=_UID)
    signals.task_postrun.disconnect(_task_postrun, dispatch_uid=_UID)


# -- producer --------------------------------------------------------------------------------------


def _before_task_publish(headers: Optional[dict[str, Any]] = None, **kwargs: Any) -> None:
    try:
        if not isinstance(headers, dict) or _connected is None:
            return
        payload = _payload(attributes=_connected)
        if payload is not None:
            headers[HEADER] = payload
    except Exception:
        logger.debug("could not add the LaunchDarkly context to a task message", exc_info=True)


def _payload(*, attributes: bool) -> Optional[dict[str, Any]]:
    # What an error captured now would carry: a task sent from a Flask request gets the
    # request's context, as the request's errors do.
    slot = current_slot()
    context = slot.resolve() if slot is not None else None  # a lazy provider is built here
    if slot is None or context is None:
        return None
    if not attributes:
        return _keys_only(context)
    client = sentry_sdk.get_client()
    integration = client.get_integration(FlagsIntegration)
    redaction = slot.redaction or any_client_redaction(
        integration.redaction if integration is not None else NO_REDACTION
    )
    data = _without_meta(redact(context, redaction, pii=allows_user_info(client.options)))
    if len(json.dumps(data, default=str)) > MAX_HEADER_BYTES:
        return _keys_only(context)
    return data


def _without_meta(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "_meta"}
    if out.get("kind") == "multi":
        for kind, member in out.items():
            if kind != "kind" and isinstance(member, dict):
                out[kind] = {k: v for k, v in member.items() if k != "_meta"}
    return out


def _keys_only(context: Context) -> dict[str, Any]:
    def single(c: Context, *, with_kind: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": c.kind, "key": c.key} if with_kind else {"key": c.key}
        if c.anonymous:
            out["anonymous"] = True
        return out

    if not context.multiple:
        return single(context, with_kind=True)
    out: dict[str, Any] = {"kind": "multi"}
    for i in range(context.individual_context_count):
        member = context.get_individual_context(i)
        if member is not None:
            out[member.kind] = single(member, with_kind=False)
    return out


# -- worker ---------------------------------------------------------------------------------------------


def _task_prerun(task_id: Optional[str] = None, task: Any = None, **kwargs: Any) -> None:
    try:
        request = getattr(task, "request", None)
        if task_id is None or request is None or getattr(request, "is_eager", False):
            return  # an eager task runs in its caller's scope, context included
        context = _restore(_header(request))
        scope = sentry_sdk.get_isolation_scope()
        previous = scope_contexts(scope).get(CONTEXT_KEY, _MISSING)
        # A task sent without a context gets none, not the last task's; a Flask request
        # context the task pushes keeps it too.
        run = set_task_context(context)
        with _state_lock:
            _previous[task_id] = (scope, previous, run)
    except Exception:
        logger.debug("could not restore the LaunchDarkly context of a task", exc_info=True)


def _task_postrun(task_id: Optional[str] = None, **kwargs: Any) -> None:
    try:
        with _state_lock:
            saved = _previous.pop(task_id, None) if task_id is not None else None
        if saved is None:
            return
        scope, slot, run = saved
        if run is not None:  # the task's context is no longer its threads' requests'
            run.running = False
        if slot is _MISSING:
            scope.remove_context(CONTEXT_KEY)
        else:
            scope.set_context(CONTEXT_KEY, slot)
    except Exception:
        logger.debug("could not reset the LaunchDarkly context after a task", exc_info=True)


def _header(request: Any) -> Any:
    value = getattr(request, HEADER, None)
    if value is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, Mapping):
            value = headers.get(HEADER)
    return value


def _restore(payload: Any) -> Optional[Context]:
    if not isinstance(payload, Mapping):
        return None
    try:
        from ldclient import Context
    except ImportError:  # the producer had LaunchDarkly, this worker has not
        return None
    context = Context.from_dict(dict(payload))
    if not context.valid:
        logger.debug("ignoring an invalid LaunchDarkly context from a task: %s", context.error)
        return None
    return context
