"""How a value that carries a LaunchDarkly context is shown among a frame's local variables.

sentry-sdk sends the repr of the local variables of every frame of a captured exception
(2.x scrubs a list of secret-looking names, 3.x nothing). An ``ldclient.Context`` reprs as
its full JSON, private attributes included, and so does every value whose repr includes
one: LaunchDarkly's ``EvaluationSeriesContext`` (what each hook is given) and event inputs,
an OpenFeature ``EvaluationContext`` (an LD context by LaunchDarkly's OpenFeature rules) and
anything holding those, an exception raised with one, an app's object of any kind.

Two steps, both fail closed (`local_repr`):

1. Values whose repr is made of their parts are looked into: lists, tuples, sets, dicts and
   their views, dataclasses, ``SimpleNamespace``, ``functools.partial``, exceptions (their
   ``args``), and LaunchDarkly's, OpenFeature's and our objects with a repr of their own.
   Such a value that holds a context is shown part by part, each context in it redacted
   as the event's ``launchdarklyContext`` is. An object with ``object.__repr__`` shows
   nothing of itself and is not looked into. Looking stops at a depth and a number of
   values; what is past either is shown by its type name alone.
2. Anything else, and the app's own ``custom_repr``'s answer, is screened by its repr text
   (computed once, and handed to sentry-sdk, which would compute it anyway): each
   context's JSON found in it is shown redacted; a repr that still looks as if it carried
   a context (a ``"kind":`` key, an ``EvaluationContext(``) is not shown at all
   (``<Type: holds a LaunchDarkly context; not shown>``).

Strings, numbers and the like are passed over: a context the app turned into a ``str`` or a
``dict`` itself is the app's data (sentry-sdk serializes a dict's items one by one, so no
repr of it would carry the context whole anyway).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import re
import sys
import types
import uuid
from collections.abc import Collection, Iterable
from decimal import Decimal
from itertools import islice
from typing import Any, Callable, Optional

logger = logging.getLogger("sentry_flags")

MAX_DEPTH = 4
MAX_VALUES = 200  # values looked at for one local variable
MAX_ITEMS = 20  # items of one list or dict shown
MAX_REPR = 200  # characters of the repr of a value that carries no context
LOOKED_INTO = ("ldclient.", "openfeature.", "sentry_flags.")
MAX_SCREENED = 100_000  # characters of a repr searched for contexts' JSON; longer: not shown
MAX_FOUND = 50  # context JSON starts tried in one repr; more: not shown

# Values that carry no context and reach custom_repr by the thousand (sentry-sdk hands it
# every str and number among frame variables, one by one inside dicts and lists, and every
# function, class and module a frame holds). Exact types only: a subclass may repr its
# fields. Not bound methods: their repr holds the repr of the object they are bound to.
PLAIN = frozenset({
    str, bytes, bytearray, int, float, complex, bool, type(None), Decimal, uuid.UUID,
    datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
    type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType,
})  # fmt: skip
# What a context shows in a repr: a single context's JSON has "kind" (compact or spaced), a
# multi-context's too; an OpenFeature EvaluationContext is its dataclass repr.
_KIND = '"kind":'
_KIND_SPACED = '"kind" :'
_EVALUATION_CONTEXT = "EvaluationContext("
_CONTEXT_START = re.compile(r'\{\s*"(?:key|kind)"\s*:')
_DICT_VIEWS: tuple[type[Any], ...] = (type({}.keys()), type({}.values()), type({}.items()))
_MADE_OF_PARTS = (dict, list, tuple, set, frozenset, types.SimpleNamespace, functools.partial, *_DICT_VIEWS)
_decoder = json.JSONDecoder()

Show = Callable[[Any], dict[str, Any]]  # an ldclient.Context -> its redacted JSON form


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
        items: Collection[Any]
        if isinstance(value, dict):
            items = value.values()
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = value
        elif isinstance(value, _DICT_VIEWS):
            if len(value) > MAX_ITEMS:
                return True
            items = list(value)
        else:
            items = [item for _, item in _parts(value)]
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
            return self.short(value)
        if depth <= 0 or self.left <= 0:
            return f"<{type(value).__name__}>"
        if isinstance(value, dict):
            return (
                "{"
                + self._items(((self.short(k), v) for k, v in value.items()), len(value), depth, ": ")
                + "}"
            )
        if isinstance(value, (list, tuple, set, frozenset)):
            brackets = "[]" if isinstance(value, list) else "()" if isinstance(value, tuple) else "{}"
            return brackets[0] + self._items(((None, v) for v in value), len(value), depth) + brackets[1]
        if isinstance(value, _DICT_VIEWS):
            return f"{type(value).__name__}([{self._items(((None, v) for v in value), len(value), depth)}])"
        parts = _parts(value)
        return f"{_shown_name(value)}({self._items(iter(parts), len(parts), depth, '=')})"

    def short(self, value: Any) -> str:
        """The repr of a value not looked into, screened, and cut to ``MAX_REPR``."""
        text = screen(_repr(value), type(value).__name__, self.show)
        return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."

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
    evaluation_context_type = getattr(evaluation_context, "EvaluationContext", None)
    # Most locals are neither a context nor made of parts: decided without any repr. The
    # others are looked through first, and shown by us only when a context is among them.
    if (
        not isinstance(value, context_type)
        and (evaluation_context_type is None or not isinstance(value, evaluation_context_type))
        and not _looked_into(value)
    ):
        return None
    walk = _Walk(show, context_type, evaluation_context_type)
    if not walk.holds_context(value, MAX_DEPTH):
        return None
    walk.left = MAX_VALUES
    return walk.render(value, MAX_DEPTH)


def local_repr(value: Any, show: Show, previous: Optional[Callable[[Any], Any]]) -> Any:
    """What sentry-sdk's ``custom_repr`` returns for ``value``: never a context's private attributes.

    ``previous`` is the app's own ``custom_repr``: it runs for every value we do not show
    ourselves, and its answer is screened too. sentry-sdk uses a non-empty answer as the
    value's repr (``custom_repr(value) or repr(value)``, on 2.x and 3.x alike), so handing it
    the repr we screened saves it a second ``repr``; None lets it make its own (a plain value,
    or no LaunchDarkly SDK loaded: no context can be in it).
    """
    if type(value) in PLAIN or "ldclient" not in sys.modules:
        answer = _previous(previous, value)
        if answer and "ldclient" in sys.modules:
            return _screen_answer(answer, type(value).__name__, show)
        return answer
    shown = redacted_repr(value, show)
    if shown is not None:
        return shown
    answer = _previous(previous, value)
    if answer:
        return _screen_answer(answer, type(value).__name__, show)
    return screen(_repr(value), type(value).__name__, show)


def _screen_answer(answer: Any, type_name: str, show: Show) -> Any:
    """The app's ``custom_repr`` answer, screened. sentry-sdk sends whatever it returns; an
    answer that is not a ``str`` (a dict, say) is screened as the JSON it is sent as, and
    replaced by that screened text only when a context was found in it."""
    if isinstance(answer, str):
        return screen(answer, type_name, show)
    try:
        text = json.dumps(answer, default=_repr)
    except Exception:  # circular, or keys JSON cannot hold: judged by its repr
        text = _repr(answer)
    screened = screen(text, type_name, show)
    return answer if screened == text else screened


def screen(text: str, type_name: str, show: Show) -> str:
    """``text`` (a repr) with each LaunchDarkly context's JSON in it redacted; a placeholder
    when something in it still looks like a context."""
    if _KIND not in text and _KIND_SPACED not in text and _EVALUATION_CONTEXT not in text:
        return text  # nearly every repr: two or three substring searches
    redacted = _redact_text(text, show)
    return redacted if redacted is not None else f"<{type_name}: holds a LaunchDarkly context; not shown>"


def _redact_text(text: str, show: Show) -> Optional[str]:
    """``text`` with the context JSON in it redacted, or None where that cannot be done."""
    context_type = getattr(sys.modules.get("ldclient"), "Context", None)
    if context_type is None or len(text) > MAX_SCREENED:
        return None
    kept: list[str] = []  # the text around the contexts, in order
    shown: list[str] = []  # each context found, redacted
    end = 0
    for tried, match in enumerate(_CONTEXT_START.finditer(text)):
        start = match.start()
        if start < end:
            continue  # inside a context already shown (a multi-context's members)
        if tried >= MAX_FOUND:
            return None
        try:
            data, stop = _decoder.raw_decode(text, start)
        except ValueError:  # not JSON (a str's escapes, a cut repr): left for the check below
            continue
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            continue
        context = context_type.from_dict(data)
        if not context.valid:
            continue
        kept.append(text[end:start])
        shown.append(f"<Context {_json(show(context))}>")
        end = stop
    kept.append(text[end:])
    if any(_KIND in part or _KIND_SPACED in part or _EVALUATION_CONTEXT in part for part in kept):
        return None
    out = [kept[0]]
    for context_text, after in zip(shown, kept[1:]):
        out += (context_text, after)
    return "".join(out)


def _previous(previous: Optional[Callable[[Any], Any]], value: Any) -> Any:
    if previous is None:
        return None
    try:
        return previous(value)
    except Exception:  # sentry-sdk would use the plain repr: so do we, screened
        logger.debug("the app's custom_repr failed; the plain repr is used", exc_info=True)
        return None


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return "<broken repr>"  # what sentry-sdk shows for it


def _looked_into(value: Any) -> bool:
    """Whether ``value``'s repr is made of its parts, so that ours may be too.

    An object with ``object.__repr__`` shows no field (``<LDClient object at ...>``):
    looking into it could only show more than its own repr, an SDK key in a config say.
    """
    if isinstance(value, _MADE_OF_PARTS):
        return True
    if type(value) in PLAIN:
        return False
    if isinstance(value, BaseException):
        return type(value).__repr__ is BaseException.__repr__  # "ValueError(arg, ...)"
    params = getattr(value, "__dataclass_params__", None)
    if params is not None and not isinstance(value, type):
        return bool(getattr(params, "repr", False))
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    own_repr: Any = cls.__repr__
    return module.startswith(LOOKED_INTO) and own_repr is not object.__repr__


def _parts(value: Any) -> list[tuple[Optional[str], Any]]:
    """What ``value``'s repr is made of, named where the repr names it."""
    if isinstance(value, BaseException):
        return [(None, arg) for arg in value.args]
    if isinstance(value, functools.partial):
        return [
            (None, value.func),
            *((None, arg) for arg in value.args),
            *((str(k), v) for k, v in value.keywords.items()),
        ]
    return _fields(value)


def _shown_name(value: Any) -> str:
    if isinstance(value, types.SimpleNamespace) and type(value).__repr__ is types.SimpleNamespace.__repr__:
        return "namespace"
    if type(value) is functools.partial:
        return "functools.partial"
    return type(value).__name__


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


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)
