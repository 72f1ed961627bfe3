"""Tolerant readers for Sentry event dicts.

Events reach us from user code and other integrations; any key may be missing or of the
wrong type. Every reader returns a safe default instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

Event = dict[str, Any]


def mapping(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    return {} if value is None else value if isinstance(value, Mapping) else {}


def text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


# These readers run on the app's thread for every error: plain dicts (what sentry-sdk
# builds) are recognised by type, and missing keys (None) by identity, before the slower
# Mapping ABC check. The filters read an event's exception values once and pass them on
# (``values``); without them each reader reads them itself.


def as_text(value: Any) -> Optional[str]:
    """``str(value)``, or None when there is none: a raising ``__str__``, an int past
    Python's digit limit, nesting past the recursion limit."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return None


def _values(container: Any) -> list[Mapping[str, Any]]:
    if type(container) is dict:
        values = container.get("values")
    elif container is None:
        return []
    else:
        values = container.get("values") if isinstance(container, (dict, Mapping)) else container
    if type(values) is list:
        for value in values:
            if type(value) is not dict:
                break
        else:
            return values.copy()  # all plain dicts: what sentry-sdk builds
    if not isinstance(values, list):
        return []
    return [v for v in values if type(v) is dict or isinstance(v, Mapping)]


def exceptions(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Exception values, oldest first, as sentry-sdk orders them (the raised one is last)."""
    container = event.get("exception")
    if type(container) is dict:  # _values' short cut, without calling it
        values = container.get("values")
        if type(values) is list:
            for value in values:
                if type(value) is not dict:
                    break
            else:
                return values.copy()
    return _values(container)


def frames(exception: Mapping[str, Any]) -> list[Any]:
    stacktrace = exception.get("stacktrace")
    if type(stacktrace) is dict or isinstance(stacktrace, Mapping):
        found = stacktrace.get("frames")
        if isinstance(found, list):
            return found
    return []


def all_frames(
    event: Mapping[str, Any], values: Optional[list[Mapping[str, Any]]] = None
) -> Iterator[dict[str, Any]]:
    """Every mutable frame of every exception and thread stacktrace."""
    holders = _values(event.get("exception")) if values is None else values
    if "threads" in event:
        holders = holders + _values(event.get("threads"))
    if len(holders) == 1:  # the common case, without a list of lists
        stacktrace = holders[0].get("stacktrace")
        found = stacktrace.get("frames") if type(stacktrace) is dict else None
        if type(found) is not list:
            found = frames(holders[0])
        for frame in found:
            if type(frame) is not dict:
                break
        else:
            return iter(found.copy())
    return iter([frame for holder in holders for frame in frames(holder) if isinstance(frame, dict)])


def messages(event: Mapping[str, Any]) -> list[str]:
    """The event's message texts: ``message`` and ``logentry.message``/``formatted``."""
    found: list[str] = []
    if "message" not in event and "logentry" not in event:
        return found  # an exception event, as sentry-sdk builds it
    for key in ("message", "logentry"):
        value = event.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for sub in ("formatted", "message"):
                item = value.get(sub)
                if isinstance(item, str) and item not in found:
                    found.append(item)
    return found


def error_texts(event: Mapping[str, Any], values: Optional[list[Mapping[str, Any]]] = None) -> list[str]:
    """What ``ignore_errors`` matches: ``"Type: value"``, ``value`` and the messages."""
    found = messages(event) if "message" in event or "logentry" in event else []
    for exc in exceptions(event) if values is None else values:
        etype, value = exc.get("type"), exc.get("value")
        if not isinstance(etype, str):
            etype = None
        if not isinstance(value, str):
            value = None
        if etype and value is not None:
            found.append(f"{etype}: {value}")
        elif etype:
            found.append(etype)
        if value:
            found.append(value)
    return found


def _is_pseudo_path(path: Optional[str]) -> bool:
    # sentry-sdk makes abs_path absolute, so "<string>" arrives as "/cwd/<string>".
    if not path or path[-1] != ">":  # the common case, without splitting the path
        return False
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.startswith("<") and name.endswith(">")


def raising_frame(
    event: Mapping[str, Any], values: Optional[list[Mapping[str, Any]]] = None
) -> Optional[Mapping[str, Any]]:
    """The last real frame of the last exception: where the error was raised."""
    if values is None:
        values = exceptions(event)
    if not values:
        return None
    stacktrace = values[-1].get("stacktrace")
    found = stacktrace.get("frames") if type(stacktrace) is dict else None
    for frame in reversed(found if type(found) is list else frames(values[-1])):
        if type(frame) is not dict and not isinstance(frame, Mapping):
            continue
        path = frame.get("abs_path")
        if not isinstance(path, str) or not path:
            path = text(frame.get("filename"))
        if path is None and not text(frame.get("module")):
            continue
        if path and path[-1] == ">" and _is_pseudo_path(path):
            continue
        return frame
    return None


def request_url(event: Mapping[str, Any]) -> Optional[str]:
    url = mapping(event.get("request")).get("url")
    return url if isinstance(url, str) and url else None


def event_urls(event: Mapping[str, Any], values: Optional[list[Mapping[str, Any]]] = None) -> list[str]:
    """What ``allow_urls``/``deny_urls`` match: request URL and the raising frame's paths."""
    return urls_of(url_parts(event, values))


UrlParts = tuple[Optional[str], Any, Any, Any]


def url_parts(event: Mapping[str, Any], values: Optional[list[Mapping[str, Any]]] = None) -> UrlParts:
    """What ``event_urls`` reads: the request URL (None without one) and the raising frame's
    ``abs_path``, ``filename`` and ``module`` as they are (None without a raising frame)."""
    url = request_url(event) if "request" in event else None
    if values is None:
        values = exceptions(event)
    if not values:
        return (url, None, None, None)
    # raising_frame's search, here without a call and reading each key once: every error's
    # deny_urls and allow_urls run it on the app's thread.
    last = values[-1]
    stacktrace = last.get("stacktrace")
    found = stacktrace.get("frames") if type(stacktrace) is dict else None
    for frame in reversed(found if type(found) is list else frames(last)):
        if type(frame) is not dict and not isinstance(frame, Mapping):
            continue
        abs_path, filename, module = frame.get("abs_path"), frame.get("filename"), frame.get("module")
        path = abs_path if isinstance(abs_path, str) and abs_path else text(filename)
        if path is None and not text(module):
            continue
        if path and path[-1] == ">" and _is_pseudo_path(path):
            continue
        return (url, abs_path, filename, module)
    return (url, None, None, None)


def urls_of(parts: UrlParts) -> list[str]:
    """``event_urls`` from what ``url_parts`` read: the URL, then each of the frame's texts
    that is one (a string, not empty, not a pseudo path like ``<string>``), once."""
    urls: list[str] = [parts[0]] if parts[0] else []
    for value in parts[1:]:
        if (
            isinstance(value, str)
            and value
            and (value[-1] != ">" or not _is_pseudo_path(value))
            and value not in urls
        ):
            urls.append(value)
    return urls


# What Sentry's event schema calls an error ("error": with an exception, "default": a message);
# sentry-sdk leaves ``type`` out of both. Everything else that reaches before_send is not an
# error: sentry-sdk 2.x and 3.0's pre-releases call it for cron check-ins ("check_in"; 3.0.0
# has before_send_check_in for those), 3.x for any event handed to capture_event (a
# "transaction" or "feedback" an integration or the app built).
ERROR_TYPES = ("error", "default")


def is_error_event(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is an error or message event: only those are ours to touch."""
    kind = event.get("type")
    return kind is None or (isinstance(kind, str) and kind in ERROR_TYPES)


def fresh(value: Any) -> Any:
    """A copy of the dicts and lists in ``value`` (one of our own forms: no cycle): each event
    gets its own, which the app's before_send may change."""
    if type(value) is dict:
        return {k: fresh(v) for k, v in value.items()}
    if type(value) is list:
        return [fresh(v) for v in value]
    return value
