"""LaunchDarkly: each captured error as a custom event (``track``) on the error's own context.

The event carries the real ``ldclient.Context`` of the request or task that raised, so
LaunchDarkly's own private-attribute rules (``private_attributes``,
``all_attributes_private``, ``Context.private(...)``) decide what leaves the process, and
the error lands on the same context the flag evaluations did: that is what lets
LaunchDarkly's experimentation and guarded rollouts attribute errors to a variation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from sentry_flags._context import private_as_redacted
from sentry_flags._event import ErrorView
from sentry_flags.forwarders._base import Forwarder, VendorCall, require_method

__all__ = ["DEFAULT_EVENT_KEY", "MAX_VALUE_LENGTH", "LaunchDarklyForwarder"]

DEFAULT_EVENT_KEY = "sentry-errors"
# Exception values can hold whole payloads; the custom event is for counting errors per
# context and variation, not for reading them (Sentry has the full event).
MAX_VALUE_LENGTH = 256
ELLIPSIS = "..."


class LaunchDarklyForwarder(Forwarder):
    """Sends ``ld_client.track(event_key, context, data=...)`` for every captured error.

    ``ld_client`` is an ``ldclient.LDClient`` (or anything with the same ``track``); it is
    never closed here. Errors without a LaunchDarkly context are skipped and counted as
    ``skipped["no_context"]``: LaunchDarkly cannot attribute them to anyone.
    """

    vendor = "launchdarkly"
    display_name = "LaunchDarkly"
    expected_skips = Forwarder.expected_skips | {"no_context", "invalid_context"}

    def __init__(
        self,
        ld_client: Any,
        event_key: str = DEFAULT_EVENT_KEY,
        environments: Optional[Iterable[str]] = None,
    ) -> None:
        require_method("ld_client", ld_client, "track", "an ldclient.LDClient or another client")
        if not isinstance(event_key, str):
            raise TypeError(f"event_key must be a str, got {type(event_key).__name__}")
        if not event_key.strip():
            raise ValueError("event_key must be a non-empty LaunchDarkly event key, got an empty str")
        super().__init__(environments=environments)
        self.client = ld_client
        self.event_key = event_key

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        context = view.ld_context
        if context is None:
            return self.skip("no_context")
        if not getattr(context, "valid", True):
            # LDClient.track would only log a warning and drop it.
            return self.skip("invalid_context")
        # Whatever launchdarklyContext lost on the Sentry event (personal attributes the app
        # does not allow, private ones of the evaluating client) is marked private, so LD
        # redacts it as well.
        context = private_as_redacted(context, view.ld_context_json)
        return [
            VendorCall(
                "track",
                {"event_name": self.event_key, "context": context, "data": error_data(view)},
            )
        ]

    def send(self, call: VendorCall) -> bool:
        # LDClient.track returns None and queues in memory; when LD's own event queue is
        # full it drops silently, so "forwarded" here means "accepted by the SDK".
        self.client.track(**call.kwargs)
        return True

    def flush(self) -> None:
        flush = getattr(self.client, "flush", None)
        if callable(flush):
            flush()  # LDClient.flush only signals its event thread; it does not block


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
