"""Flag results of the current request or task: what each user was served.

Every source (the LaunchDarkly hook, the OpenFeature hook, the Split impression listener)
records into one log on Sentry's isolation scope. Recording runs on every flag evaluation,
so it only links one small node onto the log; the contexts are built when an error is
captured, and only then:

- ``flags`` (Sentry's own context, what ``sentry_sdk.feature_flags.add_feature_flag``
  writes, read by Sentry's Feature Flags panel and flag search): boolean results, and Split
  ``on``/``off`` treatments, as ``{"flag", "result"}``;
- ``flagEvaluations`` (ours): every result of any type as
  ``{"flag", "value", "variation" | "variant", "reason", "source"}``.

Both keep the latest :data:`MAX_FLAGS` flags, the latest evaluation of a flag winning and
moving to the end, as Sentry's own buffer does; then as many of the newest as Sentry's
ingestion keeps whole (``_bounds``): the oldest go first, counted in ``_meta.droppedFlags``.
``flags`` has only names Sentry's schema accepts (``SENTRY_FLAG_NAME``); the others are in
``flagEvaluations`` alone.

The log is an immutable linked list, newest first. sentry-sdk copies a scope's contexts
shallowly when it forks the scope (per request, per thread), so a forked scope shares its
parent's nodes and links its own on top: neither ever sees the other's later evaluations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Optional

from sentry_flags._bounds import (
    CONTEXT_BUDGET,
    FLAGS_BUDGET,
    MAX_VALUE_BYTES,
    TOO_LARGE,
    relay_size,
    sized_cut,
    type_reserve,
)
from sentry_flags._fork import ForkSafeLock
from sentry_flags._sentry import isolation_contexts, set_span_flag

logger = logging.getLogger("sentry_flags")

__all__ = ["FLAGS_KEY", "MAX_FLAGS", "FlagLog", "flag_contexts", "record_flag"]

FLAGS_KEY = "flagEvaluations"
SENTRY_FLAGS_KEY = "flags"
MAX_FLAGS = 100  # Sentry's own flag buffer keeps 100 as well
COMPACT_AT = 4 * MAX_FLAGS  # nodes in one log before it is rebuilt from its latest flags

# Split serves treatments, not booleans; these two mean what a boolean flag does.
SPLIT_BOOLEANS: Mapping[str, bool] = {"on": True, "off": False}


class FlagLog(dict[str, Any]):
    """One flag result, linked to the older ones.

    A ``dict`` with no items, so that if it ever reached an event unprocessed, sentry-sdk
    would send ``{}`` and nothing of it.
    """

    __slots__ = ("depth", "flag", "older", "reason", "source", "value", "variant", "variation")

    flag: str
    value: Any
    variation: Optional[int]
    variant: Optional[str]
    reason: Any
    source: str
    older: Optional[FlagLog]
    depth: int

    def __deepcopy__(self, memo: dict[int, Any]) -> FlagLog:
        return self  # immutable once linked

    def __copy__(self) -> FlagLog:
        return self

    def latest(self) -> list[FlagLog]:
        """The latest result of each of the latest :data:`MAX_FLAGS` flags, oldest first."""
        seen: set[tuple[str, str]] = set()
        found: list[FlagLog] = []
        node: Optional[FlagLog] = self
        while node is not None and len(found) < MAX_FLAGS:
            key = (node.source, node.flag)
            if key not in seen:
                seen.add(key)
                found.append(node)
            node = node.older
        found.reverse()
        return found


def _link(
    older: Optional[FlagLog],
    source: str,
    flag: str,
    value: Any,
    *,
    variation: Optional[int],
    variant: Optional[str],
    reason: Any,
) -> FlagLog:
    node = FlagLog()
    node.flag = flag
    node.value = value
    node.variation = variation
    node.variant = variant
    node.reason = reason
    node.source = source
    node.older = older
    node.depth = 1 if older is None else older.depth + 1
    return node


def _compacted(log: FlagLog) -> Optional[FlagLog]:
    """The same latest flags in a log of at most MAX_FLAGS nodes: a long-lived scope (a
    worker thread evaluating flags forever) must not grow without bound."""
    rebuilt: Optional[FlagLog] = None
    for node in log.latest():
        rebuilt = _link(
            rebuilt, node.source, node.flag, node.value,
            variation=node.variation, variant=node.variant, reason=node.reason,
        )  # fmt: skip
    return rebuilt


class Failures:
    """How many recordings a hook or listener could not make.

    Each failure is logged at debug with its traceback; the evaluation that called the hook
    goes on as if it had not been recorded.
    """

    __slots__ = ("_count", "_lock")

    def __init__(self) -> None:
        self._count = 0
        self._lock = ForkSafeLock()

    @property
    def count(self) -> int:
        return self._count

    def failed(self, what: str) -> None:
        """Count one failure; call it from the ``except`` block that caught it."""
        with self._lock:
            self._count += 1
        logger.debug("sentry-flags %s failed; the evaluation was not recorded", what, exc_info=True)


def record_flag(
    source: str,
    flag: str,
    value: Any,
    *,
    variation: Optional[int] = None,
    variant: Optional[str] = None,
    reason: Any = None,
) -> bool:
    """Record that the current request or task was served ``value`` for ``flag``.

    Cheap and never raises: it runs inside every flag evaluation. Values are kept as they
    are; cutting them to size waits until an error is captured. ``reason`` is a reason
    string, or LaunchDarkly's reason dict (``{"kind": ..., "errorKind": ...}``). False when
    it could not be recorded (logged at debug, with its traceback).
    """
    try:
        link_flag(isolation_contexts(), source, flag, value, variation, variant, reason)
    except Exception:  # never into the evaluation that called us
        logger.debug("could not record the %s flag %r", source, flag, exc_info=True)
        return False
    return True


def link_flag(  # noqa: PLR0917 - the hooks' hot path: no keyword-argument overhead
    contexts: dict[str, Any],
    source: str,
    flag: str,
    value: Any,
    variation: Optional[int],
    variant: Optional[str],
    reason: Any,
) -> None:
    """`record_flag` on the ``contexts`` of an isolation scope the caller has."""
    older = contexts.get(FLAGS_KEY)
    if older is not None and older.__class__ is not FlagLog:
        older = None
    node = _link(older, source, flag, value, variation=variation, variant=variant, reason=reason)
    if node.depth > COMPACT_AT:
        compacted = _compacted(node)
        if compacted is not None:  # never None here; an empty dict is falsy, hence "is"
            node = compacted
    contexts[FLAGS_KEY] = node
    if value.__class__ is bool:
        set_span_flag(flag, value)
    elif source == "split" and isinstance(value, str) and value in SPLIT_BOOLEANS:
        set_span_flag(flag, SPLIT_BOOLEANS[value])


def entry(node: FlagLog) -> dict[str, Any]:
    """The ``flagEvaluations`` entry of one result; unknown fields left out."""
    found: dict[str, Any] = {"flag": node.flag, "value": node.value}
    if node.variation is not None:
        found["variation"] = node.variation
    if node.variant is not None:
        found["variant"] = node.variant
    reason = reason_text(node.reason)
    if reason is not None:
        found["reason"] = reason
    found["source"] = node.source
    return found


def reason_text(reason: Any) -> Optional[str]:
    """A reason as one string: an error's code (``FLAG_NOT_FOUND``), else its kind."""
    if isinstance(reason, str):
        return reason or None
    if isinstance(reason, Mapping):
        code = reason.get("errorKind") if reason.get("kind") == "ERROR" else None
        found = code or reason.get("kind")
        return found if isinstance(found, str) and found else None
    return None


def boolean_of(node: FlagLog) -> Optional[bool]:
    """What Sentry's ``flags`` context records for this result, if anything."""
    value = node.value
    if type(value) is bool:
        return value
    if node.source == "split" and isinstance(value, str):
        return SPLIT_BOOLEANS.get(value)
    return None


def flag_contexts(
    log: FlagLog, sentry_flags: Any, limit: int = MAX_VALUE_BYTES
) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
    """``(flagEvaluations, flags)`` for an error event, each as Sentry's ingestion keeps it.

    ``sentry_flags`` is the ``flags`` context sentry-sdk already put on the event (flags
    from ``add_feature_flag``: sentry-sdk's own flag integrations, the app): ours are merged
    into it, a flag recorded by both appearing once, with our result. ``limit``: of one
    value (``_bounds.value_limit``). Values over it are cut first; then the oldest flags go
    until Relay keeps each context whole (``_bounds``).
    """
    nodes = log.latest()
    return _evaluations(nodes, limit), _sentry_flags(nodes, sentry_flags)


def _evaluations(nodes: list[FlagLog], limit: int) -> dict[str, Any]:
    values: list[dict[str, Any]] = []
    sizes: list[int] = []
    cut: list[bool] = []
    unfit = 0
    for node in nodes:
        found = entry(node)
        was_cut = False
        size = 3 + relay_size(found["flag"], FIELD_DEPTH) + relay_size(found["source"], FIELD_DEPTH)
        for field in SIZED_FIELDS:
            if field in found:
                value, field_cut, field_size = sized_cut(found[field], limit, FIELD_DEPTH)
                size += field_size
                if field_cut:
                    was_cut = True
                    if value is None:
                        del found[field]
                    else:
                        found[field] = value
        if size >= TOO_LARGE:
            unfit += 1  # a flag name Relay would change (a lone surrogate): left out
            continue
        values.append(found)
        sizes.append(size)
        cut.append(was_cut)
    dropped = unfit + _drop_oldest(values, sizes, cut, EVALUATIONS_ROOM)
    evaluations: dict[str, Any] = {"values": values}
    cut_names = [v["flag"] for v, was_cut in zip(values, cut[len(cut) - len(values) :]) if was_cut]
    if cut_names or dropped:
        meta: dict[str, Any] = {}
        if cut_names:
            meta["cutValues"] = cut_names
        if dropped:
            meta["droppedFlags"] = dropped
        evaluations["_meta"] = meta
    return evaluations


def _sentry_flags(nodes: list[FlagLog], sentry_flags: Any) -> Optional[dict[str, Any]]:
    booleans: dict[str, bool] = {}
    for node in nodes:
        result = boolean_of(node)
        if result is not None and SENTRY_FLAG_NAME.fullmatch(node.flag):
            booleans.pop(node.flag, None)  # the latest of a name wins, at the end
            booleans[node.flag] = result
    if not booleans:
        return None
    existing = sentry_flags.get("values") if isinstance(sentry_flags, dict) else None
    merged: list[dict[str, Any]] = []
    sizes = []
    for item in existing if isinstance(existing, list) else ():
        size = _sentry_size(item)
        if size < TOO_LARGE and item["flag"] not in booleans:
            merged.append(item)
            sizes.append(size)
    for flag, result in booleans.items():
        merged.append({"flag": flag, "result": result})
        sizes.append(len(flag) + 22)  # relay_size of it, keys counted: the name is ASCII
    del merged[:-MAX_FLAGS], sizes[:-MAX_FLAGS]
    flags = dict(sentry_flags) if isinstance(sentry_flags, dict) else {}
    flags.pop("_meta", None)
    flags["values"] = merged
    room = FLAGS_ROOM - sum(relay_size(v, 1) for k, v in flags.items() if k != "values")
    dropped = _drop_oldest(merged, sizes, [False] * len(merged), room)
    if dropped:
        flags["_meta"] = {"droppedFlags": dropped}
    return flags


# Where a flagEvaluations entry's fields sit: the context, its "values", the entry, the field.
FIELD_DEPTH = 3
SIZED_FIELDS = ("value", "variation", "variant", "reason")  # all but flag and source: cut if over
# What Relay may count of each context, less the "type" it adds, the context and its list.
EVALUATIONS_ROOM = CONTEXT_BUDGET - type_reserve(FLAGS_KEY) - 6
FLAGS_ROOM = FLAGS_BUDGET - type_reserve(SENTRY_FLAGS_KEY) - 6
# A flag name Sentry's flags context keeps: longer ones it cuts, other characters it rejects.
SENTRY_FLAG_NAME = re.compile(r"[a-zA-Z0-9_.:-]{0,200}")


def _sentry_size(item: Any) -> int:
    """:func:`relay_size` of an entry of Sentry's ``flags`` (one the app added), or
    ``TOO_LARGE`` when Relay would not keep it as it is."""
    if not isinstance(item, dict):
        return TOO_LARGE
    flag = item.get("flag")
    if not isinstance(flag, str) or not SENTRY_FLAG_NAME.fullmatch(flag) or item.get("result", 0) is None:
        return TOO_LARGE
    result = item.get("result")
    if isinstance(result, str) and (len(result) > 200 or "\n" in result):
        return TOO_LARGE
    return relay_size(item, 2)


def _drop_oldest(values: list[Any], sizes: list[int], cut: list[bool], room: int) -> int:
    """Leave out the oldest ``values`` until Relay's count of them and their ``_meta``
    (``cutValues``: the names of those ``cut``; ``droppedFlags``) fits ``room``; how many
    went. ``sizes``: Relay's count of each."""
    cut_bytes = sum(relay_size(v["flag"], FIELD_DEPTH) for v, c in zip(values, cut) if c)
    cut_count = sum(cut)
    total = sum(sizes) + _meta_size(cut_count, cut_bytes, 0)
    if total <= room:
        return 0  # the common case
    dropped = 0
    while dropped < len(values) and total > room:
        total -= sizes[dropped] + _meta_size(cut_count, cut_bytes, dropped)
        if cut[dropped]:
            cut_count -= 1
            cut_bytes -= relay_size(values[dropped]["flag"], FIELD_DEPTH)
        dropped += 1
        total += _meta_size(cut_count, cut_bytes, dropped)
    del values[:dropped]
    return dropped


def _meta_size(cut_count: int, cut_bytes: int, dropped: int) -> int:
    """Relay's count of ``_meta`` with ``cutValues`` (``cut_bytes`` of names) and
    ``droppedFlags``."""
    if not cut_count and not dropped:
        return 0
    size = 3
    if cut_count:
        size += 3 + cut_bytes
    if dropped:
        size += relay_size(dropped, 2)
    return size
