"""The processors our before_send stage runs, in order, on the finished error event.

Each processor is a small callable ``(event) -> event | None``; ``None`` drops the event.
They are built once from the options, so the event path only runs compiled state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

from sentry_flags._patterns import Matcher
from sentry_flags._shape import Event, all_frames, error_texts, event_urls, text


class Processor(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, event: Event) -> Optional[Event]: ...


@dataclass(frozen=True)
class IgnoreErrors:
    """Drop errors whose type/value or message matches, as sentry-javascript does."""

    matcher: Matcher
    name: str = "ignore_errors"

    def __call__(self, event: Event) -> Optional[Event]:
        return None if self.matcher.search_any(error_texts(event)) else event


@dataclass(frozen=True)
class DenyUrls:
    matcher: Matcher
    name: str = "deny_urls"

    def __call__(self, event: Event) -> Optional[Event]:
        return None if self.matcher.search_any(event_urls(event)) else event


@dataclass(frozen=True)
class AllowUrls:
    """Keep only events from matching URLs; an event without any URL is kept."""

    matcher: Matcher
    name: str = "allow_urls"

    def __call__(self, event: Event) -> Optional[Event]:
        urls = event_urls(event)
        if not urls or self.matcher.search_any(urls):
            return event
        return None


INCLUDE_PATHS_CACHE_SIZE = 1024

_FrameKey = tuple[Optional[str], Optional[str]]


@dataclass(frozen=True)
class IncludePaths:
    """Mark frames from the app's own paths in-app, and every other frame not.

    The decision depends only on a frame's ``(abs_path, module)``, and an app raises from
    the same few hundred places over and over, so decisions are remembered in a dict of
    at most ``cache_size`` entries (the oldest is forgotten first).
    """

    matcher: Matcher
    name: str = "include_paths"
    cache_size: int = INCLUDE_PATHS_CACHE_SIZE
    _cache: dict[_FrameKey, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __call__(self, event: Event) -> Optional[Event]:
        cache = self._cache
        for frame in all_frames(event):
            key = (text(frame.get("abs_path")), text(frame.get("module")))
            in_app = cache.get(key)
            if in_app is None:
                in_app = self.matcher.search_any([v for v in key if v])
                self._remember(key, in_app)
            frame["in_app"] = in_app
        return event

    def _remember(self, key: _FrameKey, in_app: bool) -> None:
        cache = self._cache
        while len(cache) >= self.cache_size:
            try:
                del cache[next(iter(cache))]
            except (KeyError, StopIteration, RuntimeError):  # another thread evicted it first
                break
        cache[key] = in_app


@dataclass(frozen=True)
class ApplySettings:
    """Our environment/release/server_name win; ``logger`` fills in only when missing."""

    environment: Optional[str]
    release: Optional[str]
    server_name: Optional[str]
    logger: Optional[str]
    name: str = "settings"

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
