"""LaunchDarkly: each captured error as a custom event (``track``) on the error's own context.

The event carries the real ``ldclient.Context`` of the request or task that raised, so
LaunchDarkly's own private-attribute rules (``private_attributes``,
``all_attributes_private``, ``Context.private(...)``) decide what leaves the process, and
the error lands on the same context the flag evaluations did: that is what lets
LaunchDarkly's experimentation and guarded rollouts attribute errors to a variation.

The experimental ``ldclient.async_client.AsyncLDClient`` (LD SDK 9.20+) works too, given the
event loop it runs on: its ``track`` is a plain method, but it puts the event on an
``asyncio.Queue`` (``DefaultAsyncEventProcessor.send_event`` -> ``put_nowait``), which only
the loop's own thread may touch. So the call is handed to that loop with
``call_soon_threadsafe`` and the delivery worker never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from sentry_flags._context import private_as_redacted
from sentry_flags._event import ErrorView
from sentry_flags._ldclient import CLOSED, STARTED, async_closed, async_started
from sentry_flags.forwarders._base import Forwarder, VendorCall, require_method

__all__ = ["DEFAULT_EVENT_KEY", "MAX_VALUE_LENGTH", "LaunchDarklyForwarder"]

logger = logging.getLogger("sentry_flags")

DEFAULT_EVENT_KEY = "sentry-errors"
# Exception values can hold whole payloads; the custom event is for counting errors per
# context and variation, not for reading them (Sentry has the full event).
MAX_VALUE_LENGTH = 256
ELLIPSIS = "..."


class LaunchDarklyForwarder(Forwarder):
    """Sends ``ld_client.track(event_key, context, data=...)`` for every captured error.

    The context is the request's or task's own LaunchDarkly context, so LaunchDarkly counts
    errors per variation (for a metric on ``event_key``). ``data`` summarizes the error
    (``eventId``, ``exceptionType``, ``exceptionValue``, ``culprit``, ``release``,
    ``environment``, ``level``, ``transaction``). Errors without a LaunchDarkly context are
    skipped and counted as ``skipped["no_context"]``: LaunchDarkly cannot attribute them to
    anyone; an invalid context as ``skipped["invalid_context"]``.

    With the experimental ``AsyncLDClient`` each ``track`` (and ``flush``) is scheduled on
    ``loop``, never awaited. Errors are then also skipped as ``loop_closed``,
    ``loop_stopped`` (a loop not running cannot send, and would only pile the calls up),
    ``client_not_started`` (before ``await client.start()`` the SDK drops events),
    ``client_closed``, and ``client_stopped`` (a forked child of a process whose loop was
    running). Guide: docs/forwarders-launchdarkly.md.

    Args:
        ld_client: An ``ldclient.LDClient``, an ``AsyncLDClient``, or anything with the same
            ``track(event_name, context, data=...)``. Never closed here: close it yourself
            at exit.
        event_key: The custom event key; use it as the event key of your LaunchDarkly
            metric. Default ``"sentry-errors"``.
        environments: The Sentry environments to forward (a set of names). Default `None`:
            every environment.
        loop: Keyword only. For an ``AsyncLDClient``, the asyncio loop it runs on: required
            then, refused for any other client. Default `None`.

    Raises:
        TypeError: ``ld_client`` has no ``track``; ``loop`` is missing for an
            ``AsyncLDClient`` or given for another client; ``event_key`` is not a `str`.
        ValueError: ``event_key`` is empty.
    """

    vendor = "launchdarkly"
    display_name = "LaunchDarkly"
    expected_skips = Forwarder.expected_skips | {"no_context", "invalid_context"}

    def __init__(
        self,
        ld_client: Any,
        event_key: str = DEFAULT_EVENT_KEY,
        environments: Optional[Iterable[str]] = None,
        *,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        require_method("ld_client", ld_client, "track", "an ldclient.LDClient or another client")
        self.is_async = _is_async_client(ld_client)
        if self.is_async and loop is None:
            raise TypeError(
                "ld_client is an AsyncLDClient: pass loop=, the event loop that client runs on "
                "(its track() may only be called on that loop's thread)"
            )
        if loop is not None:
            if not self.is_async:
                raise TypeError(
                    "loop is only for ldclient.async_client.AsyncLDClient; ld_client is "
                    f"{type(ld_client).__name__}, whose track() is called directly"
                )
            if not isinstance(loop, asyncio.AbstractEventLoop):
                raise TypeError(f"loop must be an asyncio event loop, got {type(loop).__name__}")
        if not isinstance(event_key, str):
            raise TypeError(f"event_key must be a str, got {type(event_key).__name__}")
        if not event_key.strip():
            raise ValueError("event_key must be a non-empty LaunchDarkly event key, got an empty str")
        super().__init__(environments=environments)
        self.client = ld_client
        self.event_key = event_key
        self.loop = loop
        # Strong references to the flush tasks until they finish: the loop keeps only weak ones.
        self._flush_tasks: set[asyncio.Task[Any]] = set()

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        context = view.ld_context
        if context is None:
            return self.skip("no_context")
        if not getattr(context, "valid", True):
            # LDClient.track would only log a warning and drop it.
            return self.skip("invalid_context")
        if self.loop is not None:
            unable = self._why_loop_cannot_send(self.loop)
            if unable is not None:
                return self.skip(unable)
        # Whatever launchdarklyContext lost on the Sentry event (personal attributes the app
        # does not allow, private ones of the evaluating client) is marked private, so LD
        # redacts it as well.
        context = self._marked(context, view.ld_context_json)
        return [
            VendorCall(
                "track",
                {"event_name": self.event_key, "context": context, "data": error_data(view)},
            )
        ]

    _last_marked: Optional[tuple[Any, Any, Any]] = None

    def _marked(self, context: Any, redacted: Any) -> Any:
        # Rebuilding a Context costs more than the rest of the call; the errors of a request
        # (and of a storm) mostly share one. A tuple is replaced whole, so a reader on
        # another delivery thread sees an old or a new entry, never half of one.
        last = self._last_marked
        if last is not None and last[0] is context and last[1] == redacted:
            return last[2]
        marked = private_as_redacted(context, redacted)
        self._last_marked = (context, redacted, marked)
        return marked

    def send(self, call: VendorCall) -> bool:
        if self.loop is not None:
            # Returns at once; "forwarded" means handed to the client's loop. A track that
            # then raises there is moved from forwarded to failed (see _track_on_loop). A
            # loop closed since calls() checked raises RuntimeError here: counted as failed.
            self.loop.call_soon_threadsafe(self._track_on_loop, call.kwargs)
            return True
        # LDClient.track returns None and queues in memory; when LD's own event queue is
        # full it drops silently, so "forwarded" here means "accepted by the SDK".
        self.client.track(**call.kwargs)
        return True

    def flush(self) -> None:
        if self.loop is not None:
            # AsyncLDClient.flush is a coroutine that only signals its event processor; it
            # runs as a task on the client's loop, and nobody waits for it.
            if self._why_loop_cannot_send(self.loop) is None:
                self.loop.call_soon_threadsafe(self._flush_on_loop)
            return
        flush = getattr(self.client, "flush", None)
        if callable(flush):
            flush()  # LDClient.flush only signals its event thread; it does not block

    _stopped_by_fork = False

    def after_fork(self) -> None:
        """In a forked child: stop forwarding if the client's loop was running at fork time.

        The thread that ran it did not survive the fork, yet the loop still says it is
        running; calls scheduled on it would never run. A loop that was not running then
        may be started in the child, and is used as usual.
        """
        super().after_fork()
        self._flush_tasks = set()
        self._stopped_by_fork = self.loop is not None and self.loop.is_running()

    # -- the AsyncLDClient's loop ---------------------------------------------------------

    def _why_loop_cannot_send(self, loop: asyncio.AbstractEventLoop) -> Optional[str]:
        """The skip reason when calls scheduled on ``loop`` would not reach LaunchDarkly."""
        if self._stopped_by_fork:
            return "client_stopped"
        if loop.is_closed():
            return "loop_closed"
        if not loop.is_running():
            return "loop_stopped"
        # Read across threads, without a lock: the SDK's own plain booleans, set once each.
        closed = async_closed(self.client)
        if closed is None:
            self._step_aside(CLOSED)
        elif closed:
            return "client_closed"
        started = async_started(self.client)
        if started is None:
            self._step_aside(STARTED)
        elif not started:
            return "client_not_started"
        return None

    def _track_on_loop(self, kwargs: Mapping[str, Any]) -> None:
        # Runs on the client's loop: an exception here would only reach the loop's
        # exception handler, so it is counted and logged like one raised by send().
        try:
            self.client.track(**kwargs)
        except Exception as exc:
            self._counters.reclassify("forwarded", "failed")
            logger.debug(
                "launchdarkly forwarder: call failed on the client's loop (%s)",
                type(exc).__name__,
                exc_info=True,
            )

    def _flush_on_loop(self) -> None:
        try:
            task = asyncio.ensure_future(self.client.flush())
        except Exception:
            logger.debug("launchdarkly flush failed on the client's loop", exc_info=True)
            return
        self._flush_tasks.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[Any]) -> None:
        self._flush_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("launchdarkly flush failed", exc_info=task.exception())


def _is_async_client(client: Any) -> bool:
    try:
        from sentry_flags.launchdarkly import is_async_client
    except ImportError:  # no LD SDK: a duck-typed client, called directly
        return False
    return is_async_client(client)


def error_data(view: ErrorView) -> dict[str, Any]:
    """The error summary carried as the custom event's ``data``; unknown fields left out."""
    # Every field cut: a 1 MB value anywhere would otherwise ride along to LaunchDarkly.
    fields: dict[str, Optional[str]] = {
        "eventId": truncate(view.event_id or None),
        "exceptionType": truncate(view.exception_type),
        "exceptionValue": truncate(view.exception_value),
        "culprit": truncate(view.culprit),
        "release": truncate(view.release),
        "environment": truncate(view.environment),
        "level": truncate(view.level),
        "transaction": truncate(view.transaction),
    }
    if view.exception_type is None and view.exception_value is None:
        # capture_message errors have no exception; their text is what identifies them.
        fields["message"] = truncate(view.message)
    return {key: value for key, value in fields.items() if value is not None}


def truncate(value: Optional[str], limit: int = MAX_VALUE_LENGTH) -> Optional[str]:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - len(ELLIPSIS)] + ELLIPSIS
