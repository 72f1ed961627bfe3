"""Compile user patterns once so the event path only runs prepared regexes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

PatternLike = Union[str, "re.Pattern[str]"]

_SLASHED = re.compile(r"^/(?P<body>.*)/(?P<flags>[imsx]*)$", re.DOTALL)
_FLAG_BITS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


@dataclass(frozen=True)
class Matcher:
    """A compiled list of substrings and regexes; empty matches nothing.

    Substrings are folded into one alternation so twenty patterns cost one scan.
    """

    substrings: Optional[re.Pattern[str]]
    regexes: tuple[re.Pattern[str], ...]

    def __bool__(self) -> bool:
        return self.substrings is not None or bool(self.regexes)

    def search(self, text: str) -> bool:
        if self.substrings is not None and self.substrings.search(text):
            return True
        return any(rx.search(text) for rx in self.regexes)

    def search_any(self, texts: Iterable[str]) -> bool:
        return any(self.search(t) for t in texts)


EMPTY = Matcher(None, ())


def compile_patterns(option: str, value: Any, *, slashed_regex: bool = False) -> Matcher:
    """Validate and compile ``value`` (an iterable of str / re.Pattern) for ``option``.

    ``slashed_regex`` turns ``"/body/flags"`` strings into regexes, as RudderStack's
    JSON settings write them.
    """
    if value is None:
        return EMPTY
    if isinstance(value, (str, bytes, re.Pattern, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{option} must be a list of str or re.Pattern, got {type(value).__name__}"
        )
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
            slashed = _SLASHED.match(item) if slashed_regex else None
            if slashed is not None:
                regexes.append(_compile_slashed(option, i, slashed))
            else:
                subs.append(item)
        else:
            raise TypeError(
                f"{option}[{i}] must be a str or re.Pattern, got {type(item).__name__}"
            )
    joined = re.compile("|".join(re.escape(s) for s in subs)) if subs else None
    return Matcher(joined, tuple(regexes))


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
