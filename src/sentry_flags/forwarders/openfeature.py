"""OpenFeature: each captured error through OpenFeature's tracking API, to any provider.

``client.track(event_name, evaluation_context, TrackingEventDetails(attributes=...))`` on an
OpenFeature client (openfeature-sdk 0.9+): whichever provider the client is bound to receives
the error, if it implements tracking (LaunchDarkly's sends a custom event; a provider without
tracking ignores it). The evaluation context is rebuilt from the error's ``launchdarklyContext``
as it was attached to the Sentry event, by LaunchDarkly's OpenFeature rules backwards, so
LaunchDarkly's provider attributes the error to the same context the evaluations used, and
no provider is given an attribute the Sentry event did not carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from sentry_flags._event import ErrorView
from sentry_flags._openfeature import to_evaluation_context
from sentry_flags.forwarders._base import Forwarder, VendorCall, require_method
from sentry_flags.forwarders.launchdarkly import DEFAULT_EVENT_KEY, error_data

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.track import TrackingEventDetails
except ImportError as exc:  # pragma: no cover - openfeature-sdk < 0.9 (Python 3.9) or none
    raise ImportError(
        "OpenFeatureForwarder needs OpenFeature's tracking API, openfeature-sdk 0.9+ "
        "(Python 3.10+): pip install 'sentry-flags[openfeature]'"
    ) from exc

__all__ = ["DEFAULT_EVENT_NAME", "OpenFeatureForwarder"]

DEFAULT_EVENT_NAME = DEFAULT_EVENT_KEY  # the same metric as LaunchDarklyForwarder's


class OpenFeatureForwarder(Forwarder):
    """Sends ``client.track(event_name, evaluation_context, details)`` for every captured error.

    The evaluation context is rebuilt from the error's ``launchdarklyContext`` as the Sentry
    event carried it (redacted, after your ``before_send``). ``details.attributes`` is the
    error summary `LaunchDarklyForwarder` sends as ``data``; ``details.value`` is `None`.
    Errors without a ``launchdarklyContext`` are skipped as ``skipped["no_context"]``, ones
    whose context has no key as ``skipped["invalid_context"]``: a provider cannot attribute
    them to anyone. OpenFeature's ``track`` returns nothing, so ``forwarded`` means "accepted
    by the OpenFeature client". Guide: docs/openfeature.md, "OpenFeatureForwarder".

    Args:
        client: An OpenFeature client (``openfeature.api.get_client()``) or anything with the
            same ``track``.
        event_name: The tracking event name. Default ``"sentry-errors"``, the key
            `LaunchDarklyForwarder` uses.
        environments: The Sentry environments to forward (a set of names). Default `None`:
            every environment.

    Raises:
        TypeError: ``client`` has no ``track``, or ``event_name`` is not a `str`.
        ValueError: ``event_name`` is empty.
    """

    vendor = "openfeature"
    display_name = "OpenFeature"
    expected_skips = Forwarder.expected_skips | {"no_context", "invalid_context"}

    def __init__(
        self,
        client: Any,
        event_name: str = DEFAULT_EVENT_NAME,
        environments: Optional[Iterable[str]] = None,
    ) -> None:
        require_method("client", client, "track", "an OpenFeature client (openfeature.api.get_client())")
        if not isinstance(event_name, str):
            raise TypeError(f"event_name must be a str, got {type(event_name).__name__}")
        if not event_name.strip():
            raise ValueError("event_name must be a non-empty tracking event name, got an empty str")
        super().__init__(environments=environments)
        self.client = client
        self.event_name = event_name

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        # The context as the Sentry event carries it: redacted (private attributes, personal
        # ones the app does not allow) and after the app's before_send. Providers differ in
        # what they do with OpenFeature's privateAttributes, so nothing else is sent.
        redacted = view.ld_context_json
        if redacted is None:
            return self.skip("no_context")
        found = to_evaluation_context(redacted)
        if found is None:
            return self.skip("invalid_context")
        targeting_key, attributes = found
        return [
            VendorCall(
                "track",
                {
                    "tracking_event_name": self.event_name,
                    "evaluation_context": EvaluationContext(targeting_key, attributes),
                    "tracking_event_details": TrackingEventDetails(attributes=dict(error_data(view))),
                },
            )
        ]

    def send(self, call: VendorCall) -> bool:
        # OpenFeature's track returns None and a provider may ignore it, so "forwarded" means
        # "accepted by the OpenFeature client"; only an exception counts as failed.
        self.client.track(**call.kwargs)
        return True
