"""Split events from a Sentry error: track keys, culprit event types, properties within limits.

Pure functions. Everything they build passes Split's own input validation
(``splitio.client.input_validator``), so the SDK never logs an error and drops the event.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from typing import Any, Optional

from sentry_flags._event import ErrorView
from sentry_flags._shape import as_text

# Split's limits, as splitio/client/input_validator.py enforces them.
EVENT_TYPE_RE = re.compile(r"[a-zA-Z0-9][-_.:a-zA-Z0-9]{0,79}")
MAX_EVENT_TYPE_LENGTH = 80
MAX_KEY_LENGTH = 250
MAX_INT_KEY_BITS = 1024  # over 300 digits: no int key past this fits MAX_KEY_LENGTH
_TOO_LONG_KEY = "0" * (MAX_KEY_LENGTH + 1)  # stands in for such an int: skipped as too long
MAX_PROPERTIES = 300
MAX_PROPERTIES_SIZE = 32768
BASE_EVENT_SIZE = 1024  # what the validator assumes for an event without properties

MAX_TEXT = 256
MAX_LONG_TEXT = 1024  # exception value and message: what identifies the error
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 200  # Sentry's own limit for tag values
ELLIPSIS = "..."

HASH_LENGTH = 8
MIN_CULPRIT_ROOM = 1 + HASH_LENGTH + 8  # ":" + hash + a readable head


def track_key(found: Any) -> Optional[str]:
    # As splitio's validate_track_key: str or number, never bool, never blank.
    if isinstance(found, bool):
        return None
    if isinstance(found, int):
        # Past ~830 bits it is over 250 digits, which the length check refuses; str() of
        # the largest would even raise (Python's int digit limit).
        return str(found) if found.bit_length() <= MAX_INT_KEY_BITS else _TOO_LONG_KEY
    if isinstance(found, float) and math.isfinite(found):
        return str(found)
    if isinstance(found, str) and found.strip():
        return found
    return None


def culprit_event_type(prefix: str, culprit: str) -> str:
    """``<prefix>:<culprit>``, valid for Split and the same for the same culprit.

    The culprit is reduced to the characters Split allows; when that changed or shortened
    it, a hash of the original keeps two culprits that read alike apart.
    """
    room = MAX_EVENT_TYPE_LENGTH - len(prefix) - 1
    slug = _slug(culprit)
    if slug == culprit and len(slug) <= room:
        return f"{prefix}:{slug}"
    digest = hashlib.sha256(culprit.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    head = slug[: max(0, room - HASH_LENGTH - 1)].rstrip("-_.")
    return f"{prefix}:{head}-{digest}" if head else f"{prefix}:{digest}"


def _slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^A-Za-z0-9.-]+", "_", ascii_text).strip("-_.")


def truncate(value: Optional[str], limit: int) -> Optional[str]:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - len(ELLIPSIS)] + ELLIPSIS


def error_properties(view: ErrorView, *, include_tags: bool = True) -> dict[str, Any]:
    """The error as Split event properties, within Split's count and size limits.

    Sized as splitio's ``valid_properties`` counts: 1024 for the event, plus the length
    of every key and of every str value, at most 32768; numbers and bools count nothing.
    """
    core: dict[str, Any] = {
        "source": "sentry",
        "eventId": truncate(view.event_id or None, MAX_TEXT),
        "level": truncate(view.level, MAX_TEXT),
        "exceptionType": truncate(view.exception_type, MAX_TEXT),
        "exceptionValue": truncate(view.exception_value, MAX_LONG_TEXT),
        "culprit": truncate(view.culprit, MAX_TEXT),
        "transaction": truncate(view.transaction, MAX_TEXT),
        "release": truncate(view.release, MAX_TEXT),
        "environment": truncate(view.environment, MAX_TEXT),
        "timestamp": int(view.timestamp.timestamp() * 1000),
    }
    if view.exception_type is None and view.exception_value is None:
        # capture_message errors have no exception; their text is what identifies them.
        core["message"] = truncate(view.message, MAX_LONG_TEXT)
    properties = {k: v for k, v in core.items() if v is not None}
    size = BASE_EVENT_SIZE + sum(_size(k, v) for k, v in properties.items())
    if not include_tags:
        return properties
    for tag, raw in view.tags.items():
        if len(properties) >= MAX_PROPERTIES:
            break
        if len(tag) > MAX_TAG_KEY:
            continue
        name = f"tags.{tag}"
        value = _property_value(raw)
        cost = _size(name, value)
        if name in properties or size + cost > MAX_PROPERTIES_SIZE:
            continue  # a shorter tag further on may still fit
        properties[name] = value
        size += cost
    return properties


def _property_value(raw: Any) -> Any:
    # splitio keeps str, numbers and bools; NaN, infinities and ints past 64 bits would not
    # survive its JSON (or the service's), and any str() may raise.
    if raw is None or isinstance(raw, bool) or (isinstance(raw, int) and -(2**63) <= raw < 2**63):
        return raw
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else str(raw)
    if isinstance(raw, int) and raw.bit_length() > MAX_INT_KEY_BITS:
        return f"<int of {raw.bit_length()} bits>"
    text = as_text(raw)
    return truncate(text if text is not None else f"<{type(raw).__name__}>", MAX_TAG_VALUE)


def _size(key: str, value: Any) -> int:
    return len(key) + (len(value) if isinstance(value, str) else 0)
