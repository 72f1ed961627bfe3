"""A stand-in for Sentry's envelope endpoint, and a parser for what arrives there.

Point sentry-sdk at it with ``sentry_sdk.init(dsn=receiver.dsn, ...)``: the events your code
captures arrive in `SentryReceiver.events` instead of at sentry.io.

With ``sentry-relay`` installed (Sentry's own event normalizer, as its ingestion runs it),
every event the receiver accepts is also normalized, and what Relay reports in the
event's ``_meta`` (invalid data it removed, values it trimmed) is kept: a test can then
check what Sentry would keep, not only what was sent.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from sentry_flags.testing.receivers._base import (
    DEFAULT_TIMEOUT,
    LOOPBACK,
    BaseReceiver,
    RecordedRequest,
    Response,
    parse_json,
    wait_for,
)

__all__ = [
    "OUR_CONTEXTS",
    "Envelope",
    "EnvelopeItem",
    "IngestProblem",
    "SentryReceiver",
    "changed_paths",
    "parse_envelope",
]

# The contexts sentry-flags writes on an error event.
OUR_CONTEXTS = ("launchdarklyContext", "flags", "flagEvaluations")
# How far (units in the last place) Relay's JSON parser may read a float off: not a change.
FLOAT_UNITS = 8


@dataclass(frozen=True)
class EnvelopeItem:
    """One item of an envelope.

    Attributes:
        headers: The item header (``type``, ``length``...).
        payload: The payload bytes.
    """

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> Optional[str]:
        """The item type: ``event``, ``transaction``, ``session``, ``check_in``..."""
        return self.headers.get("type")

    @property
    def json(self) -> Any:
        """The payload decoded as JSON, or `None` when it is not JSON."""
        return parse_json(self.payload)


@dataclass(frozen=True)
class Envelope:
    """A Sentry envelope: its header (``event_id``, ``dsn``, ``sent_at``...) and its items.

    Attributes:
        headers: The envelope header.
        items: The items, in order.
    """

    headers: dict[str, Any]
    items: list[EnvelopeItem]


def parse_envelope(data: bytes) -> Envelope:
    """Parse a Sentry envelope: header line, then (item header line, payload)*.

    A payload is ``length`` bytes when the item header says so, otherwise it
    runs to the next newline.

    Raises:
        ValueError: A header line is not JSON.
    """
    header_line, _, rest = data.partition(b"\n")
    headers = json.loads(header_line) if header_line.strip() else {}
    items = []
    pos = 0
    while pos < len(rest):
        end = rest.find(b"\n", pos)
        line = rest[pos:] if end == -1 else rest[pos:end]
        pos = len(rest) if end == -1 else end + 1
        if not line.strip():
            continue
        item_headers = json.loads(line)
        length = item_headers.get("length")
        if length is not None:
            payload = rest[pos : pos + length]
            pos += length
            if rest[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = rest.find(b"\n", pos)
            payload = rest[pos:] if end == -1 else rest[pos:end]
            pos = len(rest) if end == -1 else end + 1
        items.append(EnvelopeItem(item_headers, payload))
    return Envelope(headers, items)


@dataclass(frozen=True)
class IngestProblem:
    """One place in an accepted event where Sentry's normalizer changed what was sent.

    `SentryReceiver.ingest_problems` lists them; ``str()`` gives a line for a test failure.

    Attributes:
        event_id: The event's id.
        path: Where in the event: ``("contexts", "flags", "values", "1", "flag")``; empty
            when the normalizer refused the event whole.
        errors: Relay's errors there (``"invalid_data: expected a string"``); the value is
            then gone, and ``original`` holds it.
        remarks: Relay's own changes there (``"!limit"``: trimmed).
        original: The value before Relay removed it, when it says.
        original_length: The length before a trim, when it says.
    """

    event_id: Optional[str]
    path: tuple[str, ...]
    errors: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()
    original: Any = None
    original_length: Optional[int] = None

    @property
    def where(self) -> str:
        """``path`` joined with dots: ``contexts.flags.values.1.flag``."""
        return ".".join(self.path)

    def __str__(self) -> str:
        said = [*self.errors, *(f"remark {r}" for r in self.remarks)]
        if self.original_length is not None:
            said.append(f"was {self.original_length} long")
        return f"event {self.event_id}: {self.where}: {'; '.join(said) or 'changed'}"


def meta_problems(event_id: Optional[str], meta: Any, path: tuple[str, ...] = ()) -> list[IngestProblem]:
    """Every entry of a normalized event's ``_meta`` tree, as problems."""
    if not isinstance(meta, Mapping):
        return []
    found: list[IngestProblem] = []
    for key, value in meta.items():
        if key != "":
            found.extend(meta_problems(event_id, value, (*path, str(key))))
            continue
        if not isinstance(value, Mapping):
            continue
        errors = tuple(_error_text(e) for e in value.get("err") or ())
        remarks = tuple(str(r[0]) if isinstance(r, list) and r else str(r) for r in value.get("rem") or ())
        length = value.get("len") if isinstance(value.get("len"), int) else None
        if errors or remarks or length is not None:
            found.append(IngestProblem(event_id, path, errors, remarks, value.get("val"), length))
    return found


def changed_paths(sent: Any, kept: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Where ``kept`` (what the normalizer made of a value) differs from ``sent``: a key or
    item gone or added, a value changed. Relay's JSON parser reads some floats a few units
    off in their last place (seen: 2; allowed: 8): not a change."""
    if isinstance(sent, float) and isinstance(kept, (int, float)) and not isinstance(kept, bool):
        return [] if sent == kept or abs(sent - kept) <= FLOAT_UNITS * math.ulp(sent) else [path]
    if isinstance(sent, Mapping) and isinstance(kept, Mapping):
        found: list[tuple[str, ...]] = []
        for key in {*sent, *kept}:
            if key not in sent or key not in kept:
                found.append((*path, str(key)))
            else:
                found.extend(changed_paths(sent[key], kept[key], (*path, str(key))))
        return sorted(found)
    if isinstance(sent, list) and isinstance(kept, list):
        found = []
        for i, (before, after) in enumerate(zip(sent, kept)):
            found.extend(changed_paths(before, after, (*path, str(i))))
        found += [(*path, str(i)) for i in range(min(len(sent), len(kept)), max(len(sent), len(kept)))]
        return found
    if type(sent) is not type(kept) and not (
        isinstance(sent, int)
        and isinstance(kept, int)
        and not isinstance(sent, bool)
        and not isinstance(kept, bool)
    ):
        return [path]
    return [] if sent == kept else [path]


def _silent_changes(
    event_id: Optional[str], sent: Any, normalized: Any, reported: list[IngestProblem]
) -> list[IngestProblem]:
    """What the normalizer changed under ``OUR_CONTEXTS`` without saying so in ``_meta``
    (Relay deletes what is past its budget or depth silently, or makes it a JSON string)."""
    sent_contexts = sent.get("contexts") if isinstance(sent, Mapping) else None
    kept_contexts = normalized.get("contexts") if isinstance(normalized, Mapping) else None
    if not isinstance(sent_contexts, Mapping):
        return []
    kept_contexts = kept_contexts if isinstance(kept_contexts, Mapping) else {}
    covered = [p.path for p in reported]
    found: list[IngestProblem] = []
    for name in OUR_CONTEXTS:
        if name not in sent_contexts:
            continue
        expected = sent_contexts[name]
        if isinstance(expected, Mapping):
            kind = expected.get("type")
            if not (isinstance(kind, str) and kind):
                expected = {**expected, "type": name}  # Relay names a context by its key
        for path in changed_paths(expected, kept_contexts.get(name), ("contexts", name)):
            if any(path[: len(c)] == c or c[: len(path)] == path for c in covered):
                continue  # Relay said so in _meta
            found.append(IngestProblem(event_id, path, remarks=("changed without a mark",)))
    return found


def _error_text(error: Any) -> str:
    if isinstance(error, list) and error:
        kind = str(error[0])
        details = error[1] if len(error) > 1 and isinstance(error[1], Mapping) else {}
        reason = details.get("reason")
        return f"{kind}: {reason}" if reason else kind
    return str(error)


def _store_normalizer(project_id: str) -> Any:
    """Relay's StoreNormalizer as Sentry's ingestion configures it (trimming on); None when
    sentry-relay is not installed."""
    try:
        processing = importlib.import_module("sentry_relay.processing")
    except ImportError:
        return None
    return processing.StoreNormalizer(
        project_id=int(project_id) if project_id.isdigit() else 1, enable_trimming=True
    )


class SentryReceiver(BaseReceiver):
    """Sentry's envelope endpoint, ``POST /api/<project>/envelope/``, as Sentry and Relay accept it.

    Listens on 127.0.0.1 from construction until `stop` (or the end of a ``with`` block).
    Give sentry-sdk its `dsn`, and what sentry-sdk sends arrives here:

        with SentryReceiver() as sentry:
            sentry_sdk.init(dsn=sentry.dsn, integrations=[FlagsIntegration()])
            sentry_sdk.capture_exception(RuntimeError("card declined"))
            [event] = sentry.wait_for_events(1)
            assert event["exception"]["values"][0]["value"] == "card declined"

    Args:
        project_id: The project id in the DSN and the endpoint path. Default ``"1"``.
        public_key: The DSN's public key. Default ``"public"``.
        normalize: Keyword only. Run every accepted event through Sentry's own normalizer
            (``sentry-relay``) and keep what it reports (`ingest_problems`). Default `None`:
            when sentry-relay is installed; `True` requires it, `False` never.
        strict: Keyword only. Leaving the ``with`` block without an exception fails
            (`AssertionError`) when Relay reported an error under `OUR_CONTEXTS` of any
            accepted event (see `assert_ingestible`). Default `False`.
        errors_only: Keyword only. With ``strict``, fail only on Relay's errors (data Sentry
            would drop as invalid). Default `True`; `False` also fails when Relay trimmed
            or changed anything under `OUR_CONTEXTS` (what sentry-flags' own tests use).

    Raises:
        ImportError: ``normalize=True`` without sentry-relay installed.
    """

    ENVELOPE_PATH = re.compile(r"^/api/(?P<project>[^/]+)/envelope/$")

    def __init__(
        self,
        project_id: str = "1",
        public_key: str = "public",
        *,
        normalize: Optional[bool] = None,
        strict: bool = False,
        errors_only: bool = True,
    ) -> None:
        self.project_id = project_id
        self.public_key = public_key
        self.strict = strict
        self.errors_only = errors_only
        self._normalizer = None if normalize is False else _store_normalizer(project_id)
        if normalize is True and self._normalizer is None:
            raise ImportError("SentryReceiver(normalize=True) needs sentry-relay: pip install sentry-relay")
        self._normalize_lock = threading.Lock()
        self._normalized: list[dict[str, Any]] = []
        self._problems: list[IngestProblem] = []
        super().__init__()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self.strict and exc_info[0] is None:
            self.assert_ingestible(errors_only=self.errors_only)

    @property
    def dsn(self) -> str:
        """The DSN that sends here: ``http://<public_key>@127.0.0.1:<port>/<project_id>``."""
        return f"http://{self.public_key}@{LOOPBACK}:{self.port}/{self.project_id}"

    @property
    def normalizing(self) -> bool:
        """Whether accepted events go through Sentry's normalizer."""
        return self._normalizer is not None

    def respond(self, request: RecordedRequest) -> Response:
        """Accept envelopes with 200 ``{"id": <event id>}``; 400 for one that does not parse."""
        if request.method != "POST" or not self.ENVELOPE_PATH.match(request.path):
            return Response(404, {"detail": "not found"})
        try:
            envelope = parse_envelope(request.body)
        except ValueError:
            return Response(400, {"detail": "invalid envelope"})
        for item in envelope.items:
            if item.type == "event":
                self._normalize(item.json)
        return Response(200, {"id": envelope.headers.get("event_id")})

    def _normalize(self, event: Any) -> None:
        normalizer = self._normalizer
        if normalizer is None or not isinstance(event, dict):
            return
        event_id = event.get("event_id")
        with self._normalize_lock:
            try:
                normalized = normalizer.normalize_event(event)
            except Exception as exc:  # the normalizer refused the event outright
                self._problems.append(IngestProblem(event_id, (), (f"normalizer raised {exc!r}",)))
                return
            self._normalized.append(normalized)
            reported = meta_problems(event_id, normalized.get("_meta"))
            self._problems.extend(reported)
            self._problems.extend(_silent_changes(event_id, event, normalized, reported))

    def clear(self) -> None:
        """Forget every request, and what the normalizer made of them."""
        super().clear()
        with self._normalize_lock:
            self._normalized.clear()
            self._problems.clear()

    @property
    def normalized_events(self) -> list[dict[str, Any]]:
        """What Sentry's normalizer made of each accepted event, in arrival order (empty when
        not `normalizing`)."""
        with self._normalize_lock:
            return list(self._normalized)

    def ingest_problems(
        self, contexts: Optional[Iterable[str]] = OUR_CONTEXTS, *, errors_only: bool = False
    ) -> list[IngestProblem]:
        """What the normalizer reported under the event ``contexts`` named (every context
        sentry-flags writes, by default); ``None`` for anywhere in the events, including
        events it refused whole (``path`` empty: an invalid ``transaction``, say).
        ``errors_only``: leave out what it only trimmed or changed (no ``errors``)."""
        with self._normalize_lock:
            problems = [p for p in self._problems if p.errors or not errors_only]
        if contexts is None:
            return problems
        wanted = {(name,) for name in contexts}
        return [p for p in problems if p.path[:1] == ("contexts",) and p.path[1:2] in wanted]

    def assert_ingestible(
        self, contexts: Optional[Iterable[str]] = OUR_CONTEXTS, *, errors_only: bool = True
    ) -> None:
        """Raise AssertionError listing `ingest_problems` under ``contexts``, if any:
        by default the errors (data Sentry would drop as invalid); with ``errors_only=False``
        also what it would trim or change."""
        problems = self.ingest_problems(contexts, errors_only=errors_only)
        if problems:
            listed = "\n".join(f"  {p}" for p in problems)
            raise AssertionError(f"Sentry's normalizer (sentry-relay) reports:\n{listed}")

    @property
    def envelopes(self) -> list[Envelope]:
        """Every envelope delivered, parsed, in arrival order."""
        return [parse_envelope(r.body) for r in self.delivered("/api/", "POST")]

    def items(self, item_type: Optional[str] = None) -> list[EnvelopeItem]:
        """Every item of every envelope delivered; only those of ``item_type`` when given."""
        return [
            item
            for envelope in self.envelopes
            for item in envelope.items
            if item_type is None or item.type == item_type
        ]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every error and message event delivered (item type ``event``), decoded, in order."""
        return [item.json for item in self.items("event")]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        """Every transaction delivered, decoded, in order."""
        return [item.json for item in self.items("transaction")]

    def wait_for_events(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events arrived; return every one so far.

        sentry-sdk sends from a background thread, so read `events` through this (or after
        ``sentry_sdk.flush()``).

        Args:
            count: How many to wait for. Default ``1``.
            timeout: Seconds to wait. Default `DEFAULT_TIMEOUT` (5).

        Returns:
            Every event so far (at least ``count``), decoded.

        Raises:
            AssertionError: Fewer arrived within ``timeout``.
        """
        return wait_for(
            lambda: (events := self.events) and len(events) >= count and events,
            timeout=timeout,
            message=f"{count} Sentry event(s)",
        )
