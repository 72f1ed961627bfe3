"""A stand-in for Sentry's envelope endpoint, and a parser for what arrives there.

Point sentry-sdk at it with ``sentry_sdk.init(dsn=receiver.dsn, ...)``: the events your code
captures arrive in `SentryReceiver.events` instead of at sentry.io.
"""

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
    """One item of an envelope.

    Attributes:
        headers: The item header (``type``, ``length``...).
        payload: The payload bytes.
    """

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> Optional[str]:
        """The item type: ``event``, ``transaction``, ``session``, ``check_in``..."""
        return self.headers.get("type")

    @property
    def json(self) -> Any:
        """The payload decoded as JSON, or `None` when it is not JSON."""
        return parse_json(self.payload)


@dataclass(frozen=True)
class Envelope:
    """A Sentry envelope: its header (``event_id``, ``dsn``, ``sent_at``...) and its items.

    Attributes:
        headers: The envelope header.
        items: The items, in order.
    """

    headers: dict[str, Any]
    items: list[EnvelopeItem]


def parse_envelope(data: bytes) -> Envelope:
    """Parse a Sentry envelope: header line, then (item header line, payload)*.

    A payload is ``length`` bytes when the item header says so, otherwise it
    runs to the next newline.

    Raises:
        ValueError: A header line is not JSON.
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
    """Sentry's envelope endpoint, ``POST /api/<project>/envelope/``, as Sentry and Relay accept it.

    Listens on 127.0.0.1 from construction until `stop` (or the end of a ``with`` block).
    Give sentry-sdk its `dsn`, and what sentry-sdk sends arrives here::

        with SentryReceiver() as sentry:
            sentry_sdk.init(dsn=sentry.dsn, integrations=[FlagsIntegration()])
            sentry_sdk.capture_exception(RuntimeError("card declined"))
            [event] = sentry.wait_for_events(1)
            assert event["exception"]["values"][0]["value"] == "card declined"

    Args:
        project_id: The project id in the DSN and the endpoint path. Default ``"1"``.
        public_key: The DSN's public key. Default ``"public"``.
    """

    ENVELOPE_PATH = re.compile(r"^/api/(?P<project>[^/]+)/envelope/$")

    def __init__(self, project_id: str = "1", public_key: str = "public") -> None:
        self.project_id = project_id
        self.public_key = public_key
        super().__init__()

    @property
    def dsn(self) -> str:
        """The DSN for ``sentry_sdk.init``: ``http://public@127.0.0.1:<port>/1``."""
        return f"http://{self.public_key}@{LOOPBACK}:{self.port}/{self.project_id}"

    def respond(self, request: RecordedRequest) -> Response:
        """Accept envelopes with 200 ``{"id": <event id>}``; 400 for one that does not parse."""
        if request.method != "POST" or not self.ENVELOPE_PATH.match(request.path):
            return Response(404, {"detail": "not found"})
        try:
            envelope = parse_envelope(request.body)
        except ValueError:
            return Response(400, {"detail": "invalid envelope"})
        return Response(200, {"id": envelope.headers.get("event_id")})

    @property
    def envelopes(self) -> list[Envelope]:
        """Every envelope delivered, parsed, in arrival order."""
        return [parse_envelope(r.body) for r in self.delivered("/api/", "POST")]

    def items(self, item_type: Optional[str] = None) -> list[EnvelopeItem]:
        """Every item of every envelope delivered; only those of ``item_type`` when given."""
        return [
            item
            for envelope in self.envelopes
            for item in envelope.items
            if item_type is None or item.type == item_type
        ]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every error and message event delivered (item type ``event``), decoded, in order."""
        return [item.json for item in self.items("event")]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        """Every transaction delivered, decoded, in order."""
        return [item.json for item in self.items("transaction")]

    def wait_for_events(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events arrived; return every one so far.

        sentry-sdk sends from a background thread, so read `events` through this (or after
        ``sentry_sdk.flush()``).

        Args:
            count: How many to wait for. Default ``1``.
            timeout: Seconds to wait. Default `DEFAULT_TIMEOUT` (5).

        Returns:
            Every event so far (at least ``count``), decoded.

        Raises:
            AssertionError: Fewer arrived within ``timeout``.
        """
        return wait_for(
            lambda: (events := self.events) and len(events) >= count and events,
            timeout=timeout,
            message=f"{count} Sentry event(s)",
        )
