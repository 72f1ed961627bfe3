"""The Segment ``track`` call for a Sentry error, in the shape Sentry's own forwarder sends.

Pure functions, and the size limits that keep every message under what Segment's clients
accept (measured as they measure it).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlsplit

from sentry_flags._bounds import cut_text, json_size
from sentry_flags._event import ErrorView

# segment.analytics.consumer.MAX_MSG_SIZE: the 2.x client raises on a bigger message, and
# analytics-python 1.4 queues it, drops it in its consumer without task_done(), and then
# hangs forever in flush(). Measured as both measure it: len(json.dumps(msg).encode()).
SEGMENT_MAX_MSG_SIZE = 32 << 10
# Ours, well under Segment's: the client adds fields of its own (library, anonymousId, a
# reformatted timestamp) after we measure, and a future release may add more.
MAX_MESSAGE_SIZE = 28 << 10

# Per-field limits, in JSON-encoded bytes (json.dumps escapes every non-ASCII character, so a
# character costs 1 to 12 bytes). Their sum, every field twice where it is sent twice, stays
# under MAX_MESSAGE_SIZE on its own; SegmentForwarder.calls() measures as a backstop.
MAX_SHORT = 256  # exception type, environment, release
MAX_TRANSACTION = 512
MAX_LEVEL = 32
MAX_METHOD = 32
MAX_ID = 128  # a Sentry event id is 32 hex digits; anything longer is not one
MAX_LONG = 1024  # exception value, message: what identifies the error
MAX_USER_AGENT = 512
MAX_URL = 2048  # url, path, query and referrer, each
MAX_USER_ID = 1024  # never cut: a cut user id would be someone else's
MAX_IP = 64
MAX_EVENT_NAME = 200  # characters, checked at construction
ELLIPSIS = "..."
# The largest message the limits above allow (every field at its limit, twice where it is
# sent twice, with a generous allowance for the keys, punctuation and what the client adds):
# when it is under MAX_MESSAGE_SIZE, no message needs measuring.
LARGEST_MESSAGE = (
    MAX_ID * 2 + MAX_TRANSACTION + MAX_SHORT * 3 + MAX_LEVEL + MAX_LONG * 2
    + (MAX_USER_AGENT + MAX_METHOD + MAX_URL * 3) * 2 + MAX_URL + MAX_IP + MAX_USER_ID
    + MAX_EVENT_NAME * 12 + 2048
)  # fmt: skip


def error_message(
    view: ErrorView, event_name: str, user_id: str, library: Mapping[str, str]
) -> dict[str, Any]:
    """The ``track`` keyword arguments for one error.

    Every key Sentry's own Segment forwarder sends is there, with ``""`` where it sends an
    empty value, so schemas built on its events keep working (docs/forwarders-segment.md
    has the mapping). Our additions (``exceptionValue``, ``message``, ``properties.page``,
    ``context.page.path``) follow the same rule.
    """
    event_id = view.event_id if view.event_id and encoded_size(view.event_id) <= MAX_ID else None
    url = cut(view.url, MAX_URL) or ""
    query = _query(view) or ""
    referer = cut(view.referer, MAX_URL) or ""
    user_agent = cut(view.user_agent, MAX_USER_AGENT) or ""
    method = cut(view.method, MAX_METHOD) or ""
    has_request = bool(url or method)
    has_exception = view.exception_type is not None or view.exception_value is not None
    properties: dict[str, Any] = {
        "eventId": event_id or "",
        "transaction": cut(view.transaction, MAX_TRANSACTION) or "",
        "release": cut(view.release, MAX_SHORT) or "",
        "level": cut(view.level, MAX_LEVEL) or "",
        "environment": cut(view.environment, MAX_SHORT) or "",
    }
    if has_exception:
        properties["exceptionType"] = cut(view.exception_type, MAX_SHORT) or ""
        properties["exceptionValue"] = cut(view.exception_value, MAX_LONG) or ""
    else:
        # capture_message errors have no exception; their text is what identifies them.
        properties["message"] = cut(view.message, MAX_LONG) or ""
    context: dict[str, Any] = {"library": dict(library)}
    if has_request:
        properties["userAgent"] = user_agent
        properties["page"] = {"url": url, "method": method, "search": query, "referer": referer}
        context["userAgent"] = user_agent
        context["page"] = {
            "url": url,
            "method": method,
            "search": query,  # as Sentry's forwarder sends it: the query string, no "?"
            "referrer": referer,
            "path": cut(_path(view.url), MAX_URL) or "",
        }
    ip = _ip(view.user.get("ip_address"))
    if ip is not None:
        context["ip"] = ip  # only there when the app allows user data (ErrorView drops it)
    return {
        "user_id": user_id,
        "event": event_name,
        "properties": properties,
        "context": context,
        "timestamp": view.timestamp,
        "message_id": event_id,
    }


def message_size(kwargs: Mapping[str, Any]) -> int:
    """The size Segment measures for the message ``track(**kwargs)`` queues."""
    message = {
        "integrations": {},
        "anonymousId": None,
        "properties": kwargs["properties"],
        "timestamp": kwargs["timestamp"].isoformat(),
        "context": kwargs["context"],
        "userId": kwargs["user_id"],
        "type": "track",
        "event": kwargs["event"],
        "messageId": kwargs["message_id"] or "00000000-0000-0000-0000-000000000000",
    }
    return len(json.dumps(message).encode())


def _query(view: ErrorView) -> Optional[str]:
    # Both are empty unless the app allows query values; sensitive keys are filtered then.
    query = view.query
    if not query and view.url:
        query = _split(view.url).query
    return cut(query, MAX_URL) if query else None


def _path(url: Optional[str]) -> Optional[str]:
    if not url:
        return None
    return _split(url).path or None


def _split(url: str) -> Any:
    try:
        return urlsplit(url)
    except ValueError:
        return urlsplit("")


def _ip(value: Any) -> Optional[str]:
    # sentry-sdk may carry "{{auto}}" (let Sentry infer it): not an address to pass on.
    if not isinstance(value, str) or len(value) > MAX_IP:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def encoded_size(value: str) -> int:
    """Bytes ``value`` takes inside Segment's JSON (ASCII-escaped), without the quotes."""
    return json_size(value) - 2


def cut(value: Optional[str], limit: int) -> Optional[str]:
    """``value`` in at most ``limit`` JSON-encoded bytes, ending ``...`` when it was cut."""
    return None if value is None else cut_text(value, limit)
