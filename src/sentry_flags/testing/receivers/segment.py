"""A stand-in for Segment's tracking API.

Point a real Segment client at it with ``Client("write-key", host=receiver.host)``: what it
posts (what `SegmentForwarder` sends) arrives in `SegmentReceiver.messages`.
"""

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
    """Segment's tracking API, ``POST /v1/batch``.

    segment-analytics-python 2.x and the legacy analytics-python 1.x both post there,
    relative to their ``host``. Listens on 127.0.0.1 from construction until `stop` (or the
    end of a ``with`` block); takes no arguments:

        with SegmentReceiver() as segment:
            client = Client("write-key", host=segment.host)
            client.track(user_id="user-42", event="Error Captured")
            client.flush()
            [message] = segment.wait_for_messages(1)
    """

    def respond(self, request: RecordedRequest) -> Response:
        """Accept ``POST /v1/batch`` with 200 ``{"success": true}``; 404 for anything else."""
        if request.method == "POST" and request.path == "/v1/batch":
            # Legacy analytics-python 1.x only treats exactly 200 as success.
            return Response(200, {"success": True})
        return Response(404, {"message": "not found"})

    @property
    def host(self) -> str:
        """The ``host`` for a Segment client (the same as `url`)."""
        return self.url

    @property
    def batches(self) -> list[dict[str, Any]]:
        """Whole request bodies: ``{"batch": [...], "sentAt": ..., "writeKey": ...}``."""
        return [r.json for r in self.delivered("/v1/batch", "POST") if isinstance(r.json, dict)]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message delivered (``track``, ``identify``, ...), in arrival order."""
        return [m for batch in self.batches for m in batch.get("batch", [])]

    def wait_for_messages(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages arrived; return every one so far.

        Raises:
            AssertionError: Fewer arrived within ``timeout`` seconds.
        """
        return wait_for(
            lambda: (found := self.messages) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} Segment message(s)",
        )
