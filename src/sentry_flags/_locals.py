"""How a value that carries a LaunchDarkly context is shown among a frame's local variables.

sentry-sdk sends the repr of the local variables of every frame of a captured exception
(2.x scrubs a list of secret-looking names, 3.x nothing). An ``ldclient.Context`` reprs as
its full JSON, private attributes included, and so does every value whose repr includes
one: LaunchDarkly's ``EvaluationSeriesContext`` (what each hook is given) and event inputs,
an OpenFeature ``EvaluationContext`` (an LD context by LaunchDarkly's OpenFeature rules) and
anything holding those, a dataclass of the app's. Such a value is shown field by field with
each context in it redacted, as the event's ``launchdarklyContext`` is.

Only values whose repr is made of their parts are looked into: lists, tuples, sets, dicts,
dataclasses, and LaunchDarkly's, OpenFeature's and our objects with a repr of their own. An
object with ``object.__repr__`` shows nothing of itself and is left as it is. Looking stops
at a depth and a number of values; what is past either is shown by its type name alone.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from collections.abc import Collection, Iterable
from itertools import islice
from typing import Any, Callable, Optional

MAX_DEPTH = 4
MAX_VALUES = 200  # values looked at for one local variable
MAX_ITEMS = 20  # items of one list or dict shown
MAX_REPR = 200  # characters of the repr of a value that carries no context
LOOKED_INTO = ("ldclient.", "openfeature.", "sentry_flags.")

Show = Callable[[Any], dict[str, Any]]  # an ldclient.Context -> its redacted JSON form

# Exact types whose values neither are nor hold a context and are not looked into (see
# _looked_into: builtins, none with fields), so redacted_repr returns None for them. sentry-sdk
# asks for the repr of every local of every frame it sends, and most are of these: their
# callers skip redacted_repr, an error's capture pays for nothing.
PLAIN_TYPES = frozenset({
    int, float, bool, str, bytes, type(None), type,
    types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
})  # fmt: skip


class _Walk:
    """One local variable being shown, and what is left of the budget for it."""

    __slots__ = ("context_type", "evaluation_context_type", "left", "show")

    def __init__(self, show: Show, context_type: Any, evaluation_context_type: Any) -> None:
        self.show = show
        self.context_type = context_type
        self.evaluation_context_type = evaluation_context_type
        self.left = MAX_VALUES

    def is_context(self, value: Any) -> bool:
        if isinstance(value, self.context_type):
            return True
        return self.evaluation_context_type is not None and isinstance(value, self.evaluation_context_type)

    def holds_context(self, value: Any, depth: int) -> bool:
        """Whether a context is in ``value`` (or may be: past the depth or the budget), without
        calling any repr."""
        self.left -= 1
        if self.is_context(value):
            return True
        if not _looked_into(value):
            return False
        if depth <= 0 or self.left <= 0:
            return True  # not looked at: shown by its type name only
        if isinstance(value, dict):
            items: Collection[Any] = value.values()
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = value
        else:
            items = [item for _, item in _fields(value)]
        if len(items) > MAX_ITEMS:
            return True  # not all looked at: shown cut, never by its own repr
        return any(self.holds_context(item, depth - 1) for item in items)

    def render(self, value: Any, depth: int) -> str:
        self.left -= 1
        if isinstance(value, self.context_type):
            return f"<Context {_json(self.show(value))}>"
        if self.evaluation_context_type is not None and isinstance(value, self.evaluation_context_type):
            return self._evaluation_context(value)
        if not _looked_into(value):
            return _short(value)
        if depth <= 0 or self.left <= 0:
            return f"<{type(value).__name__}>"
        if isinstance(value, dict):
            return (
                "{" + self._items(((_short(k), v) for k, v in value.items()), len(value), depth, ": ") + "}"
            )
        if isinstance(value, (list, tuple, set, frozenset)):
            brackets = "[]" if isinstance(value, list) else "()" if isinstance(value, tuple) else "{}"
            return brackets[0] + self._items(((None, v) for v in value), len(value), depth) + brackets[1]
        fields = _fields(value)
        return f"{type(value).__name__}({self._items(iter(fields), len(fields), depth, '=')})"

    def _items(
        self, items: Iterable[tuple[Optional[str], Any]], count: int, depth: int, separator: str = ""
    ) -> str:
        shown = [
            (f"{name}{separator}" if name is not None else "") + self.render(item, depth - 1)
            for name, item in islice(items, MAX_ITEMS)
        ]
        if count > MAX_ITEMS:
            shown.append("...")
        return ", ".join(shown)

    def _evaluation_context(self, value: Any) -> str:
        from sentry_flags._openfeature import to_ld_context

        attributes = getattr(value, "attributes", None)
        try:
            context = to_ld_context(getattr(value, "targeting_key", None), dict(attributes or {}))
        except Exception:  # not a mapping, or no ldclient after all
            context = None
        if context is None or not context.valid:
            return "<EvaluationContext: no LaunchDarkly context; attributes not shown>"
        return f"<EvaluationContext {_json(self.show(context))}>"


def redacted_repr(value: Any, show: Show) -> Optional[str]:
    """``value`` shown with every LD context in it redacted by ``show``; None when it holds
    none (then its own repr is safe to send)."""
    ldclient = sys.modules.get("ldclient")
    context_type = getattr(ldclient, "Context", None)
    if context_type is None:
        return None  # no LaunchDarkly context can exist in this process
    evaluation_context = sys.modules.get("openfeature.evaluation_context")
    walk = _Walk(show, context_type, getattr(evaluation_context, "EvaluationContext", None))
    # Most locals are neither a context nor made of parts: decided without any repr. The
    # others are looked through first, and shown by us only when a context is among them.
    if not walk.is_context(value) and not _looked_into(value):
        return None
    if not walk.holds_context(value, MAX_DEPTH):
        return None
    walk.left = MAX_VALUES
    return walk.render(value, MAX_DEPTH)


def _looked_into(value: Any) -> bool:
    """Whether ``value``'s repr is made of its parts, so that ours may be too.

    An object with ``object.__repr__`` shows no field (``<LDClient object at ...>``):
    looking into it could only show more than its own repr, an SDK key in a config say.
    """
    if isinstance(value, (str, bytes, int, float, type(None))):
        return False
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return True
    params = getattr(value, "__dataclass_params__", None)
    if params is not None and not isinstance(value, type):
        return bool(getattr(params, "repr", False))
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    own_repr: Any = cls.__repr__
    return module.startswith(LOOKED_INTO) and own_repr is not object.__repr__


def _fields(value: Any) -> list[tuple[Optional[str], Any]]:
    """What ``value``'s repr is made of: a dataclass's fields shown in its repr, else its
    slots and instance attributes, read as stored."""
    if dataclasses.is_dataclass(value):
        names = [f.name for f in dataclasses.fields(value) if f.repr]
    else:
        names = []
        for klass in type(value).__mro__:
            slots = klass.__dict__.get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in names and name not in ("__dict__", "__weakref__"):
                    names.append(name)
        instance = getattr(value, "__dict__", None)
        if isinstance(instance, dict):
            names.extend(name for name in instance if isinstance(name, str) and name not in names)
    found: list[tuple[Optional[str], Any]] = []
    for name in names:
        try:
            found.append((name, object.__getattribute__(value, name)))
        except AttributeError:  # an unset slot
            continue
    return found


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)
