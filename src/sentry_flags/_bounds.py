"""Size limits for what we attach to an error event, applied when the error is captured.

sentry-sdk does not trim contexts, and Sentry's ingest rejects an event over 1 MiB: an
LD context with one large attribute (a cached profile, an embedded document) or a flag
serving a large JSON value would cost the error itself. So every value we attach is cut
to :data:`MAX_VALUE_BYTES` and each context to a total; sizes are JSON-encoded bytes, as
sentry-sdk encodes the event. A cut string keeps its head and ends in ``...``; any other
cut value is left out. Either way it is listed under ``_meta``, as LaunchDarkly lists
redacted attributes, so nobody mistakes a cut value for the real one.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ELLIPSIS",
    "MAX_CONTEXT_BYTES",
    "MAX_FLAGS_BYTES",
    "MAX_VALUE_BYTES",
    "cut_text",
    "cut_value",
    "json_size",
    "size_bound",
]

MAX_VALUE_BYTES = 2048  # one attribute of launchdarklyContext, one flag value
MAX_CONTEXT_BYTES = 16384  # the whole launchdarklyContext
MAX_FLAGS_BYTES = 32768  # flagEvaluations, and Sentry's flags context
ELLIPSIS = "..."
TOO_LARGE = 1 << 62  # the size of what cannot be encoded at all (a cycle, a broken __str__)


def _placeholder(value: Any) -> str:
    return f"<{type(value).__name__}>"


def json_size(value: Any) -> int:
    """Bytes ``value`` takes in the event's JSON (ASCII-escaped, compact separators)."""
    try:
        return len(json.dumps(value, separators=(",", ":"), default=_placeholder))
    except (ValueError, TypeError, RecursionError):
        return TOO_LARGE


def size_bound(value: Any, depth: int = 0) -> int:
    """At least ``json_size(value)``, without encoding what is cheap to bound (strings,
    numbers, booleans): most of what we attach is, and this runs for every captured error."""
    kind = type(value)
    if kind is str:
        return 12 * len(value) + 2  # no character takes more than 12 bytes escaped
    if value is None or kind is bool:
        return 5
    if kind is float or (kind is int and -(2**63) <= value < 2**63):
        return 24
    if depth < 3 and kind is dict and len(value) <= 8:
        return 2 + sum(size_bound(k) + size_bound(v, depth + 1) + 2 for k, v in value.items())
    if depth < 3 and kind is list and len(value) <= 8:
        return 2 + sum(size_bound(v, depth + 1) + 1 for v in value)
    return json_size(value)  # also what holds itself: json_size calls that too large


def _char_size(char: str) -> int:
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return 2 if char in '"\\' else 1
    if char in "\n\r\t\b\f":
        return 2
    return 6 if code < 0x10000 else 12  # \uXXXX, or a surrogate pair of them


def cut_text(value: str, limit: int) -> str:
    """``value`` in at most ``limit`` JSON-encoded bytes (without quotes), ending ``...``
    when it was cut."""
    if len(value) * 12 <= limit or (len(value) <= limit and json_size(value) - 2 <= limit):
        return value
    room = max(0, limit - len(ELLIPSIS))
    used = 0
    end = 0
    for char in value[:room]:
        size = _char_size(char)
        if used + size > room:
            break
        used += size
        end += 1
    return value[:end] + ELLIPSIS


def cut_value(value: Any, limit: int = MAX_VALUE_BYTES) -> tuple[Any, bool]:
    """``(value, False)`` when it fits in ``limit`` bytes; else ``(its cut head, True)`` for
    a string, ``(None, True)`` (leave it out) for anything else."""
    if isinstance(value, str):
        cut = cut_text(value, limit)
        return cut, cut is not value
    if size_bound(value) <= limit:
        return value, False
    return None, True


# -- launchdarklyContext -------------------------------------------------------------------

# What identifies the context, and LaunchDarkly's own markers: never cut.
KEPT = frozenset({"kind", "key", "anonymous", "_meta"})


def bound_context(redacted: dict[str, Any]) -> dict[str, Any]:
    """``redacted`` (a ``launchdarklyContext``) within the limits, cuts listed per context
    kind under ``_meta.cutAttributes``."""
    if redacted.get("kind") == "multi":
        parts = [(k, v) for k, v in redacted.items() if k != "kind" and isinstance(v, dict)]
    else:
        parts = [("", redacted)]
    cut: dict[str, list[str]] = {}
    bound = 20  # braces, and a multi-kind context's "kind"
    for name, part in parts:
        bound += size_bound(name) + 4
        for attr in [a for a in part if a not in KEPT]:
            value, was_cut = cut_value(part[attr])
            if was_cut:
                _mark(cut, name, attr)
                if value is None:
                    del part[attr]
                    continue
                part[attr] = value
            bound += size_bound(attr) + size_bound(part[attr]) + 2
        bound += sum(size_bound(part[k]) + 10 for k in KEPT if k in part)
    if cut:
        bound += json_size(cut) + 20 * len(cut)
    _set_meta(parts, cut)
    if bound <= MAX_CONTEXT_BYTES:
        return redacted  # the common case: no need to encode it to know
    over = json_size(redacted) - MAX_CONTEXT_BYTES
    if over <= 0:
        return redacted
    # Still too large (many attributes): leave out the largest until it fits, the list of
    # what went (under _meta) counted in. Sizes are measured once; what a removal saves is
    # its value, its name and the punctuation, less its name in the list.
    by_size = sorted(
        ((json_size(p[a]) + json_size(a) + 2, i, a) for i, (_, p) in enumerate(parts) for a in p
         if a not in KEPT),
        reverse=True,
    )  # fmt: skip
    taken = 0
    while over > 0 and taken < len(by_size):
        while over > 0 and taken < len(by_size):
            saved, i, attr = by_size[taken]
            taken += 1
            name, part = parts[i]
            del part[attr]
            over -= saved - (json_size(attr) + 1) * 2  # its ref in _meta, at most about that
            _mark(cut, name, attr)
        _set_meta(parts, cut)
        over = json_size(redacted) - MAX_CONTEXT_BYTES
    return redacted  # what may still be over the limit is kinds and keys, which stay


def _set_meta(parts: list[tuple[str, dict[str, Any]]], cut: dict[str, list[str]]) -> None:
    for name, part in parts:
        if name in cut:
            part.setdefault("_meta", {})["cutAttributes"] = cut[name]


def _mark(cut: dict[str, list[str]], kind: str, attr: str) -> None:
    from sentry_flags._context import ref_text

    refs = cut.setdefault(kind, [])
    ref = ref_text((attr,))
    if ref not in refs:
        refs.append(ref)
