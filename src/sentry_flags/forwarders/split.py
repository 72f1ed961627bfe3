"""Split (Harness FME): each captured error as ``track`` events, one per identity mapping.

Split attributes an event to a feature flag's treatments through the key and traffic type
it was tracked on, so an error must be tracked on the same key the app passed to
``get_treatment``: ``identities`` says where in the Sentry event each traffic type's key
lives. Everything sent is built to pass Split's own input validation
(``splitio.client.input_validator``), so the SDK never logs an error and drops the event.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from numbers import Real
from types import MappingProxyType
from typing import Any, Optional

from sentry_flags._event import ErrorView
from sentry_flags._shape import as_text
from sentry_flags.forwarders._base import BackoffForwarder, VendorCall, require_method

__all__ = [
    "DEFAULT_EVENT_TYPE",
    "DEFAULT_IDENTITIES",
    "SplitForwarder",
    "culprit_event_type",
    "normalize_path",
]

logger = logging.getLogger("sentry_flags")

DEFAULT_EVENT_TYPE = "sentry_exception"
DEFAULT_IDENTITIES: Mapping[str, str] = MappingProxyType({"user": "user.id", "org": "user.orgId"})

# Split's limits, as splitio/client/input_validator.py enforces them.
EVENT_TYPE_RE = re.compile(r"[a-zA-Z0-9][-_.:a-zA-Z0-9]{0,79}")
MAX_EVENT_TYPE_LENGTH = 80
MAX_KEY_LENGTH = 250
MAX_INT_KEY_BITS = 1024  # over 300 digits: no int key past this fits MAX_KEY_LENGTH
_TOO_LONG_KEY = "0" * (MAX_KEY_LENGTH + 1)  # stands in for such an int: skipped as too long
MAX_PROPERTIES = 300
MAX_PROPERTIES_SIZE = 32768
BASE_EVENT_SIZE = 1024  # what the validator assumes for an event without properties

# The validator only asks for a non-blank str and lowercases it; Split's UI creates
# alphanumeric names. Stricter than the SDK so a typo fails at start-up, not per event.
TRAFFIC_TYPE_RE = re.compile(r"[a-z0-9][-_.a-z0-9]{0,79}")

# Roots ErrorView.lookup resolves; a path starting elsewhere can never find a value.
PATH_ROOTS = frozenset({
    "user", "tags", "contexts", "request", "event_id", "level", "environment", "release",
    "transaction", "culprit", "server_name", "logger",
})
# Roots that hold objects, with an example of a path to a value inside each.
OBJECT_ROOTS: Mapping[str, str] = MappingProxyType({
    "user": "user.id", "tags": "tags.tenant", "contexts": "contexts.launchdarklyContext.key",
    "request": "request.url",
})  # fmt: skip
# Prefixes of the paths Split's dashboard shows for Sentry webhook payloads, so users can
# paste their existing mappings.
PASTED_PREFIXES = ("data.error.", "data.event.", "data.", "error.", "event.")

MAX_TEXT = 256
MAX_LONG_TEXT = 1024  # exception value and message: what identifies the error
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 200  # Sentry's own limit for tag values
ELLIPSIS = "..."

HASH_LENGTH = 8
MIN_CULPRIT_ROOM = 1 + HASH_LENGTH + 8  # ":" + hash + a readable head

ASYNC_TIMEOUT = 2.0


class SplitForwarder(BackoffForwarder):
    """Sends ``split_client.track(key, traffic_type, event_type, value, properties)``.

    One event of type ``event_type`` per identity whose path has a value in the error, and
    with ``capture_culprit`` one more per identity whose type names the culprit
    (``sentry_exception:<culprit>``), so a Split metric can count one code location.
    ``split_client`` is ``factory.client()`` (or anything with the same ``track``); it is
    never destroyed here. For splitio's asyncio client pass the event loop it runs on as
    ``loop``. Skips are counted in ``stats.skipped``: ``no_identity:<traffic type>``,
    ``key_too_long:<traffic type>``, ``no_culprit``, ``backoff``, ``not_ready``,
    ``client_destroyed``, ``client_stopped`` (a forked child of a running factory),
    ``environment``.
    """

    vendor = "split"

    async_timeout = ASYNC_TIMEOUT

    def __init__(
        self,
        split_client: Any,
        *,
        identities: Mapping[str, str] = DEFAULT_IDENTITIES,
        environments: Optional[Iterable[str]] = frozenset({"production"}),
        capture_culprit: bool = True,
        event_type: str = DEFAULT_EVENT_TYPE,
        value: Optional[float] = None,
        include_tags: bool = True,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        require_method("split_client", split_client, "track", "a splitio client (factory.client())")
        self.is_async = inspect.iscoroutinefunction(split_client.track)
        if self.is_async and loop is None:
            raise TypeError(
                "split_client.track is a coroutine (splitio's asyncio client): pass loop=, "
                "the event loop that client runs on"
            )
        if loop is not None:
            if not self.is_async:
                raise TypeError("loop is only for splitio's asyncio client; split_client.track is not async")
            if not isinstance(loop, asyncio.AbstractEventLoop):
                raise TypeError(f"loop must be an asyncio event loop, got {type(loop).__name__}")
        for option, flag in (("capture_culprit", capture_culprit), ("include_tags", include_tags)):
            if not isinstance(flag, bool):
                raise TypeError(f"{option} must be a bool, got {flag!r}")
        self.event_type = _check_event_type(event_type, capture_culprit)
        self.identities = _check_identities(identities)
        self.value = _check_value(value)
        super().__init__(environments=environments)
        self.client = split_client
        self.loop = loop
        self.capture_culprit = capture_culprit
        self.include_tags = include_tags

    # -- Forwarder ------------------------------------------------------------------------

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        if self.paused(captured_at):
            self._counters.skip("backoff")
            return []
        # Asking is cheap; track is not: a destroyed client logs an error per call, and
        # one that is not ready logs a warning and costs milliseconds per call, queueing
        # events for a readiness that may never come.
        if getattr(self.client, "destroyed", False) is True:
            self._counters.skip("client_destroyed")
            return []
        if self._stopped_by_fork:
            self._counters.skip("client_stopped")
            return []
        if getattr(self.client, "ready", True) is False:
            self._counters.skip("not_ready")
            return []
        keys: list[tuple[str, str]] = []
        for traffic_type, path in self.identities:
            key = _key(view.lookup(path))
            if key is None:
                self._counters.skip(f"no_identity:{traffic_type}")
            elif len(key) > MAX_KEY_LENGTH:
                # Split refuses such keys in get_treatment too, so no treatment was ever
                # served to it: a hashed stand-in would be attributed to nobody.
                self._counters.skip(f"key_too_long:{traffic_type}")
            else:
                keys.append((traffic_type, key))
        if not keys:
            return []
        event_types = [self.event_type]
        if self.capture_culprit:
            if view.culprit:
                event_types.append(culprit_event_type(self.event_type, view.culprit))
            else:
                self._counters.skip("no_culprit")
        properties = error_properties(view, include_tags=self.include_tags)
        return [
            VendorCall(
                "track",
                {
                    "key": key,
                    "traffic_type": traffic_type,
                    "event_type": event_type,
                    "value": self.value,
                    "properties": dict(properties),
                },
            )
            for traffic_type, key in keys
            for event_type in event_types
        ]

    def send(self, call: VendorCall) -> bool:
        if self.paused(self._now):
            # An earlier call for this same error was refused: don't wait on Split again
            # (an asyncio client on a stuck loop costs async_timeout per call).
            return False
        try:
            accepted = self._track(call.kwargs)
        except BaseException:
            self.refused()
            raise
        # splitio returns False when it dropped the event (queue full, client destroyed);
        # a duck-typed client returning None is taken as accepted.
        if accepted is False:
            self.refused()
            return False
        self.accepted()
        return True

    def flush(self) -> None:
        """Ask splitio to post its queued events now; returns without waiting.

        splitio has no public flush short of ``factory.destroy()``, which we never call on
        the app's factory. Its events task does have one (the SDK calls it when its queue
        is full); reached through private attributes, so a missing one is a no-op.
        """
        task_flush = _events_flush(self.client)
        if task_flush is None:
            return
        if self.loop is not None:
            # The asyncio task's queue belongs to its loop's thread.
            if not self.loop.is_closed():
                self.loop.call_soon_threadsafe(task_flush)
            return
        task_flush()

    _stopped_by_fork = False

    def after_fork(self) -> None:
        """In a forked child: stop tracking if the factory's threads died with the fork.

        A factory that was running in the parent looks ready in the child, but its
        threads are gone: ``track`` would queue events nobody sends. splitio can only
        restart a factory built with ``preforkedInitialization`` (``factory.resume()``
        in the child), which is not running at fork time and is left alone here.
        """
        super().after_fork()
        self._stopped_by_fork = self.loop is None and _lost_its_threads(self.client)

    # -- internals ------------------------------------------------------------------------

    def _track(self, kwargs: Mapping[str, Any]) -> Any:
        if self.loop is None:
            return self.client.track(**kwargs)
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("cannot wait for the asyncio Split client on its own loop's thread")
        coro = self.client.track(**kwargs)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except BaseException:
            coro.close()  # never scheduled: no "coroutine was never awaited" warning
            raise
        try:
            return future.result(self.async_timeout)
        except BaseException:
            future.cancel()
            raise



# -- validation --------------------------------------------------------------------------


def _check_event_type(event_type: Any, capture_culprit: bool) -> str:
    if not isinstance(event_type, str):
        raise TypeError(f"event_type must be a str, got {type(event_type).__name__}")
    if not EVENT_TYPE_RE.fullmatch(event_type):
        raise ValueError(
            f"event_type {event_type!r} is not a valid Split event type: 1-80 characters, "
            "letters and digits, with '-', '_', '.' or ':' after the first"
        )
    if capture_culprit and len(event_type) > MAX_EVENT_TYPE_LENGTH - MIN_CULPRIT_ROOM:
        raise ValueError(
            f"event_type must be at most {MAX_EVENT_TYPE_LENGTH - MIN_CULPRIT_ROOM} characters "
            "with capture_culprit=True (the culprit is appended within Split's 80), "
            f"got {len(event_type)}"
        )
    return event_type


def _check_identities(identities: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(identities, Mapping):
        raise TypeError(
            "identities must be a mapping of Split traffic type -> path into the Sentry event, "
            f"e.g. {{'user': 'user.id'}}, got {type(identities).__name__}"
        )
    if not identities:
        raise ValueError(
            "identities must map at least one Split traffic type to a path, e.g. {'user': 'user.id'}"
        )
    found: dict[str, tuple[str, ...]] = {}
    for traffic_type, path in identities.items():
        if not isinstance(traffic_type, str) or not traffic_type.strip():
            raise TypeError(
                f"identities keys must be non-empty Split traffic type names, got {traffic_type!r}"
            )
        name = traffic_type.lower()  # splitio lowercases it too (with a warning per call)
        if not TRAFFIC_TYPE_RE.fullmatch(name):
            raise ValueError(
                f"identities: {traffic_type!r} is not a valid Split traffic type name: up to 80 "
                "letters and digits, with '-', '_' or '.' after the first"
            )
        if name in found:
            raise ValueError(f"identities: traffic type {name!r} is mapped twice")
        found[name] = normalize_path(path, f"identities[{traffic_type!r}]")
    return tuple(found.items())


def normalize_path(path: Any, option: str = "path") -> tuple[str, ...]:
    """``"user.id"`` (or Split's pasted ``"data.error.user.id"``) as ``("user", "id")``."""
    if not isinstance(path, str) or not path.strip():
        raise TypeError(f"{option} must be a non-empty dotted path like 'user.id', got {path!r}")
    text = path.strip()
    for prefix in PASTED_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    parts = tuple(text.split("."))
    if any(not part for part in parts):
        raise ValueError(f"{option}: {path!r} has an empty segment")
    if parts[0] not in PATH_ROOTS:
        raise ValueError(
            f"{option}: {path!r} must start with one of {', '.join(sorted(PATH_ROOTS))}"
        )
    if len(parts) == 1 and parts[0] in OBJECT_ROOTS:
        # These are objects, never a key: every error would be skipped as no_identity.
        raise ValueError(
            f"{option}: {path!r} names the whole {parts[0]} object, not a value in it "
            f"(e.g. {OBJECT_ROOTS[parts[0]]!r})"
        )
    return parts


def _check_value(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"value must be a number or None, got {type(value).__name__}")
    try:
        number = float(value)  # an int or Fraction past the float range overflows here
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"value must be a finite number, got {number!r}")
    return number


# -- building the events -----------------------------------------------------------------


def _key(found: Any) -> Optional[str]:
    # As splitio's validate_track_key: str or number, never bool, never blank.
    if isinstance(found, bool):
        return None
    if isinstance(found, int):
        # Past ~830 bits it is over 250 digits, which the length check refuses; str() of
        # the largest would even raise (Python's int digit limit).
        return str(found) if found.bit_length() <= MAX_INT_KEY_BITS else _TOO_LONG_KEY
    if isinstance(found, float) and math.isfinite(found):
        return str(found)
    if isinstance(found, str) and found.strip():
        return found
    return None


def culprit_event_type(prefix: str, culprit: str) -> str:
    """``<prefix>:<culprit>``, valid for Split and the same for the same culprit.

    The culprit is reduced to the characters Split allows; when that changed or shortened
    it, a hash of the original keeps two culprits that read alike apart.
    """
    room = MAX_EVENT_TYPE_LENGTH - len(prefix) - 1
    slug = _slug(culprit)
    if slug == culprit and len(slug) <= room:
        return f"{prefix}:{slug}"
    digest = hashlib.sha256(culprit.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    head = slug[: max(0, room - HASH_LENGTH - 1)].rstrip("-_.")
    return f"{prefix}:{head}-{digest}" if head else f"{prefix}:{digest}"


def _slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^A-Za-z0-9.-]+", "_", ascii_text).strip("-_.")


def truncate(value: Optional[str], limit: int) -> Optional[str]:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - len(ELLIPSIS)] + ELLIPSIS


def error_properties(view: ErrorView, *, include_tags: bool = True) -> dict[str, Any]:
    """The error as Split event properties, within Split's count and size limits.

    Sized as splitio's ``valid_properties`` counts: 1024 for the event, plus the length
    of every key and of every str value, at most 32768; numbers and bools count nothing.
    """
    core: dict[str, Any] = {
        "source": "sentry",
        "eventId": truncate(view.event_id or None, MAX_TEXT),
        "level": truncate(view.level, MAX_TEXT),
        "exceptionType": truncate(view.exception_type, MAX_TEXT),
        "exceptionValue": truncate(view.exception_value, MAX_LONG_TEXT),
        "culprit": truncate(view.culprit, MAX_TEXT),
        "transaction": truncate(view.transaction, MAX_TEXT),
        "release": truncate(view.release, MAX_TEXT),
        "environment": truncate(view.environment, MAX_TEXT),
        "timestamp": int(view.timestamp.timestamp() * 1000),
    }
    if view.exception_type is None and view.exception_value is None:
        # capture_message errors have no exception; their text is what identifies them.
        core["message"] = truncate(view.message, MAX_LONG_TEXT)
    properties = {k: v for k, v in core.items() if v is not None}
    size = BASE_EVENT_SIZE + sum(_size(k, v) for k, v in properties.items())
    if not include_tags:
        return properties
    for tag, raw in view.tags.items():
        if len(properties) >= MAX_PROPERTIES:
            break
        if len(tag) > MAX_TAG_KEY:
            continue
        name = f"tags.{tag}"
        value = _property_value(raw)
        cost = _size(name, value)
        if name in properties or size + cost > MAX_PROPERTIES_SIZE:
            continue  # a shorter tag further on may still fit
        properties[name] = value
        size += cost
    return properties


def _property_value(raw: Any) -> Any:
    # splitio keeps str, numbers and bools; NaN, infinities and ints past 64 bits would not
    # survive its JSON (or the service's), and any str() may raise.
    if raw is None or isinstance(raw, bool) or (isinstance(raw, int) and -(2**63) <= raw < 2**63):
        return raw
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else str(raw)
    if isinstance(raw, int) and raw.bit_length() > MAX_INT_KEY_BITS:
        return f"<int of {raw.bit_length()} bits>"
    text = as_text(raw)
    return truncate(text if text is not None else f"<{type(raw).__name__}>", MAX_TAG_VALUE)


def _size(key: str, value: Any) -> int:
    return len(key) + (len(value) if isinstance(value, str) else 0)


def _lost_its_threads(client: Any) -> bool:
    """In a forked child: True for an in-memory splitio factory that is not waiting for
    ``resume()``. None of its threads exist here (ready or still syncing at fork time), and
    splitio starts them again only for a ``preforkedInitialization`` factory."""
    factory: Any = getattr(client, "_factory", None)
    try:
        events_task = factory._sync_manager._synchronizer._split_tasks.events_task
    except AttributeError:
        return False  # redis, localhost or not splitio: nothing of ours to judge
    if events_task is None:
        return False
    waiting_fork = getattr(factory, "_waiting_fork", None)
    return not (callable(waiting_fork) and waiting_fork() is True)


def _events_flush(client: Any) -> Any:
    """splitio's events-task flush (``force_execution``), if this client has one."""
    if getattr(client, "destroyed", False) is True:
        return None
    try:
        task = client._factory._sync_manager._synchronizer._split_tasks.events_task
        found = task.flush
    except AttributeError:
        try:  # the same task, as the SDK wires it for a full queue
            found = client._recorder._event_sotrage._queue_full_hook
        except AttributeError:
            return None
    return found if callable(found) else None
