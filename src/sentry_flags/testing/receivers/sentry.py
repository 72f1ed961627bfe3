"""A stand-in for Sentry's envelope endpoint, and a parser for what arrives there."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from sentry_flags.testing.receivers._base import (
    DEFAULT_TIMEOUT,
    LOOPBACK,
    BaseReceiver,
    RecordedRequest,
    Response,
    parse_json,
    wait_for,
)

__all__ = ["Envelope", "EnvelopeItem", "SentryReceiver", "parse_envelope"]


@dataclass(frozen=True)
class EnvelopeItem:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> Optional[str]:
        return self.headers.get("type")

    @property
    def json(self) -> Any:
        return parse_json(self.payload)


@dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: list[EnvelopeItem]


def parse_envelope(data: bytes) -> Envelope:
    """Parse a Sentry envelope: header line, then (item header line, payload)*.

    A payload is ``length`` bytes when the item header says so, otherwise it
    runs to the next newline.
    """
    header_line, _, rest = data.partition(b"\n")
    headers = json.loads(header_line) if header_line.strip() else {}
    items = []
    pos = 0
    while pos < len(rest):
        end = rest.find(b"\n", pos)
        line = rest[pos:] if end == -1 else rest[pos:end]
        pos = len(rest) if end == -1 else end + 1
        if not line.strip():
            continue
        item_headers = json.loads(line)
        length = item_headers.get("length")
        if length is not None:
            payload = rest[pos : pos + length]
            pos += length
            if rest[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = rest.find(b"\n", pos)
            payload = rest[pos:] if end == -1 else rest[pos:end]
            pos = len(rest) if end == -1 else end + 1
        items.append(EnvelopeItem(item_headers, payload))
    return Envelope(headers, items)


class SentryReceiver(BaseReceiver):
    """Accepts ``POST /api/<project>/envelope/`` like Sentry/Relay."""

    ENVELOPE_PATH = re.compile(r"^/api/(?P<project>[^/]+)/envelope/$")

    def __init__(self, project_id: str = "1", public_key: str = "public") -> None:
        self.project_id = project_id
        self.public_key = public_key
        super().__init__()

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key}@{LOOPBACK}:{self.port}/{self.project_id}"

    def respond(self, request: RecordedRequest) -> Response:
        if request.method != "POST" or not self.ENVELOPE_PATH.match(request.path):
            return Response(404, {"detail": "not found"})
        try:
            envelope = parse_envelope(request.body)
        except ValueError:
            return Response(400, {"detail": "invalid envelope"})
        return Response(200, {"id": envelope.headers.get("event_id")})

    @property
    def envelopes(self) -> list[Envelope]:
        return [parse_envelope(r.body) for r in self.delivered("/api/", "POST")]

    def items(self, item_type: Optional[str] = None) -> list[EnvelopeItem]:
        return [
            item
            for envelope in self.envelopes
            for item in envelope.items
            if item_type is None or item.type == item_type
        ]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Error/message events (item type ``event``), decoded."""
        return [item.json for item in self.items("event")]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        return [item.json for item in self.items("transaction")]

    def wait_for_events(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        return wait_for(
            lambda: (events := self.events) and len(events) >= count and events,
            timeout=timeout,
            message=f"{count} Sentry event(s)",
        )
