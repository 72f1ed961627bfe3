"""The checks of SplitForwarder's options, made once at construction."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from numbers import Real
from types import MappingProxyType
from typing import Any, Optional

from sentry_flags.forwarders._split_events import EVENT_TYPE_RE, MAX_EVENT_TYPE_LENGTH, MIN_CULPRIT_ROOM

# The validator only asks for a non-blank str and lowercases it; Split's UI creates
# alphanumeric names. Stricter than the SDK so a typo fails at start-up, not per event.
TRAFFIC_TYPE_RE = re.compile(r"[a-z0-9][-_.a-z0-9]{0,79}")

# Roots ErrorView.lookup resolves; a path starting elsewhere can never find a value.
PATH_ROOTS = frozenset(
    {
        "user",
        "tags",
        "contexts",
        "request",
        "event_id",
        "level",
        "environment",
        "release",
        "transaction",
        "culprit",
        "server_name",
        "logger",
    }
)
# Roots that hold objects, with an example of a path to a value inside each.
OBJECT_ROOTS: Mapping[str, str] = MappingProxyType({
    "user": "user.id", "tags": "tags.tenant", "contexts": "contexts.launchdarklyContext.key",
    "request": "request.url",
})  # fmt: skip
# Prefixes of the paths Split's dashboard shows for Sentry webhook payloads, so users can
# paste their existing mappings.
PASTED_PREFIXES = ("data.error.", "data.event.", "data.", "error.", "event.")


def check_event_type(event_type: Any, capture_culprit: bool) -> str:
    if not isinstance(event_type, str):
        raise TypeError(f"event_type must be a str, got {type(event_type).__name__}")
    if not EVENT_TYPE_RE.fullmatch(event_type):
        raise ValueError(
            f"event_type {event_type!r} is not a valid Split event type: 1-80 characters, "
            "letters and digits, with '-', '_', '.' or ':' after the first"
        )
    if capture_culprit and len(event_type) > MAX_EVENT_TYPE_LENGTH - MIN_CULPRIT_ROOM:
        raise ValueError(
            f"event_type must be at most {MAX_EVENT_TYPE_LENGTH - MIN_CULPRIT_ROOM} characters "
            "with capture_culprit=True (the culprit is appended within Split's 80), "
            f"got {len(event_type)}"
        )
    return event_type


def check_identities(identities: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(identities, Mapping):
        raise TypeError(
            "identities must be a mapping of Split traffic type -> path into the Sentry event, "
            f"e.g. {{'user': 'user.id'}}, got {type(identities).__name__}"
        )
    if not identities:
        raise ValueError(
            "identities must map at least one Split traffic type to a path, e.g. {'user': 'user.id'}"
        )
    found: dict[str, tuple[str, ...]] = {}
    for traffic_type, path in identities.items():
        if not isinstance(traffic_type, str) or not traffic_type.strip():
            raise TypeError(
                f"identities keys must be non-empty Split traffic type names, got {traffic_type!r}"
            )
        name = traffic_type.lower()  # splitio lowercases it too (with a warning per call)
        if not TRAFFIC_TYPE_RE.fullmatch(name):
            raise ValueError(
                f"identities: {traffic_type!r} is not a valid Split traffic type name: up to 80 "
                "letters and digits, with '-', '_' or '.' after the first"
            )
        if name in found:
            raise ValueError(f"identities: traffic type {name!r} is mapped twice")
        found[name] = normalize_path(path, f"identities[{traffic_type!r}]")
    return tuple(found.items())


def normalize_path(path: Any, option: str = "path") -> tuple[str, ...]:
    """``"user.id"`` (or Split's pasted ``"data.error.user.id"``) as ``("user", "id")``."""
    if not isinstance(path, str) or not path.strip():
        raise TypeError(f"{option} must be a non-empty dotted path like 'user.id', got {path!r}")
    text = path.strip()
    for prefix in PASTED_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    parts = tuple(text.split("."))
    if any(not part for part in parts):
        raise ValueError(f"{option}: {path!r} has an empty segment")
    if parts[0] not in PATH_ROOTS:
        raise ValueError(f"{option}: {path!r} must start with one of {', '.join(sorted(PATH_ROOTS))}")
    if len(parts) == 1 and parts[0] in OBJECT_ROOTS:
        # These are objects, never a key: every error would be skipped as no_identity.
        raise ValueError(
            f"{option}: {path!r} names the whole {parts[0]} object, not a value in it "
            f"(e.g. {OBJECT_ROOTS[parts[0]]!r})"
        )
    return parts


def check_value(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"value must be a number or None, got {type(value).__name__}")
    try:
        number = float(value)  # an int or Fraction past the float range overflows here
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"value must be a finite number, got {number!r}")
    return number
