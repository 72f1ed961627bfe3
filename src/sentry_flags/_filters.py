"""The processors our before_send stage runs, in order, on the finished error event.

Each processor is a small callable ``(event) -> event | None``; ``None`` drops the event.
They are built once from the options, so the event path only runs compiled state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from sentry_flags._patterns import EMPTY, REMEMBER_TEXT, Matcher, remember
from sentry_flags._shape import (
    Event,
    UrlParts,
    all_frames,
    error_texts,
    exceptions,
    url_parts,
    urls_of,
)

logger = logging.getLogger("sentry_flags")


class Processor(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, event: Event) -> Optional[Event]: ...


@dataclass(frozen=True)
class Filters:
    """``ignore_errors``, ``deny_urls``, ``allow_urls`` and ``include_paths``, in that order,
    in one pass over the event.

    Each option decides exactly as it would on its own (``error_texts``, ``event_urls`` and
    ``all_frames`` say what it reads). This runs on the app's thread for every error, so the
    event's exception values are read once for all four, and what was decided is remembered
    (an app raises the same errors from the same places over and over): ``ignore_errors`` by
    the exceptions' types and values, the URL options by the raising frame's paths (the
    request URL by the matchers themselves), ``include_paths`` by each frame's module and path.
    Each memory keeps at most ``DECISIONS`` entries of short texts only (the oldest forgotten
    first). An option that fails on a malformed event is skipped, as if it were not
    configured, and the next one runs.
    """

    ignore: Matcher = EMPTY
    deny: Matcher = EMPTY
    allow: Matcher = EMPTY
    include: Optional[IncludePaths] = None
    name: str = "filters"

    # The options given, None for the others: tested with "is", which calls nothing.
    _ignore: Optional[Matcher] = field(default=None, init=False, repr=False, compare=False)
    _deny: Optional[Matcher] = field(default=None, init=False, repr=False, compare=False)
    _allow: Optional[Matcher] = field(default=None, init=False, repr=False, compare=False)
    # (type, value, type, value, ...) of an event's exceptions -> whether ignore_errors drops it.
    _ignored: dict[tuple[Optional[str], ...], bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # A raising frame's (abs_path, filename, module) -> (it gives a URL text, deny_urls matches
    # one, allow_urls matches one).
    _frames: dict[tuple[Optional[str], ...], tuple[bool, bool, bool]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("ignore", "deny", "allow"):
            matcher = getattr(self, name)
            object.__setattr__(self, f"_{name}", matcher if matcher else None)

    def __bool__(self) -> bool:
        return bool(self.ignore or self.deny or self.allow or self.include is not None)

    def __call__(self, event: Event) -> Optional[Event]:
        return None if self.drop(event) is not None else event

    def drop(self, event: Event) -> Optional[str]:
        """The name of the option that drops ``event``, or None: then its frames are marked."""
        # sentry-sdk's own shape, one exception (most errors): read here with few calls, the
        # raising frame taken as the last one when the memory knows it (it remembers only
        # frames that can raise, and NO_FRAME, so a hit on any other key is the raising
        # frame). Anything else, or a frame not known yet, is decided by the readers that
        # take any shape (_drop_any, _places).
        container = event.get("exception")
        values = container.get("values") if container.__class__ is dict else None
        if (
            values.__class__ is not list
            or len(values) != 1
            or "message" in event
            or "logentry" in event
            or "threads" in event
        ):
            return self._drop_any(event)
        exc = values[0]
        if exc.__class__ is not dict:
            return self._drop_any(event)
        stacktrace = exc.get("stacktrace")
        frames = stacktrace.get("frames") if stacktrace.__class__ is dict else None
        if (stacktrace is not None and frames is None and stacktrace.__class__ is not dict) or (
            frames is not None and frames.__class__ is not list
        ):
            return self._drop_any(event)
        ignore, deny, allow = self._ignore, self._deny, self._allow
        if ignore is not None:
            etype, value = exc.get("type"), exc.get("value")
            ignored = None
            # Asked only with plain texts, as _ignores remembers them: a str subclass may
            # print as another text (its __str__), and a list cannot be hashed.
            if (etype is None or etype.__class__ is str) and (value is None or value.__class__ is str):
                ignored = self._ignored.get((etype, value))
            try:
                if ignored is None:
                    ignored = self._ignores(event, values, ignore)
                if ignored:
                    return "ignore_errors"
            except Exception:
                logger.debug("ignore_errors failed; event passed on unchanged", exc_info=True)
        if deny is not None or allow is not None:
            verdicts = None
            last = frames[-1] if frames else None
            if last.__class__ is dict:
                path, name, module = last.get("abs_path"), last.get("filename"), last.get("module")
                # Plain texts only, as _frame_verdicts remembers them; and not NO_FRAME, which
                # it remembers for events without a raising frame: a last frame without texts
                # may still have one before it.
                if (
                    (path is None or path.__class__ is str)
                    and (name is None or name.__class__ is str)
                    and (module is None or module.__class__ is str)
                    and (path is not None or name is not None or module is not None)
                ):
                    verdicts = self._frames.get((path, name, module))
            request = event.get("request")
            if request is None:
                url = None
            elif request.__class__ is dict:
                url = request.get("url")
                if url.__class__ is str or url is None:
                    url = url or None  # as request_url reads it
                else:
                    verdicts = None  # not a plain str (a subclass's reading may fail): the long way
            else:
                verdicts = None  # another Mapping, whose reading may fail: the long way
            if verdicts is None:
                return self._places(event, values)
            if deny is not None and (verdicts[1] or (url is not None and deny.match_any((url,)))):
                return "deny_urls"
            # An event without any URL is kept.
            if (
                allow is not None
                and (url is not None or verdicts[0])
                and not (verdicts[2] or (url is not None and allow.match_any((url,))))
            ):
                return "allow_urls"
        if self.include is not None and frames:
            try:
                self.include.mark(frames)
            except Exception:
                logger.debug("include_paths failed; event passed on unchanged", exc_info=True)
        return None

    def _drop_any(self, event: Event) -> Optional[str]:
        """``drop`` for an event of any shape."""
        values = None
        ignore = self._ignore
        if ignore is not None:
            try:
                values = exceptions(event)
                if self._ignores(event, values, ignore):
                    return "ignore_errors"
            except Exception:
                logger.debug("ignore_errors failed; event passed on unchanged", exc_info=True)
        return self._places(event, values)

    def _places(self, event: Event, values: Optional[list[Any]]) -> Optional[str]:
        """``deny_urls``, ``allow_urls`` and ``include_paths``, for an event of any shape."""
        deny, allow = self._deny, self._allow
        if deny is not None or allow is not None:
            parts = None
            if deny is not None:
                try:
                    if values is None:
                        values = exceptions(event)
                    parts = url_parts(event, values)
                    url = parts[0]
                    if (url is not None and deny.match_any((url,))) or self._frame_verdicts(parts)[1]:
                        return "deny_urls"
                except Exception:
                    logger.debug("deny_urls failed; event passed on unchanged", exc_info=True)
            if allow is not None:
                try:
                    if parts is None:
                        if values is None:
                            values = exceptions(event)
                        parts = url_parts(event, values)
                    url = parts[0]
                    some, _, allowed = self._frame_verdicts(parts)
                    # An event without any URL is kept.
                    if (url is not None or some) and not (
                        allowed or (url is not None and allow.match_any((url,)))
                    ):
                        return "allow_urls"
                except Exception:
                    logger.debug("allow_urls failed; event passed on unchanged", exc_info=True)
        if self.include is not None:
            try:
                if values is None:
                    values = exceptions(event)
                self.include.mark(all_frames(event, values))
            except Exception:
                logger.debug("include_paths failed; event passed on unchanged", exc_info=True)
        return None

    def _ignores(self, event: Event, values: list[Any], ignore: Matcher) -> bool:
        """``ignore.match_any(error_texts(event, values))``, remembered for plain events."""
        key: Optional[tuple[Optional[str], ...]] = None
        if "message" not in event and "logentry" not in event:  # else it reads those too
            found: list[Optional[str]] = []
            size = 0
            for exc in values:
                etype, value = exc.get("type"), exc.get("value")
                if (etype is not None and etype.__class__ is not str) or (
                    value is not None and value.__class__ is not str
                ):
                    break
                found.append(etype)
                found.append(value)
                size += (len(etype) if etype else 0) + (len(value) if value else 0)
            else:
                if size <= REMEMBER_TEXT:
                    key = tuple(found)
                    remembered = self._ignored.get(key)
                    if remembered is not None:
                        return remembered
        ignored = ignore.match_any(error_texts(event, values))
        if key is not None:
            remember(self._ignored, key, ignored, DECISIONS)
        return ignored

    def _frame_verdicts(self, parts: UrlParts) -> tuple[bool, bool, bool]:
        """For the raising frame's texts in ``parts``: whether there is any, whether
        ``deny_urls`` matches one, whether ``allow_urls`` does; remembered."""
        key = parts[1:]
        remembered = None
        plain = True
        for text in key:
            if text is not None and (text.__class__ is not str or len(text) > REMEMBER_TEXT):
                plain = False
                break
        if plain:
            remembered = self._frames.get(key)
            if remembered is not None:
                return remembered
        texts = urls_of((None, *key))
        deny, allow = self._deny, self._allow
        verdicts = (
            bool(texts),
            deny is not None and deny.match_any(texts),
            allow is not None and allow.match_any(texts),
        )
        if plain:
            remember(self._frames, key, verdicts, DECISIONS)
        return verdicts


DECISIONS = 1024  # entries in each of Filters' memories
NO_FRAME = (None, None, None)  # url_parts' frame texts when no frame can have raised
INCLUDE_PATHS_CACHE_SIZE = 1024

_FrameKey = tuple[Optional[str], Optional[str]]


@dataclass(frozen=True)
class IncludePaths:
    """Mark frames from the app's own paths in-app, and every other frame not.

    The decision depends only on a frame's ``(abs_path, module)``, and an app raises from
    the same few hundred places over and over, so decisions are remembered in a dict of
    at most ``cache_size`` entries (the oldest is forgotten first). Only pairs of strings
    (or None) are remembered; a frame with anything else there is decided each time.
    """

    matcher: Matcher
    name: str = "include_paths"
    cache_size: int = INCLUDE_PATHS_CACHE_SIZE
    _cache: dict[_FrameKey, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __call__(self, event: Event) -> Optional[Event]:
        self.mark(all_frames(event))
        return event

    def mark(self, frames: Iterable[dict[str, Any]]) -> None:
        """Set ``in_app`` on each of ``frames``."""
        # A frame is the app's when its module or its path matches; the matcher remembers
        # each text's answer (decide fills it in). A plain dict with a module and a path
        # that are strings or None, both answered before, is the common case: read here
        # without a method call, the module first (the same few objects over and over,
        # hashed once). Anything else is decided, and remembered by frame, in decide.
        seen = self.matcher.seen
        for frame in frames:
            try:
                if frame.__class__ is not dict:
                    raise TypeError
                in_app = None
                module = frame["module"]
                if module.__class__ is str:
                    if module:
                        in_app = seen[module]
                elif module is not None:
                    raise TypeError
                if not in_app:
                    path = frame["abs_path"]
                    if path.__class__ is str:
                        if path:
                            in_app = seen[path]
                    elif path is not None:
                        raise TypeError
                    if in_app is None:
                        raise KeyError  # neither a module nor a path: decided by frame
            except (KeyError, TypeError):  # a key missing, another type, or not seen yet
                if not isinstance(frame, dict):
                    continue  # not a frame (all_frames leaves these out; a raw list may not)
                in_app = self.decide(frame.get("abs_path"), frame.get("module"))
            frame["in_app"] = in_app

    def decide(self, path: Any, module: Any) -> bool:
        """Whether a frame at ``path`` in ``module`` is the app's own, remembered."""
        key = (path if isinstance(path, str) else None, module if isinstance(module, str) else None)
        in_app = self._cache.get(key)
        if in_app is None:
            # Each text on its own, so the matcher remembers both for mark.
            in_app = False
            for text in key:
                if text and self.matcher.match_any((text,)):
                    in_app = True
            if (path is None or path.__class__ is str) and (module is None or module.__class__ is str):
                remember(self._cache, key, in_app, self.cache_size)
        return in_app


@dataclass(frozen=True)
class ApplySettings:
    """Our environment/release/server_name win; ``logger`` fills in only when missing."""

    environment: Optional[str]
    release: Optional[str]
    server_name: Optional[str]
    logger: Optional[str]
    name: str = "settings"

    def __bool__(self) -> bool:
        """Whether there is anything to apply (else the stage leaves it out)."""
        return any(v is not None for v in (self.environment, self.release, self.server_name, self.logger))

    def __call__(self, event: Event) -> Optional[Event]:
        if self.environment is not None:
            event["environment"] = self.environment
        if self.release is not None:
            event["release"] = self.release
        if self.server_name is not None:
            event["server_name"] = self.server_name
        if self.logger is not None and not event.get("logger"):
            event["logger"] = self.logger
        return event
