"""A stand-in for Segment's tracking API."""

from __future__ import annotations

from typing import Any

from sentry_flags.testing.receivers._base import (
    DEFAULT_TIMEOUT,
    BaseReceiver,
    RecordedRequest,
    Response,
    wait_for,
)

__all__ = ["SegmentReceiver"]


class SegmentReceiver(BaseReceiver):
    """Tracking API ``POST /v1/batch`` (both segment-analytics-python 2.x and
    the legacy analytics-python 1.x post there, relative to ``host``)."""

    def respond(self, request: RecordedRequest) -> Response:
        if request.method == "POST" and request.path == "/v1/batch":
            # Legacy analytics-python 1.x only treats exactly 200 as success.
            return Response(200, {"success": True})
        return Response(404, {"message": "not found"})

    @property
    def host(self) -> str:
        return self.url

    @property
    def batches(self) -> list[dict[str, Any]]:
        """Whole request bodies: ``{"batch": [...], "sentAt": ..., "writeKey": ...}``."""
        return [r.json for r in self.delivered("/v1/batch", "POST") if isinstance(r.json, dict)]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for batch in self.batches for m in batch.get("batch", [])]

    def wait_for_messages(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        return wait_for(
            lambda: (found := self.messages) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} Segment message(s)",
        )
