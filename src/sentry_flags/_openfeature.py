"""OpenFeature evaluation contexts <-> LaunchDarkly contexts, by LaunchDarkly's documented rules.

The rules are those of LaunchDarkly's own OpenFeature provider (launchdarkly-openfeature-server,
"OpenFeature Specific Considerations"), so a context recorded through OpenFeature looks the
same as the one LaunchDarkly evaluates:

- the attribute ``kind`` names the context kind; absent or not a string: ``user``;
- ``kind: "multi"``: every other attribute that is an object is one context of that kind;
- the key is the targeting key, else the attribute ``key`` (inside a multi-kind context:
  each object's ``targetingKey``, else its ``key``);
- ``name`` (a string), ``anonymous`` (a bool) and ``privateAttributes`` (a list of strings)
  are LaunchDarkly's built-ins of that name; a value of another type is ignored;
- everything else is a custom attribute; a ``datetime`` becomes its ISO-8601 text in UTC
  (naive ones taken as UTC), in nested lists and objects too.

Nothing here imports openfeature: the hook passes the two fields of an EvaluationContext.
``ldclient`` is imported when a context is built, so a missing LD SDK only means no context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ldclient import Context, ContextBuilder

logger = logging.getLogger("sentry_flags")

__all__ = ["has_key", "snapshot", "to_evaluation_context", "to_ld_context"]

MULTI = "multi"
DEFAULT_KIND = "user"
# Attributes that are not custom attributes of a single context.
NOT_CUSTOM = frozenset({"key", "targetingKey", "kind"})
# Values that cannot change after an evaluation: kept as they are in a snapshot.
IMMUTABLE = frozenset({str, int, float, bool, type(None), datetime, date, time})


def _key(targeting_key: Any, key: Any) -> str:
    """The targeting key when it is a non-empty string, else ``key``; ``""`` (invalid) if neither."""
    if isinstance(targeting_key, str) and targeting_key:
        return targeting_key
    return key if isinstance(key, str) else ""


def has_key(targeting_key: Optional[str], attributes: Mapping[str, Any]) -> bool:
    """Whether the context can be keyed at all (a multi-kind one is checked when built).

    Cheap, for every evaluation: an evaluation without any key (global flags evaluated with
    an empty context) must not replace the request's context with one that cannot be valid.
    """
    if targeting_key:
        return True
    key = attributes.get("key")
    return (isinstance(key, str) and key != "") or attributes.get("kind") == MULTI


def snapshot(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``attributes`` that later changes to the app's objects cannot reach.

    The context is converted only when an error is captured, so what the evaluation saw must
    be kept as it was: OpenFeature's merged attributes share their nested lists and objects
    with the app's own EvaluationContext.
    """
    for value in attributes.values():
        if value.__class__ not in IMMUTABLE:
            return {k: _frozen(v) for k, v in attributes.items()}
    return dict(attributes)


def _frozen(value: Any) -> Any:
    if value.__class__ in IMMUTABLE:
        return value
    if isinstance(value, Mapping):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_frozen(v) for v in value)
    return value  # not an OpenFeature attribute type; the conversion leaves it out


def ld_value(value: Any) -> Any:
    """An attribute value as LaunchDarkly's value model (JSON) has it; None when it has none."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        text = value.astimezone(timezone.utc).isoformat()
        return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, Mapping):
        return {str(k): ld_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [ld_value(v) for v in value]
    return None


def to_ld_context(targeting_key: Optional[str], attributes: Mapping[str, Any]) -> Context:
    """The LaunchDarkly context of an OpenFeature evaluation context; maybe invalid
    (``context.valid`` is False, ``context.error`` says why). Raises ImportError without ldclient."""
    from ldclient import Context

    kind = attributes.get("kind")
    if kind == MULTI:
        multi = Context.multi_builder()
        for name, part in attributes.items():
            if name == "kind":
                continue
            if not isinstance(part, Mapping):
                logger.debug("OpenFeature multi-kind context: %r is not an object; left out", name)
                continue
            nested_key = part.get("targetingKey")
            if nested_key is not None and not isinstance(nested_key, str):
                logger.debug("OpenFeature multi-kind context: %r has a non-str targetingKey; left out", name)
                continue
            multi.add(_single(Context.builder(_key(nested_key, part.get("key"))), name, part))
        return multi.build()
    if not isinstance(kind, str):
        kind = DEFAULT_KIND  # absent, or not a string (LaunchDarkly's rule: then a user)
    return _single(Context.builder(_key(targeting_key, attributes.get("key"))), kind, attributes)


def _single(builder: ContextBuilder, kind: str, attributes: Mapping[str, Any]) -> Context:
    builder.kind(kind)
    for name, value in attributes.items():
        if name in NOT_CUSTOM:
            continue
        if name == "name":
            if isinstance(value, str):
                builder.name(value)
        elif name == "anonymous":
            if isinstance(value, bool):
                builder.anonymous(value)
        elif name == "privateAttributes":
            if isinstance(value, (list, tuple)):
                refs = [ref for ref in value if isinstance(ref, str)]
                if refs:
                    builder.private(*refs)
        else:
            builder.set(name, ld_value(value))
    return builder.build()


def to_evaluation_context(redacted: Mapping[str, Any]) -> Optional[tuple[Optional[str], dict[str, Any]]]:
    """``(targeting_key, attributes)`` of an OpenFeature evaluation context for a
    ``launchdarklyContext`` (the redacted form attached to a Sentry event): the same rules,
    backwards, so LaunchDarkly's provider rebuilds the same context. None without a key.

    A multi-kind context's targeting key is its ``user`` key, if it has one: LaunchDarkly's
    provider ignores it there, and other providers then still know the user.
    """
    if redacted.get("kind") == MULTI:
        attributes: dict[str, Any] = {"kind": MULTI}
        for name, part in redacted.items():
            if name == "kind" or not isinstance(part, Mapping):
                continue
            key = part.get("key")
            if isinstance(key, str) and key:
                attributes[name] = {"targetingKey": key, **_custom(part)}
        if len(attributes) == 1:
            return None
        user = attributes.get(DEFAULT_KIND)
        return (user["targetingKey"] if user is not None else None), attributes
    key = redacted.get("key")
    if not isinstance(key, str) or not key:
        return None
    kind = redacted.get("kind")
    return key, {"kind": kind if isinstance(kind, str) else DEFAULT_KIND, **_custom(redacted)}


def _custom(part: Mapping[str, Any]) -> dict[str, Any]:
    # _meta lists what was redacted or cut; it is about the Sentry event, not the context.
    return {k: v for k, v in part.items() if k not in ("key", "kind", "_meta")}
