"""Split (Harness FME): each captured error as ``track`` events, one per identity mapping.

Split attributes an event to a feature flag's treatments through the key and traffic type
it was tracked on, so an error must be tracked on the same key the app passed to
``get_treatment``: ``identities`` says where in the Sentry event each traffic type's key
lives. Everything sent is built to pass Split's own input validation
(``splitio.client.input_validator``), so the SDK never logs an error and drops the event.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Optional

from sentry_flags._event import ErrorView
from sentry_flags._splitio import EVENTS_TASK, SDK_KEY, events_task, in_localhost_mode, is_splitio_client
from sentry_flags.forwarders._base import BackoffForwarder, Forwarder, VendorCall, require_method
from sentry_flags.forwarders._split_events import (
    MAX_KEY_LENGTH,
    culprit_event_type,
    error_properties,
    track_key,
)
from sentry_flags.forwarders._split_options import check_event_type, check_identities, check_value

__all__ = ["DEFAULT_EVENT_TYPE", "DEFAULT_IDENTITIES", "SplitForwarder", "culprit_event_type"]

logger = logging.getLogger("sentry_flags")

DEFAULT_EVENT_TYPE = "sentry_exception"
DEFAULT_IDENTITIES: Mapping[str, str] = MappingProxyType({"user": "user.id", "org": "user.orgId"})

ASYNC_TIMEOUT = 2.0


class SplitForwarder(BackoffForwarder):
    """Sends ``split_client.track(key, traffic_type, event_type, value, properties)``.

    One event of type ``event_type`` per identity whose path has a value in the error, and
    with ``capture_culprit=True`` (off by default, as in Split's own Sentry integration) one
    more per identity whose type names the culprit (``sentry_exception:<culprit>``), so a
    Split metric can count one code location. ``environments=None`` (the default) forwards
    every Sentry environment. ``split_client`` is ``factory.client()`` (or anything with the
    same ``track``); it is never destroyed here. For splitio's asyncio client pass the event
    loop it runs on as ``loop``. Errors skipped, in ``stats.skipped``: ``no_identity`` (no
    identity had a usable key), ``backoff``, ``not_ready``, ``client_destroyed``,
    ``client_stopped`` (a forked child of a running factory), ``environment``. Calls left
    out of an error that is forwarded, in ``stats.calls``: ``no_identity:<traffic type>``,
    ``key_too_long:<traffic type>``, ``no_culprit``. A client of a factory in splitio's
    ``localhost`` mode sends no events at all (its ``track`` only returns None): its errors
    are skipped as ``localhost_mode``. Guide: docs/forwarders-split.md.

    Args:
        split_client: ``factory.client()`` of a splitio factory, its asyncio client, or
            anything with the same ``track``. Never destroyed here: destroy the factory
            yourself at exit.
        identities: Keyword only. Split traffic type -> dotted path into the Sentry event
            (after the privacy rules) where that traffic type's key is: ``"user.id"``,
            ``"tags.org"``, ``"contexts.launchdarklyContext.org.key"``. One event per traffic
            type whose path has a value. Default ``{"user": "user.id", "org": "user.orgId"}``.
        environments: Keyword only. The Sentry environments to forward (a set of names).
            Default `None`: every environment.
        capture_culprit: Keyword only. Also send, per identity, an event whose type names
            the culprit. Default `False`, as "Capture Culprit" is an opt-in checkbox in
            Split's own integration (on, a metric over all event types counts each error
            twice).
        event_type: Keyword only. The Split event type (letters, digits, ``-_.:``, at most
            80 characters; 63 with ``capture_culprit``). Default ``"sentry_exception"``.
        value: Keyword only. The number sent as each event's ``value`` (``1`` to sum
            errors). Default `None`: none.
        include_tags: Keyword only. Add the event's Sentry tags as ``tags.<name>``
            properties, as far as Split's limits allow. Default `True`.
        loop: Keyword only. For splitio's asyncio client, the event loop it runs on:
            required then, refused otherwise. Default `None`.

    Raises:
        TypeError: ``split_client`` has no ``track``, ``loop`` is missing or not wanted, or
            an option has the wrong type.
        ValueError: ``identities`` is empty or has an invalid traffic type or path, or
            ``event_type`` is not a valid Split event type.
    """

    vendor = "split"
    display_name = "Split"
    expected_skips = Forwarder.expected_skips | {"no_identity", "localhost_mode"}

    async_timeout = ASYNC_TIMEOUT
    """Seconds the delivery thread waits for an asyncio client's ``track`` on its loop."""

    def __init__(
        self,
        split_client: Any,
        *,
        identities: Mapping[str, str] = DEFAULT_IDENTITIES,
        environments: Optional[Iterable[str]] = None,
        capture_culprit: bool = False,
        event_type: str = DEFAULT_EVENT_TYPE,
        value: Optional[float] = None,
        include_tags: bool = True,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        require_method("split_client", split_client, "track", "a splitio client (factory.client())")
        self.is_async = inspect.iscoroutinefunction(split_client.track)
        if self.is_async and loop is None:
            raise TypeError(
                "split_client.track is a coroutine (splitio's asyncio client): pass loop=, "
                "the event loop that client runs on"
            )
        if loop is not None:
            if not self.is_async:
                raise TypeError("loop is only for splitio's asyncio client; split_client.track is not async")
            if not isinstance(loop, asyncio.AbstractEventLoop):
                raise TypeError(f"loop must be an asyncio event loop, got {type(loop).__name__}")
        for option, flag in (("capture_culprit", capture_culprit), ("include_tags", include_tags)):
            if not isinstance(flag, bool):
                raise TypeError(f"{option} must be a bool, got {flag!r}")
        self.event_type = check_event_type(event_type, capture_culprit)
        self.identities = check_identities(identities)
        self.value = check_value(value)
        super().__init__(environments=environments)
        self.client = split_client
        try:
            self._localhost = in_localhost_mode(split_client)
        except AttributeError as exc:
            self._step_aside(SDK_KEY, exc)  # then track's None is counted as forwarded
            self._localhost = False
        self.loop = loop
        self.capture_culprit = capture_culprit
        self.include_tags = include_tags

    # -- Forwarder ------------------------------------------------------------------------

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        if self._localhost:
            return self.skip("localhost_mode")
        if self._paused(captured_at):
            return self.skip("backoff")
        # Asking is cheap; track is not: a destroyed client logs an error per call, and
        # one that is not ready logs a warning and costs milliseconds per call, queueing
        # events for a readiness that may never come.
        if getattr(self.client, "destroyed", False) is True:
            return self.skip("client_destroyed")
        if self._stopped_by_fork:
            return self.skip("client_stopped")
        if getattr(self.client, "ready", True) is False:
            return self.skip("not_ready")
        keys: list[tuple[str, str]] = []
        for traffic_type, path in self.identities:
            key = track_key(view.lookup(path))
            if key is None:
                self.skip_call(f"no_identity:{traffic_type}")
            elif len(key) > MAX_KEY_LENGTH:
                # Split refuses such keys in get_treatment too, so no treatment was ever
                # served to it: a hashed stand-in would be attributed to nobody.
                self.skip_call(f"key_too_long:{traffic_type}")
            else:
                keys.append((traffic_type, key))
        if not keys:
            # Per identity in stats.calls; the error itself had no key to track it on.
            return self.skip("no_identity")
        event_types = [self.event_type]
        if self.capture_culprit:
            if view.culprit:
                event_types.append(culprit_event_type(self.event_type, view.culprit))
            else:
                self.skip_call("no_culprit")
        properties = error_properties(view, include_tags=self.include_tags)
        return [
            VendorCall(
                "track",
                {
                    "key": key,
                    "traffic_type": traffic_type,
                    "event_type": event_type,
                    "value": self.value,
                    "properties": dict(properties),
                },
            )
            for traffic_type, key in keys
            for event_type in event_types
        ]

    def send(self, call: VendorCall) -> bool:
        if self._paused(self._now):
            # An earlier call for this same error was refused: don't wait on Split again
            # (an asyncio client on a stuck loop costs async_timeout per call).
            return False
        try:
            accepted = self._track(call.kwargs)
        except BaseException:
            self._refused()
            raise
        # splitio returns False when it dropped the event (queue full, client destroyed);
        # a duck-typed client returning None is taken as accepted.
        if accepted is False:
            self._refused()
            return False
        self._accepted()
        return True

    def flush(self) -> None:
        """Ask splitio to post its queued events now; returns without waiting.

        splitio has no public flush short of ``factory.destroy()``, which we never call on
        the app's factory; its events task has one (see ``sentry_flags._splitio``).
        """
        if not is_splitio_client(self.client) or getattr(self.client, "destroyed", False) is True:
            return
        try:
            task = events_task(self.client)
            task_flush = None if task is None else task.flush
        except AttributeError as exc:
            self._step_aside(EVENTS_TASK, exc)
            return
        if task_flush is None:
            return  # redis, localhost: nothing queued in this process
        if self.loop is not None:
            # The asyncio task's queue belongs to its loop's thread.
            if not self.loop.is_closed():
                self.loop.call_soon_threadsafe(task_flush)
            return
        task_flush()

    _stopped_by_fork = False

    def after_fork(self) -> None:
        """In a forked child: stop tracking if the factory's threads died with the fork.

        A factory that was running in the parent looks ready in the child, but its
        threads are gone: ``track`` would queue events nobody sends. splitio can only
        restart a factory built with ``preforkedInitialization`` (``factory.resume()``
        in the child), which is not running at fork time and is left alone here.
        """
        super().after_fork()
        self._stopped_by_fork = self.loop is None and self._lost_its_threads()

    # -- internals ------------------------------------------------------------------------

    def _lost_its_threads(self) -> bool:
        """In a forked child: True for an in-memory splitio factory that was running at fork
        time. None of its threads exist here, and splitio starts them again only for a
        ``preforkedInitialization`` factory (not ready until ``resume()``)."""
        if not is_splitio_client(self.client):
            return False
        try:
            task = events_task(self.client)
        except AttributeError as exc:
            self._step_aside(EVENTS_TASK, exc)
            return False
        # No events task: redis or localhost, nothing of ours to judge.
        return task is not None and getattr(self.client, "ready", False) is True

    def _track(self, kwargs: Mapping[str, Any]) -> Any:
        if self.loop is None:
            return self.client.track(**kwargs)
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("cannot wait for the asyncio Split client on its own loop's thread")
        coro = self.client.track(**kwargs)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except BaseException:
            coro.close()  # never scheduled: no "coroutine was never awaited" warning
            raise
        try:
            return future.result(self.async_timeout)
        except BaseException:
            future.cancel()
            raise
