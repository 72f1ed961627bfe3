"""Segment: each captured error as an ``Error Captured`` track event, as Sentry's own forwarder.

The event has the shape Sentry's Segment data forwarder sends (properties ``eventId``,
``exceptionType``, ``release``, ``environment``, ``transaction``, ``userAgent``, ``page``;
request data also in Segment's standard ``context``), so existing Segment destinations and
warehouse tables keep working when an app moves from Sentry's forwarder to this one.
Works with ``segment.analytics.Client`` (segment-analytics-python 2.x), the legacy
``analytics.Client`` (analytics-python 1.4), either package's module-level API, or anything
with the same ``track``; no Segment import is needed here.

The message itself is built in ``_segment_message``; what this relies on in Segment's SDKs
beyond their documented API (the library name, restarting consumers) is in ``_segment``.
The forwarder still reads the client's public state (stopped consumers, a forked child's
dead threads, a flush that would block forever) next to the calls that rely on it.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable
from numbers import Real
from types import ModuleType
from typing import Any, Optional

from sentry_flags._event import ErrorView
from sentry_flags._rate import RateBound
from sentry_flags._segment import CONSUMERS, LIBRARY, LibraryKept, library_lost, rebuilt_consumer
from sentry_flags.forwarders._base import BackoffForwarder, Forwarder, VendorCall, require_method
from sentry_flags.forwarders._segment_message import (
    LARGEST_MESSAGE,
    MAX_EVENT_NAME,
    MAX_MESSAGE_SIZE,
    MAX_USER_ID,
    encoded_size,
    error_message,
    message_size,
)

__all__ = ["DEFAULT_EVENT_NAME", "DEFAULT_MAX_PER_SECOND", "MAX_MESSAGE_SIZE", "SegmentForwarder"]

logger = logging.getLogger("sentry_flags")

DEFAULT_EVENT_NAME = "Error Captured"
DEFAULT_MAX_PER_SECOND = 200  # what Sentry's own Segment forwarder allows
LIBRARY_NAME = "sentry-flags"


class SegmentForwarder(BackoffForwarder):
    """Sends ``segment_client.track(user_id, "Error Captured", properties, context, ...)``.

    ``user_id`` is the Sentry event's ``user.id``; errors without one are skipped and counted
    as ``skipped["no_user_id"]``, as Sentry's own forwarder does (Segment needs a user).
    ``message_id`` is the Sentry event id, so Segment de-duplicates a retried delivery, and
    ``timestamp`` is when the error happened. At most ``max_per_second`` errors a second
    (token bucket on capture time) are sent; the rest are counted as ``rate_limited``.
    Other skips, in ``stats.skipped``: ``environment``, ``user_id_too_long``, ``backoff``
    (Segment refused a call a moment ago), ``no_write_key`` (module API before
    ``write_key`` is set), ``client_stopped``. Guide: docs/forwarders-segment.md.

    Args:
        segment_client: A ``segment.analytics.Client`` (segment-analytics-python 2.x), an
            ``analytics.Client`` (analytics-python 1.4), either package's module-level API,
            or anything with the same ``track``. Never shut down here: call its
            ``shutdown()`` yourself at exit, after ``sentry_sdk.flush()``.
        max_per_second: At most this many errors a second go to Segment, as Sentry's own
            forwarder; the rest are counted as ``rate_limited``. A number, at least 1.
            Default ``200``.
        environments: The Sentry environments to forward (a set of names). Default `None`:
            every environment.
        event_name: The Segment event name, at most 200 characters. Default
            ``"Error Captured"``.

    Raises:
        TypeError: ``segment_client`` has no ``track``, or an option has the wrong type.
        ValueError: ``max_per_second`` is not a finite number of at least 1, or
            ``event_name`` is empty or too long.
    """

    vendor = "segment"
    display_name = "Segment"
    expected_skips = Forwarder.expected_skips | {"no_user_id", "user_id_too_long"}
    flush_timeout = 2.0
    """Seconds a flush waits at most for Segment's consumer to post what it queued."""

    def __init__(
        self,
        segment_client: Any,
        max_per_second: float = DEFAULT_MAX_PER_SECOND,
        environments: Optional[Iterable[str]] = None,
        event_name: str = DEFAULT_EVENT_NAME,
    ) -> None:
        require_method(
            "segment_client", segment_client, "track",
            "a Segment client (segment.analytics.Client or analytics.Client)",
        )  # fmt: skip
        self.max_per_second = _check_rate(max_per_second)
        self.event_name = _check_event_name(event_name)
        super().__init__(environments=environments)
        self.client = segment_client
        # Bursts of at most max_per_second in a row (the delivery's bound allows bigger ones).
        self._bucket = RateBound(self.max_per_second, burst=self.max_per_second)
        self._library = {"name": LIBRARY_NAME, "version": _version()}

    # -- Forwarder ------------------------------------------------------------------------

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        user_id = view.user_id
        if user_id is None:
            return self.skip("no_user_id")
        if encoded_size(user_id) > MAX_USER_ID:
            return self.skip("user_id_too_long")
        if self._paused(captured_at):
            return self.skip("backoff")
        client = self.client
        if _unconfigured_module(client):
            # Its first call would build the default client and raise (write_key unset).
            return self.skip("no_write_key")
        if _consumers_stopped(_module_client(client)) and not self._restart_after_fork():
            # shutdown()/join() was called (or a forked child's consumers could not be
            # restarted): the message would sit in the queue forever and make every later
            # flush() hang.
            return self.skip("client_stopped")
        if not self._bucket.take(captured_at):
            return self.rate_limit()
        kwargs = error_message(view, self.event_name, user_id, self._library)
        # Measuring costs a json.dumps per error; with the limits as they are, no message can
        # be over (tests/test_forwarder_segment.py builds the worst case).
        if LARGEST_MESSAGE > MAX_MESSAGE_SIZE and message_size(kwargs) > MAX_MESSAGE_SIZE:
            return self.skip("too_large")
        return [VendorCall("track", kwargs)]

    def send(self, call: VendorCall) -> bool:
        kwargs = dict(call.kwargs)
        kwargs["context"] = LibraryKept(kwargs["context"])
        try:
            result = self.client.track(**kwargs)
        except BaseException:
            self._refused()
            raise
        if library_lost(result, self._library):
            self._step_aside(LIBRARY)
        # segment's track returns (success, msg): success is False when its queue is full.
        # The module-level API of analytics-python returns None: taken as accepted.
        if result is False or (isinstance(result, tuple) and result and result[0] is False):
            self._refused()
            return False
        self._accepted()
        return True

    def flush(self) -> None:
        """Wait, at most ``flush_timeout`` seconds, until Segment's consumer posted its queue."""
        # The module's own flush() would create its default client if there is none.
        client = _module_client(self.client)
        if client is None:
            return
        flush = getattr(client, "flush", None)
        if not callable(flush):
            return
        if _consumers_stopped(client) and _unfinished(client):
            # queue.join() on a queue nobody consumes never returns.
            logger.debug("segment client is shut down with messages queued; not flushing it")
            return
        pending = getattr(client, "queue", None)
        if isinstance(pending, queue.Queue):
            # Segment's flush() is an unbounded queue.join(): against an API that hangs or
            # rate limits it waits as long as the consumer retries (minutes by default),
            # holding the delivery worker, and so every other forwarder, with it. The
            # consumer posts on its own; wait for it, bounded.
            if not _join(pending, self.flush_timeout):
                logger.debug(
                    "segment still has %d message(s) queued after %.1fs; they go out later",
                    pending.unfinished_tasks, self.flush_timeout,
                )  # fmt: skip
            return
        flush()

    _fork_pending = False  # a forked child whose Segment client awaits its consumers

    def after_fork(self) -> None:
        """In a forked child: Segment's consumer threads are gone; restart them when needed.

        Segment's client has no post-fork call of its own (LaunchDarkly has ``postfork()``,
        Split ``resume()``). The client gets a fresh queue now (no threads, nothing to
        wait for); its consumers start at the child's first forwarded error, so children
        that never forward one (a multiprocessing pool) get no extra thread.
        """
        super().after_fork()
        self._fork_pending = _renew_queue(_module_client(self.client))

    def _restart_after_fork(self) -> bool:
        if not self._fork_pending:
            return False
        self._fork_pending = False
        restarted = self._restart_consumers(_module_client(self.client))
        logger.debug(
            "forked process %d: Segment's consumer threads %s",
            os.getpid(), "restarted" if restarted else "left stopped",
        )  # fmt: skip
        return restarted

    def _restart_consumers(self, client: Any) -> bool:
        """Start a forked child's consumers again, on the client's (renewed) queue."""
        if not _restartable(client):
            return False
        try:
            replacements = [rebuilt_consumer(old, client.queue) for old in client.consumers]
        except Exception as exc:  # a constructor that wants other arguments
            self._step_aside(CONSUMERS, exc)
            return False
        started = [new for new in replacements if new is not None]
        if len(started) != len(replacements):
            self._step_aside(CONSUMERS)
            return False
        client.consumers = started
        for new in started:
            new.start()
        return True


# -- validation --------------------------------------------------------------------------


def _check_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"max_per_second must be a number of errors per second, got {value!r}")
    try:
        rate = float(value)
    except OverflowError:  # an int or Fraction past the float range
        rate = math.inf
    if not math.isfinite(rate) or rate < 1:
        # The bucket holds max_per_second tokens: below 1 it would never send anything.
        raise ValueError(f"max_per_second must be a finite number, at least 1, got {rate!r}")
    return rate


def _check_event_name(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"event_name must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("event_name must be a non-empty Segment event name, e.g. 'Error Captured'")
    if len(value) > MAX_EVENT_NAME:
        raise ValueError(f"event_name must be at most {MAX_EVENT_NAME} characters, got {len(value)}")
    return value


def _version() -> str:
    from sentry_flags import __version__

    return __version__


# -- the client's state, read defensively (duck-typed clients have none of it) -------------


def _unconfigured_module(client: Any) -> bool:
    return (
        isinstance(client, ModuleType)
        and getattr(client, "default_client", None) is None
        and not getattr(client, "write_key", None)
    )


def _module_client(client: Any) -> Any:
    """The client behind segment's module-level API (None until its first call)."""
    return getattr(client, "default_client", None) if isinstance(client, ModuleType) else client


def _consumers_stopped(client: Any) -> bool:
    consumers = getattr(client, "consumers", None)
    if not isinstance(consumers, list) or not consumers:
        return False  # sync_mode (None), or not a Segment client
    if getattr(client, "send", True) is False:
        return False  # send=False never starts them and never queues either
    return not any(getattr(c, "is_alive", lambda: True)() for c in consumers)


def _restartable(client: Any) -> bool:
    """In a forked child: every consumer ran in the parent at fork time and is gone here.

    Not when the app stopped them before forking (``join()``/``shutdown()`` pause them), nor
    for a client with OAuth: its token manager's state is the parent's (create such a
    client after forking).
    """
    consumers = getattr(client, "consumers", None)
    if (
        not isinstance(consumers, list)
        or not consumers
        or not isinstance(getattr(client, "queue", None), queue.Queue)
        or getattr(client, "send", True) is False
        or getattr(client, "oauth_manager", None) is not None
    ):
        return False
    return all(
        isinstance(consumer, threading.Thread)
        and consumer.ident is not None  # started in the parent
        and getattr(consumer, "running", False) is True  # and not paused
        and not consumer.is_alive()
        for consumer in consumers
    )


def _renew_queue(client: Any) -> bool:
    """Give a forked child's client an empty queue of the same size.

    The parent's queued messages are the parent's to send, and the old queue's lock may
    have been held by the parent's consumer at fork time (then every put, get and flush on
    it would wait forever).
    """
    if not _restartable(client):
        return False
    client.queue = queue.Queue(client.queue.maxsize)
    return True


def _unfinished(client: Any) -> bool:
    return bool(getattr(getattr(client, "queue", None), "unfinished_tasks", 0))


def _join(pending: queue.Queue[Any], timeout: float) -> bool:
    """``pending.join()`` that gives up after ``timeout`` seconds; True when it finished."""
    deadline = time.monotonic() + timeout
    with pending.all_tasks_done:
        while pending.unfinished_tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pending.all_tasks_done.wait(left)
    return True
