"""The recorder behind `sentry_flags.testing`: ``capture_forwarded`` and ``RecordingForwarder``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import sentry_sdk

from sentry_flags._event import ErrorView
from sentry_flags._integration import FlagsIntegration
from sentry_flags.forwarders._base import Forwarder, VendorCall

DEFAULT_TIMEOUT = 2.0
_PATCHED = ("_deliver", "send", "flush")
_MISSING = object()


@dataclass(frozen=True)
class ForwardedCall:
    """One vendor SDK call a forwarder would have made, as `capture_forwarded` records it.

    ``method`` and ``kwargs`` are exactly what the forwarder passes to the vendor client
    (e.g. ``track`` with ``event_name``/``context``/``data`` for LaunchDarkly), so asserting
    on them asserts on the real call.

    Attributes:
        vendor: The forwarder's vendor: ``"split"``, ``"launchdarkly"``, ``"segment"``,
            ``"openfeature"``, or your forwarder's. With several forwarders, select by it.
        method: The vendor client's method, e.g. ``"track"``.
        kwargs: The keyword arguments of the call.
        event_id: The Sentry event the call came from.
        forwarder: The forwarder that made it (not compared, not shown).
    """

    vendor: str
    method: str
    kwargs: Mapping[str, Any]
    event_id: str
    forwarder: Forwarder = field(compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """``{"vendor", "method", "kwargs", "event_id"}`` as plain data."""
        return {
            "vendor": self.vendor,
            "method": self.method,
            "kwargs": dict(self.kwargs),
            "event_id": self.event_id,
        }


def current_integration() -> FlagsIntegration:
    """The ``FlagsIntegration`` of the current Sentry client.

    Raises:
        RuntimeError: The current client has none (``sentry_sdk.init`` was not called with one).
    """
    integration = sentry_sdk.get_client().get_integration(FlagsIntegration)
    if integration is None:
        raise RuntimeError(
            "no FlagsIntegration on the current Sentry client: call "
            "sentry_sdk.init(integrations=[FlagsIntegration(forwarders=[...])]) first"
        )
    return integration


def flush_forwarders(
    timeout: float = DEFAULT_TIMEOUT, *, integration: Optional[FlagsIntegration] = None
) -> bool:
    """Deliver every queued error to the forwarders now, then flush the vendor clients.

    Use it instead of sleeping; ``sentry_sdk.flush()`` does the same and also flushes
    Sentry's transport.

    Args:
        timeout: Seconds to wait at most. Default ``2``.
        integration: Keyword only. Default `None`: the current Sentry client's
            ``FlagsIntegration``.

    Returns:
        `False` when that did not finish within ``timeout``.

    Raises:
        RuntimeError: There is no ``FlagsIntegration`` on the current Sentry client.
    """
    found = integration if integration is not None else current_integration()
    return found.flush(timeout)


@contextmanager
def capture_forwarded(
    *, integration: Optional[FlagsIntegration] = None, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[list[ForwardedCall]]:
    """Record, instead of sending, the vendor calls for errors captured inside the block.

    Yields a list that fills as the delivery worker handles those errors. On exit the
    queue is drained (bounded by ``timeout``) before the forwarders are restored, so after
    the block the list is complete and nothing captured inside it reaches a vendor. To
    assert inside the block, call `flush_forwarders` first. Recorded calls count as
    ``forwarded`` in the forwarders' stats; vendor flushes are skipped while recording.
    Errors captured before the block are delivered normally.

    The list holds the calls of every forwarder, in the order the delivery thread made
    them: select the vendor you assert on (``[c for c in calls if c.vendor == "segment"]``)
    rather than indexing.

    Args:
        integration: Keyword only. The `FlagsIntegration` whose forwarders to record.
            Default `None`: the current Sentry client's.
        timeout: Keyword only. Seconds to wait on exit for queued errors. Default ``2``.

    Yields:
        The list of `ForwardedCall`, filled as the errors are delivered.

    Raises:
        RuntimeError: There is no ``FlagsIntegration`` on the current Sentry client.
    """
    found = integration if integration is not None else current_integration()
    records: list[ForwardedCall] = []
    recorder = _Recorder(records, started=time.monotonic())
    saved: list[tuple[Forwarder, dict[str, Any]]] = []
    try:
        for forwarder in found.forwarders:
            saved.append((forwarder, recorder.patch(forwarder)))
        yield records
    finally:
        try:
            found.flush(timeout)
        finally:
            for forwarder, originals in reversed(saved):
                _restore(forwarder, originals)


class _Recorder:
    """Per-forwarder wrappers for one ``capture_forwarded`` block.

    ``_deliver`` marks, on the delivery worker's thread, whether the error being delivered
    was captured inside the block; ``send`` records marked calls and passes others through,
    so errors queued before the block still go to the vendor.
    """

    def __init__(self, records: list[ForwardedCall], started: float) -> None:
        self.records = records
        self.started = started
        self._local = threading.local()

    def patch(self, forwarder: Forwarder) -> dict[str, Any]:
        originals = {name: vars(forwarder).get(name, _MISSING) for name in _PATCHED}
        deliver: Callable[[ErrorView, list[VendorCall], float], None] = forwarder._deliver
        send: Callable[[VendorCall], bool] = forwarder.send
        local = self._local

        def recording_deliver(view: ErrorView, calls: list[VendorCall], captured_at: float) -> None:
            previous = getattr(local, "view", None)
            local.view = view if captured_at >= self.started else None
            try:
                deliver(view, calls, captured_at)
            finally:
                local.view = previous

        def recording_send(call: VendorCall) -> bool:
            view: Optional[ErrorView] = getattr(local, "view", None)
            if view is None:
                return send(call)
            self.records.append(
                ForwardedCall(forwarder.vendor, call.method, dict(call.kwargs), view.event_id, forwarder)
            )
            return True

        def no_flush() -> None:
            pass  # recorded calls never reached the vendor client; nothing to flush

        forwarder._deliver = recording_deliver  # type: ignore[method-assign]
        forwarder.send = recording_send  # type: ignore[method-assign]
        forwarder.flush = no_flush  # type: ignore[method-assign]
        return originals


def _restore(forwarder: Forwarder, originals: Mapping[str, Any]) -> None:
    for name, value in originals.items():
        if value is _MISSING:
            vars(forwarder).pop(name, None)
        else:
            setattr(forwarder, name, value)


class RecordingForwarder(Forwarder):
    """A forwarder that keeps every `ErrorView` it is handed.

    For testing code that consumes views, or what reaches forwarders at all:

        recorder = RecordingForwarder()
        sentry_sdk.init(integrations=[FlagsIntegration(forwarders=[recorder])])
        sentry_sdk.capture_exception(ValueError("boom"))
        flush_forwarders()
        [view] = recorder.views
        assert view.exception_type == "ValueError"

    It goes through the same ``calls``/``send`` path as the vendor forwarders, so the
    ``environments`` filter and ``stats`` behave the same way.

    Args:
        environments: The Sentry environments to record (a set of names). Default `None`:
            every environment.
    """

    vendor = "recording"

    def __init__(self, *, environments: Optional[Iterable[str]] = None) -> None:
        super().__init__(environments=environments)
        self._changed = threading.Condition()
        self._views: list[ErrorView] = []
        self._flushes = 0

    @property
    def views(self) -> list[ErrorView]:
        """The views received so far, in delivery order (a copy)."""
        with self._changed:
            return list(self._views)

    @property
    def event_ids(self) -> list[str]:
        """The Sentry event ids of the views received so far, in delivery order."""
        return [view.event_id for view in self.views]

    @property
    def flushes(self) -> int:
        """How often delivery asked this forwarder to flush."""
        with self._changed:
            return self._flushes

    def wait_for(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Wait until at least ``count`` views arrived; False at ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._views) >= count, timeout)

    def clear(self) -> None:
        """Forget the views received so far."""
        with self._changed:
            self._views.clear()

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        return [VendorCall("record", {"view": view})]

    def send(self, call: VendorCall) -> bool:
        with self._changed:
            self._views.append(call.kwargs["view"])
            self._changed.notify_all()
        return True

    def flush(self) -> None:
        with self._changed:
            self._flushes += 1
