"""Size limits for what we attach to an error event, applied when the error is captured.

What Sentry keeps of an event is what its ingestion (Relay's normalizer, trimming on) keeps,
and Relay holds each context to a budget: 8 KiB for a context it has no schema for (ours:
``launchdarklyContext``, ``flagEvaluations``), 128 KiB for Sentry's ``flags``. What is over
goes wherever Relay's walk runs out (a string cut mid-way, the keys after it, the newest
flags at the end of a list), often with no mark. So we cut first, by our own rules, until
Relay's count fits:

- each value (an LD attribute, a flag value) to :data:`MAX_VALUE_BYTES` and to the client's
  ``max_value_length`` (which sentry-sdk would cut it to itself): a string keeps its head
  and ends in ``...``, any other value is left out;
- then a ``launchdarklyContext`` loses its largest attributes (never kind, key, anonymous;
  a key is cut only when it is longer than a value may be);
- the flag contexts lose their oldest flags (``_flags``).

Each cut is listed under ``_meta``, as LaunchDarkly lists redacted attributes, so nobody
mistakes a cut value for the real one.

Relay's count (read in its source and checked against sentry-relay 0.8.45 and 0.10.1): each
value it walks costs its size plus one: a string its UTF-8 bytes plus 2, a number its
digits (a float as Rust prints it, never with an exponent), true 4, false 5, null 0, an
object or a list 2 (its contents are walked on their own). Keys cost nothing. An object or
list deeper than :data:`MAX_DEPTH` in the context becomes a JSON string. sentry-relay
0.8.45 (Relay of 2023) also counts an integer's digits once more for every object or list
around it below the context. :func:`relay_size` counts all of that, plus the bytes of the keys in the data
(LD attribute names, keys inside values): never below Relay's count, and it bounds what the
context takes in the event's JSON. Nothing is encoded: an ASCII string, a number or a flag
costs O(1), and counting stops at the limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence, Set
from typing import Any

from sentry_flags._context import ref_text

__all__ = [
    "CONTEXT_BUDGET",
    "ELLIPSIS",
    "FLAGS_BUDGET",
    "MAX_DEPTH",
    "MAX_LISTED_BYTES",
    "MAX_VALUE_BYTES",
    "TOO_LARGE",
    "bound_context",
    "cut_text",
    "cut_value",
    "json_size",
    "relay_size",
    "sized_cut",
    "type_reserve",
    "value_limit",
]

MAX_VALUE_BYTES = 2048  # one attribute of launchdarklyContext, one flag value
CONTEXT_BUDGET = 8192  # Relay's budget for a context without a schema: ours
FLAGS_BUDGET = 131072  # Relay's budget for Sentry's typed flags context
MAX_DEPTH = 5  # the deepest object or list Relay keeps as one (the context is depth 0)
MAX_LISTED_BYTES = 1024  # names listed under _meta as cut, per context; the rest counted
ELLIPSIS = "..."
TOO_LARGE = 1 << 62  # the size of what Relay would not keep as sent, or over the cap
_INT_RANGE = (-(1 << 63), 1 << 63)  # what Relay keeps: beyond, a float, 0, or (0.8) wrapped


def value_limit(max_value_length: Any) -> int:
    """The limit of one value under a client whose ``max_value_length`` option is this.

    sentry-sdk cuts every string longer (in UTF-8 bytes) to it, marking its own cut; ``None``
    means sentry-sdk's default, which is 1024 before 2.3x and no limit since.
    """
    if max_value_length is None:
        from sentry_sdk import consts

        max_value_length = getattr(consts, "DEFAULT_MAX_VALUE_LENGTH", None)
    if type(max_value_length) is int and 0 < max_value_length < MAX_VALUE_BYTES:
        return max_value_length
    return MAX_VALUE_BYTES


def type_reserve(name: str) -> int:
    """What Relay counts for the ``type`` it adds to the context ``name``."""
    return len(name.encode("utf-8")) + 3


# -- Relay's count ---------------------------------------------------------------------------


def relay_size(value: Any, depth: int = 1, cap: int = TOO_LARGE) -> int:
    """At least what Relay counts for ``value`` at ``depth`` in a context (the context is 0).

    :data:`TOO_LARGE` when Relay would not keep it as sent (NaN, an integer out of its
    range, a lone surrogate, nesting past :data:`MAX_DEPTH`, a type JSON has no form for),
    or as soon as the count passes ``cap``.
    """
    kind = type(value)
    if kind is str:
        return _str_size(value, cap)
    if kind is bool:
        return 5 if value else 6
    if value is None:
        return 1
    if kind is int:
        return _int_size(value, depth)
    if kind is float:
        return _float_size(value)
    if kind is dict:
        return _object_size(value, depth, cap)
    if kind is list or kind is tuple:
        return _list_size(value, depth, cap)
    # Subclasses and other containers, as sentry-sdk's serializer sees them.
    if isinstance(value, str):
        return _str_size(value, cap)
    if isinstance(value, int):
        return _int_size(value, depth)
    if isinstance(value, float):
        return _float_size(value)
    if isinstance(value, Mapping):
        return _object_size(value, depth, cap)
    if isinstance(value, (Sequence, Set)) and not isinstance(value, (bytes, bytearray)):
        return _list_size(value, depth, cap)
    return TOO_LARGE  # sentry-sdk would send its repr: of a length we cannot know cheaply


def _str_size(value: str, cap: int) -> int:
    if value.isascii():  # O(1): CPython keeps the flag
        return len(value) + 3
    if len(value) + 3 > cap:
        return TOO_LARGE  # its UTF-8 bytes are at least its characters
    try:
        return len(value.encode("utf-8")) + 3
    except UnicodeEncodeError:
        return TOO_LARGE  # a lone surrogate: JSON escapes it, Relay replaces it


def _int_size(value: int, depth: int) -> int:
    if not _INT_RANGE[0] <= value < _INT_RANGE[1]:
        return TOO_LARGE
    digits = len(int.__repr__(value))  # IntEnum's own repr is not what JSON has
    return digits + 1 + digits * max(depth - 1, 0)  # 0.8.45's repeats


def _float_size(value: float) -> int:
    """A finite float's length as Rust prints it (positional, shortest round trip), plus 1.

    JSON has the float as Python writes it (its repr). Relay's parser reads that exactly
    when its digits, as an integer, are below 2**53 and its exponent within 22 (one
    rounding); otherwise it may land a few units off in the last place, where Rust may need
    up to 17 significant digits: counted so.
    """
    text = float.__repr__(abs(value))
    if text in ("inf", "nan"):
        return TOO_LARGE
    mantissa, _, exponent = text.partition("e")
    point = mantissa.find(".")
    digits = mantissa.replace(".", "")
    scale = int(exponent) if exponent else 0
    before = (point if point >= 0 else len(mantissa)) + scale
    written = scale - (len(mantissa) - point - 1 if point >= 0 else 0)
    significant = digits.lstrip("0")
    before -= len(digits) - len(significant)
    significant = significant.rstrip("0")
    sign = 1 if math.copysign(1.0, value) < 0 else 0
    if int(digits) < 1 << 53 and -22 <= written <= 22:
        return sign + _positional(before, len(significant)) + 1
    # A few units up may also carry into a new leading digit.
    return sign + max(_positional(before, 17), _positional(before + 1, 17)) + 1


def _positional(before: int, count: int) -> int:
    """The length of ``count`` significant digits, ``before`` of them ahead of the point."""
    if not count:
        return 1  # "0"
    if before >= count:
        return before  # an integer: its trailing zeros written out
    if before > 0:
        return count + 1
    return 2 - before + count  # "0.000ddd"


def _key_size(key: Any) -> int:
    if type(key) is str and key.isascii():
        return len(key)
    if not isinstance(key, (str, int)) or isinstance(key, bool):
        return TOO_LARGE  # sentry-sdk would write str(key): let it not come to that
    try:
        return len(str(key).encode("utf-8"))
    except UnicodeEncodeError:
        return TOO_LARGE


def _object_size(value: Mapping[Any, Any], depth: int, cap: int) -> int:
    if depth > MAX_DEPTH or len(value) + 3 > cap:  # every item costs at least 1
        return TOO_LARGE
    total = 3
    try:
        for key, item in value.items():
            total += _key_size(key) + relay_size(item, depth + 1, cap - total)
            if total > cap:
                return TOO_LARGE
    except Exception:  # a foreign Mapping that cannot be walked
        return TOO_LARGE
    return total


def _list_size(value: Any, depth: int, cap: int) -> int:
    if depth > MAX_DEPTH or len(value) + 3 > cap:
        return TOO_LARGE
    total = 3
    try:
        for item in value:
            total += relay_size(item, depth + 1, cap - total)
            if total > cap:
                return TOO_LARGE
    except Exception:
        return TOO_LARGE
    return total


def _fixed_size(value: Any, depth: int) -> int:
    """What a value we never cut costs; one Relay would change costs what it would as sent."""
    size = relay_size(value, depth)
    return size if size < TOO_LARGE else json_size(value)


# -- cutting ---------------------------------------------------------------------------------


def cut_value(value: Any, limit: int = MAX_VALUE_BYTES, depth: int = 1) -> tuple[Any, bool]:
    """``(value, False)`` when Relay counts it within ``limit`` (a string: its UTF-8 bytes)
    and keeps it as sent; else ``(its cut head, True)`` for a string, ``(None, True)``
    (leave it out) for anything else."""
    value, was_cut, _ = sized_cut(value, limit, depth)
    return value, was_cut


def sized_cut(value: Any, limit: int, depth: int) -> tuple[Any, bool, int]:
    """:func:`cut_value`, with the :func:`relay_size` of what it returns (0 when left out)."""
    if type(value) is str or isinstance(value, str):
        size = _str_size(value, limit + 3)
        if size <= limit + 3:
            return value, False, size
        cut, was_cut = _cut_string(value, limit)
        return cut, was_cut, relay_size(cut, depth)
    size = relay_size(value, depth, limit)
    if size <= limit:
        return value, False, size
    return None, True, 0


def _cut_string(value: str, limit: int) -> tuple[str, bool]:
    room = max(0, limit - len(ELLIPSIS))
    if value.isascii():
        if len(value) <= limit:
            return value, False
        return value[:room] + ELLIPSIS, True
    if len(value) * 4 <= limit:
        try:
            value.encode("utf-8")
            return value, False
        except UnicodeEncodeError:
            pass
    data = value.encode("utf-8", "replace")  # a lone surrogate becomes "?", as in Relay
    if len(data) <= limit:
        return data.decode("utf-8"), data.decode("utf-8") != value
    return data[:room].decode("utf-8", "ignore") + ELLIPSIS, True


# -- launchdarklyContext ---------------------------------------------------------------------

CONTEXT_NAME = "launchdarklyContext"
# What identifies the context, and LaunchDarkly's own markers: never cut.
KEPT = frozenset({"kind", "key", "anonymous", "_meta"})
# A context without a valid "type" gets Relay's: an attribute "type" that is not a string
# would be replaced.
RELAY_TYPE = "type"


class _Cuts:
    """The attributes cut from each part of a context, listed under its ``_meta`` while
    :data:`MAX_LISTED_BYTES` lasts, counted (``cutAttributesUnlisted``) after."""

    __slots__ = ("depth", "listed", "listed_bytes", "parts", "unlisted")

    def __init__(self, parts: list[tuple[str, dict[str, Any]]], depth: int) -> None:
        self.parts = parts
        self.depth = depth
        self.listed: dict[int, list[str]] = {}
        self.unlisted: dict[int, int] = {}
        self.listed_bytes = 0

    def add(self, index: int, attr: str) -> int:
        """List (or count) ``attr`` as cut from part ``index``; what our count grows by (the
        names of what is new under ``_meta`` included, as :func:`relay_size` counts them)."""
        grows = 0
        if index not in self.listed and index not in self.unlisted and "_meta" not in self.parts[index][1]:
            grows += 8  # a new _meta object
        ref = ref_text((attr,))
        size = relay_size(ref, self.depth + 2)
        refs = self.listed.get(index)
        if refs is not None and ref in refs:
            return grows
        if self.listed_bytes + size <= MAX_LISTED_BYTES:
            self.listed_bytes += size
            if refs is None:
                refs = self.listed[index] = []
                grows += 3 + len("cutAttributes")
            refs.append(ref)
            return grows + size
        count = self.unlisted.get(index, 0)
        self.unlisted[index] = count + 1
        if count:
            return grows
        # The count, once: up to 7 digits, with 0.8.45's repeats.
        return grows + len("cutAttributesUnlisted") + 8 * (self.depth + 1)

    def write(self) -> None:
        for index, (_, part) in enumerate(self.parts):
            refs = self.listed.get(index)
            unlisted = self.unlisted.get(index)
            if refs is None and unlisted is None:
                continue
            meta = part.get("_meta")
            if not isinstance(meta, dict):
                meta = part["_meta"] = {}
            if refs is not None:
                meta["cutAttributes"] = refs
            if unlisted is not None:
                meta["cutAttributesUnlisted"] = unlisted


def bound_context(redacted: dict[str, Any], limit: int = MAX_VALUE_BYTES) -> dict[str, Any]:
    """``redacted`` (a ``launchdarklyContext``) cut in place until Relay keeps it whole,
    cuts listed per context kind under ``_meta.cutAttributes``.

    ``limit``: of one value (:func:`value_limit`), a key's too. What may still be over is
    kinds, keys and LaunchDarkly's own ``_meta`` (its ``redactedAttributes`` tell the
    forwarders what to keep private), which stay as they are.
    """
    multi = redacted.get("kind") == "multi"
    if multi:
        parts = [(k, v) for k, v in redacted.items() if k != "kind" and isinstance(v, dict)]
        depth = 2  # of an attribute
        total = _fixed_size("multi", 1) + 4
    else:
        parts = [("", redacted)]
        depth = 1
        total = 0
    total += type_reserve(CONTEXT_NAME) + 3
    cuts = _Cuts(parts, depth)
    candidates: list[tuple[int, int, str]] = []
    for index, (name, part) in enumerate(parts):
        if multi:
            total += _key_size(name) + 3
        for attr in list(part):
            value = part[attr]
            if attr in KEPT:
                if attr == "key" and isinstance(value, str):
                    # Never left out; but longer than a value may be (or with a lone
                    # surrogate), sentry-sdk or Relay would cut it with no mark of ours.
                    value, was_cut, _ = sized_cut(value, limit, depth)
                    if was_cut:
                        part[attr] = value
                        total += cuts.add(index, attr)
                total += len(attr) + _fixed_size(value, depth)
                continue
            if not multi and attr == RELAY_TYPE and not (isinstance(value, str) and value):
                del part[attr]
                total += cuts.add(index, attr)
                continue
            value, was_cut, size = sized_cut(value, limit, depth)
            if was_cut:
                total += cuts.add(index, attr)
                if value is None:
                    del part[attr]
                    continue
                part[attr] = value
            size += _key_size(attr)
            total += size
            candidates.append((size, index, attr))
    if total > CONTEXT_BUDGET:
        # Leave out the largest until Relay's count fits, the list of what went counted in.
        candidates.sort(reverse=True)
        for size, index, attr in candidates:
            del parts[index][1][attr]
            total += cuts.add(index, attr) - size
            if total <= CONTEXT_BUDGET:
                break
    cuts.write()
    return redacted


# -- JSON bytes (Segment measures its messages so) -------------------------------------------


def _placeholder(value: Any) -> str:
    return f"<{type(value).__name__}>"


def json_size(value: Any) -> int:
    """Bytes ``value`` takes in JSON (ASCII-escaped, compact separators)."""
    try:
        return len(json.dumps(value, separators=(",", ":"), default=_placeholder))
    except (ValueError, TypeError, RecursionError):
        return TOO_LARGE


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
