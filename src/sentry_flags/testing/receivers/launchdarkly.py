"""A stand-in for LaunchDarkly's polling and events APIs, and the flag JSON it serves."""

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
    """Minimal server-side flag JSON as served by ``/sdk/latest-all``."""
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
    """Polling (``GET /sdk/latest-all``) and events (``/bulk``, ``/diagnostic``) APIs.

    Use ``url`` as ``base_uri``, ``events_uri`` and ``stream_uri``; streaming
    (``GET /all``) is not served, so configure ``stream=False``.
    """

    POLL_PATH = "/sdk/latest-all"

    def __init__(self) -> None:
        self._flags: dict[str, dict[str, Any]] = {}
        self._segments: dict[str, dict[str, Any]] = {}
        super().__init__()

    def set_flags(self, *flags: dict[str, Any]) -> None:
        """Replace the served flags; bump ``version`` when changing a flag."""
        with self._lock:
            self._flags = {flag["key"]: flag for flag in flags}

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ldclient.config.Config`` pointing every URL here."""
        return {"base_uri": self.url, "events_uri": self.url, "stream_uri": self.url}

    def respond(self, request: RecordedRequest) -> Response:
        if request.method == "GET" and request.path == self.POLL_PATH:
            with self._lock:
                return Response(200, {"flags": self._flags, "segments": self._segments})
        if request.method == "POST" and request.path in ("/bulk", "/diagnostic"):
            return Response(202, b"")
        return Response(404, {"message": "not found"})

    @property
    def event_batches(self) -> list[list[dict[str, Any]]]:
        return [r.json for r in self.delivered("/bulk", "POST") if isinstance(r.json, list)]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Analytics events, flattened; custom events have ``kind == "custom"``."""
        return flatten(self.event_batches)

    @property
    def custom_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("kind") == "custom"]

    @property
    def diagnostic_events(self) -> list[dict[str, Any]]:
        return [r.json for r in self.delivered("/diagnostic", "POST")]

    def wait_for_events(
        self, count: int = 1, kind: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT
    ) -> list[dict[str, Any]]:
        def matching() -> list[dict[str, Any]]:
            return [e for e in self.events if kind is None or e.get("kind") == kind]

        return wait_for(
            lambda: (found := matching()) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} LaunchDarkly event(s) of kind {kind or 'any'}",
        )
