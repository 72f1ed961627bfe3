"""A stand-in for LaunchDarkly's polling and events APIs, and the flag JSON it serves.

Point a real ``LDClient`` at it with ``Config("sdk-key", **receiver.config_kwargs)``: the
client polls the flags set with `LaunchDarklyReceiver.set_flags`, and its analytics and
custom events (what `LaunchDarklyForwarder` sends) arrive in `LaunchDarklyReceiver.events`.
"""

from __future__ import annotations

from typing import Any, Optional

from sentry_flags.testing.receivers._base import (
    DEFAULT_TIMEOUT,
    BaseReceiver,
    RecordedRequest,
    Response,
    flatten,
    wait_for,
)

__all__ = ["LaunchDarklyReceiver", "ld_flag"]


def ld_flag(
    key: str,
    variations: Optional[list[Any]] = None,
    *,
    on: bool = True,
    fallthrough_variation: int = 0,
    off_variation: int = 1,
    version: int = 1,
    track_events: bool = False,
) -> dict[str, Any]:
    """A minimal server-side flag, as LaunchDarkly's ``/sdk/latest-all`` serves it.

    Target individual context keys by adding to the returned dict, e.g.
    ``flag["targets"] = [{"values": ["alice"], "variation": 0}]``.

    Args:
        key: The flag key.
        variations: The values the flag can serve. Default `None`: ``[True, False]``.
        on: Whether targeting is on. Default `True`; off serves ``off_variation``.
        fallthrough_variation: The index served to every context when targeting is on.
            Default ``0``.
        off_variation: The index served when targeting is off. Default ``1``.
        version: The flag's version; bump it when changing a flag. Default ``1``.
        track_events: Whether the SDK sends a full event for every evaluation. Default
            `False`.

    Returns:
        The flag as JSON-ready data, for `LaunchDarklyReceiver.set_flags`.
    """
    return {
        "key": key,
        "version": version,
        "on": on,
        "variations": [True, False] if variations is None else variations,
        "fallthrough": {"variation": fallthrough_variation},
        "offVariation": off_variation,
        "targets": [],
        "contextTargets": [],
        "rules": [],
        "prerequisites": [],
        "salt": key,
        "trackEvents": track_events,
        "trackEventsFallthrough": False,
        "debugEventsUntilDate": None,
        "clientSideAvailability": {"usingMobileKey": False, "usingEnvironmentId": False},
        "deleted": False,
    }


class LaunchDarklyReceiver(BaseReceiver):
    """LaunchDarkly's polling (``GET /sdk/latest-all``) and events (``/bulk``, ``/diagnostic``) APIs.

    Listens on 127.0.0.1 from construction until `stop` (or the end of a ``with`` block):

        with LaunchDarklyReceiver() as ld:
            ld.set_flags(ld_flag("new-checkout"))
            client = LDClient(Config("sdk-key", **ld.config_kwargs))
            client.variation("new-checkout", Context.create("user-42"), False)  # True
            client.track("sentry-errors", Context.create("user-42"))
            client.flush()
            [event] = ld.wait_for_events(1, kind="custom")

    Streaming (``GET /all``) is not served: `config_kwargs` sets ``stream=False``, so the
    client polls. Takes no arguments; every other behaviour is set on the instance
    (`set_flags`, and `BaseReceiver.set_mode` for faults).
    """

    POLL_PATH = "/sdk/latest-all"

    def __init__(self) -> None:
        self._flags: dict[str, dict[str, Any]] = {}
        self._segments: dict[str, dict[str, Any]] = {}
        super().__init__()

    def set_flags(self, *flags: dict[str, Any]) -> None:
        """Replace the served flags (built with `ld_flag`).

        Clients see them at their next poll; bump a changed flag's ``version``, or the SDK
        keeps the one it has.
        """
        with self._lock:
            self._flags = {flag["key"]: flag for flag in flags}

    @property
    def config_kwargs(self) -> dict[str, Any]:
        """Keywords for ``ldclient.config.Config`` that point the client here.

        Every URL (``base_uri``, ``events_uri``, ``stream_uri``) and ``stream=False``:
        ``Config("sdk-key", **receiver.config_kwargs)``. A new dict each time.
        """
        return {"base_uri": self.url, "events_uri": self.url, "stream_uri": self.url, "stream": False}

    def respond(self, request: RecordedRequest) -> Response:
        """Serve the flags on ``GET /sdk/latest-all``; accept events with 202."""
        if request.method == "GET" and request.path == self.POLL_PATH:
            with self._lock:
                return Response(200, {"flags": self._flags, "segments": self._segments})
        if request.method == "POST" and request.path in ("/bulk", "/diagnostic"):
            return Response(202, b"")
        return Response(404, {"message": "not found"})

    @property
    def event_batches(self) -> list[list[dict[str, Any]]]:
        """Each ``POST /bulk`` body as it arrived: a list of events per flush."""
        return [r.json for r in self.delivered("/bulk", "POST") if isinstance(r.json, list)]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every analytics event delivered, in arrival order.

        Feature, index, summary and custom events alike; see `custom_events` for those
        ``track`` sent.
        """
        return flatten(self.event_batches)

    @property
    def custom_events(self) -> list[dict[str, Any]]:
        """The events ``track`` sent (``kind == "custom"``), in arrival order."""
        return [e for e in self.events if e.get("kind") == "custom"]

    @property
    def diagnostic_events(self) -> list[dict[str, Any]]:
        """The SDK's diagnostic events (``POST /diagnostic``), unless it opted out."""
        return [r.json for r in self.delivered("/diagnostic", "POST")]

    def wait_for_events(
        self, count: int = 1, kind: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events (of ``kind``, when given) arrived.

        Args:
            count: How many to wait for. Default ``1``.
            kind: Only events of this kind (``"custom"``, ``"feature"``, ``"index"``,
                ``"summary"``). Default `None`: any.
            timeout: Seconds to wait. Default `DEFAULT_TIMEOUT`.

        Returns:
            Every matching event so far (at least ``count``).

        Raises:
            AssertionError: Fewer arrived within ``timeout``.
        """

        def matching() -> list[dict[str, Any]]:
            return [e for e in self.events if kind is None or e.get("kind") == kind]

        return wait_for(
            lambda: (found := matching()) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} LaunchDarkly event(s) of kind {kind or 'any'}",
        )
