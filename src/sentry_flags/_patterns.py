"""Compile user patterns once so the event path only runs prepared regexes."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

PatternLike = Union[str, "re.Pattern[str]"]

# JavaScript's flags, as RudderStack's settings carry them: "g" (global) and "u" (unicode)
# change nothing for a search in Python; "x" is Python's verbose mode. Other letters after
# the last slash ("/static/js") make the string a URL path, i.e. a substring, unless the
# body is written in regex syntax ("/^Timeout/q"): that is a regex with a wrong flag,
# rejected rather than quietly matched as text.
_SLASHED = re.compile(r"^/(?P<body>.*)/(?P<flags>[gimsux]*)$", re.DOTALL)
_SLASHED_LETTERS = re.compile(r"^/(?P<body>.*)/(?P<flags>[A-Za-z]+)$", re.DOTALL)
_REGEX_SYNTAX = re.compile(r"[\^$*+?()\[\]{}|\\]")  # not ".", common in paths
FLAGS_TEXT = "i, m, s, x, or JavaScript's g and u"
_FLAG_BITS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "g": 0, "u": 0}
# A global inline flag group such as "(?i)": moved into an alternation it would apply to
# every branch (Python < 3.11) or fail to compile (3.11+). Over-matching here (an escaped
# "\(?i)") only means that pattern is not merged.
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")


# What a Matcher remembers (see Matcher.match_any): an app raises the same few errors from the
# same few places over and over, so the same texts come back. Texts longer than REMEMBER_TEXT
# characters (a message with a payload in it) are searched each time, which bounds the memory
# to about SEEN_SIZE * REMEMBER_TEXT characters (typically paths and modules: ~100 KB).
SEEN_SIZE = 1024
REMEMBER_TEXT = 256


class Matcher:
    """A compiled list of substrings and regexes; empty matches nothing.

    Substrings are folded into one literal alternation, and regexes that share their flags
    and have no groups into one alternation per flag set, so twenty patterns cost one or
    two scans of each text instead of twenty. A regex with groups (a backreference would
    change meaning once its group numbers shift), a global inline flag or ``re.DEBUG`` is
    searched on its own. ``search`` is true exactly when one of the patterns, searched one
    by one, would match.
    """

    __slots__ = ("scanners", "seen")

    def __init__(self, scanners: tuple[re.Pattern[str], ...]) -> None:
        self.scanners = scanners
        # What match_any remembers: a text, whether it matches. Read it, never write it.
        self.seen: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.scanners)

    def __repr__(self) -> str:
        return f"Matcher({[rx.pattern for rx in self.scanners]!r})"

    def search(self, text: str) -> bool:
        return any(scanner.search(text) is not None for scanner in self.scanners)

    def search_any(self, texts: Iterable[str]) -> bool:
        scanners = self.scanners
        for text in texts:
            for scanner in scanners:
                if scanner.search(text) is not None:
                    return True
        return False

    def match_any(self, texts: Iterable[str]) -> bool:
        """``search_any``, remembering each short text's answer (at most ``SEEN_SIZE``, the
        oldest forgotten first). Safe from any number of threads: a race only costs a
        search."""
        seen = self.seen
        for text in texts:
            found = seen.get(text) if text.__class__ is str else None  # a subclass may compare oddly
            if found is None:
                found = self.search(text)
                if text.__class__ is str and len(text) <= REMEMBER_TEXT:
                    remember(seen, text, found, SEEN_SIZE)
            if found:
                return True
        return False


V = TypeVar("V")


def remember(cache: dict[Any, V], key: Any, value: V, size: int) -> None:
    """``cache[key] = value`` in a dict kept to ``size`` entries by forgetting the oldest."""
    while len(cache) >= size:
        try:
            del cache[next(iter(cache))]
        except (KeyError, StopIteration, RuntimeError):  # another thread changed it first
            break
    cache[key] = value


EMPTY = Matcher(())


def compile_patterns(option: str, value: Any) -> Matcher:
    """Validate and compile ``value`` (an iterable of str / re.Pattern) for ``option``.

    ``"/body/flags"`` strings are read as regexes only from RudderStack's config
    (`slashed_regexes`, in ``FlagsIntegration.from_config``), before this.
    """
    if value is None:
        return EMPTY
    if isinstance(value, (str, bytes, re.Pattern, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{option} must be a list of str or re.Pattern, got {type(value).__name__}")
    subs: list[str] = []
    regexes: list[re.Pattern[str]] = []
    for i, item in enumerate(value):
        if isinstance(item, re.Pattern):
            if not isinstance(item.pattern, str):
                raise TypeError(f"{option}[{i}] must be a str pattern, not bytes")
            regexes.append(item)
        elif isinstance(item, str):
            if not item:
                raise ValueError(f"{option}[{i}] must not be an empty string")
            subs.append(item)
        else:
            raise TypeError(f"{option}[{i}] must be a str or re.Pattern, got {type(item).__name__}")
    scanners: list[re.Pattern[str]] = []
    if subs:
        # Kept apart from the regexes: a pure literal alternation lets the regex engine
        # skip quickly to candidate positions, which a mixed one does not.
        scanners.append(re.compile("|".join(re.escape(s) for s in subs)))
    scanners.extend(merge_regexes(regexes))
    return Matcher(tuple(scanners))


def slashed_regexes(option: str, value: Any) -> Any:
    """``value`` with each ``"/body/flags"`` string compiled to a regex, as RudderStack's JSON
    settings write them; other items (and a ``value`` that is not a list) as they are, for
    `compile_patterns` to take or reject. Errors name ``option[index]``."""
    if isinstance(value, (str, bytes, re.Pattern, Mapping)) or not isinstance(value, Iterable):
        return value
    found: list[Any] = []
    for i, item in enumerate(value):
        slashed = _SLASHED.match(item) if isinstance(item, str) else None
        if slashed is not None:
            found.append(_compile_slashed(option, i, slashed))
            continue
        if isinstance(item, str):
            _reject_unknown_flags(option, i, item)
        found.append(item)
    return found


def mergeable(rx: re.Pattern[str]) -> bool:
    """Whether ``rx`` keeps its meaning as one branch of a larger alternation."""
    return rx.groups == 0 and not rx.flags & re.DEBUG and _GLOBAL_FLAGS.search(rx.pattern) is None


def merge_regexes(regexes: Iterable[re.Pattern[str]]) -> list[re.Pattern[str]]:
    """One alternation per flag set for the mergeable regexes, the others as they are."""
    by_flags: dict[int, list[re.Pattern[str]]] = {}
    alone: list[re.Pattern[str]] = []
    for rx in regexes:
        if mergeable(rx):
            by_flags.setdefault(rx.flags, []).append(rx)
        else:
            alone.append(rx)
    merged: list[re.Pattern[str]] = []
    for flags, group in by_flags.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        # In verbose mode a "#" comment runs to the end of the line: end each branch with
        # a newline so a trailing comment cannot swallow the closing parenthesis.
        end = "\n)" if flags & re.VERBOSE else ")"
        source = "|".join(f"(?:{rx.pattern}{end}" for rx in group)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # each one warned when the user compiled it
                merged.append(re.compile(source, flags))
        except (re.error, RecursionError, OverflowError):
            merged.extend(group)
    return merged + alone


def _reject_unknown_flags(option: str, index: int, item: str) -> None:
    letters = _SLASHED_LETTERS.match(item)
    if letters is not None and _REGEX_SYNTAX.search(letters.group("body")):
        unknown = sorted({ch for ch in letters.group("flags") if ch not in _FLAG_BITS})
        named = ", ".join(map(repr, unknown)) + (
            " is not a regex flag" if len(unknown) == 1 else " are not regex flags"
        )
        raise ValueError(
            f"{option}[{index}] {item!r} is written as a regex, but {named} (expected {FLAGS_TEXT}); "
            "drop the slashes to match it as text"
        )


def _compile_slashed(option: str, index: int, match: re.Match[str]) -> re.Pattern[str]:
    if not match.group("body"):
        raise ValueError(f"{option}[{index}] is an empty regex, which would match everything")
    flags = 0
    for ch in match.group("flags"):
        flags |= _FLAG_BITS[ch]
    try:
        return re.compile(match.group("body"), flags)
    except re.error as exc:
        raise ValueError(f"{option}[{index}] is not a valid regex ({exc})") from None
