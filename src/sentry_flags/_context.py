"""The LaunchDarkly context of the current request/task, kept on Sentry's isolation scope.

sentry-sdk forks the isolation scope per request (Django/Flask/ASGI) and per thread, and
copies its ``contexts`` on fork, so storing the context there gives per-request isolation
for free. The value stored is a `ContextSlot`: a ``dict`` subclass, so that if our
event processor never runs sentry-sdk serializes it as ``{}`` and never the raw Context.

Some units of work are found rather than stored: an `AmbientSource` (the Flask extension's)
knows the request running on the capturing thread and gives its context when an error is
captured, so that requests without errors store nothing. What was stored on the scope during
that unit of work wins over it; what was stored outside it (inherited by the request's
isolation scope from the thread or process that started it) does not (`capture_slot`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

import sentry_sdk

from sentry_flags._fork import ForkSafeLock
from sentry_flags._ldclient import UNREADABLE, client_config
from sentry_flags._sentry import isolation_contexts, scope_contexts

if TYPE_CHECKING:
    from ldclient import Context

logger = logging.getLogger("sentry_flags")

CONTEXT_KEY = "launchdarklyContext"
"""The Sentry custom context the LaunchDarkly context is attached under."""
HINT_KEY = "sentry_flags_ld_context"

# LaunchDarkly's built-in user attributes that carry personal data: redacted too when the
# app does not allow PII, because sentry-sdk's scrubber never looks inside ``contexts``.
PII_ATTRIBUTES = frozenset({"email", "ip", "name", "firstName", "lastName", "avatar"})

AttrRef = tuple[str, ...]
ContextProvider = Callable[[], Optional["Context"]]


def parse_ref(ref: str) -> Optional[AttrRef]:
    """An LD attribute reference: ``name`` (literal) or ``/a/b`` with ``~1``=/ and ``~0``=~."""
    if not isinstance(ref, str) or not ref:
        return None
    if not ref.startswith("/"):
        return (ref,)
    parts = ref[1:].split("/")
    if any(not p for p in parts):
        return None
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in parts)


def ref_text(path: AttrRef) -> str:
    if len(path) == 1 and not path[0].startswith("/"):
        return path[0]
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)


@dataclass(frozen=True)
class Redaction:
    """Private-attribute settings of the LD client whose evaluation saw the context."""

    all_private: bool = False
    refs: tuple[AttrRef, ...] = ()

    @classmethod
    def from_refs(cls, all_private: bool, refs: Iterable[str]) -> Redaction:
        parsed = tuple(p for p in (parse_ref(r) for r in refs) if p is not None)
        return cls(bool(all_private), parsed)

    @classmethod
    def from_client(cls, ld_client: Any) -> Redaction:
        """Read ``private_attributes``/``all_attributes_private`` from an LDClient's config.

        A client whose config cannot be read (see ``_ldclient``) gets every attribute
        redacted: its private attributes must never leave the process.
        """
        config = client_config(ld_client)
        if config is UNREADABLE:
            return ALL_PRIVATE
        if config is None:
            return cls()
        try:
            return cls.from_refs(
                bool(getattr(config, "all_attributes_private", False)),
                list(getattr(config, "private_attributes", ()) or ()),
            )
        except Exception:  # a foreign config must never break capture
            logger.debug("could not read LaunchDarkly private attributes", exc_info=True)
            return cls()


NO_REDACTION = Redaction()
ALL_PRIVATE = Redaction(all_private=True)

# The redaction of every LaunchDarkly client we hook, while it lives: a context that no
# evaluation saw (set by hand, by the framework glue, OpenFeature or Celery), and a context
# among a frame's local variables, do not say which client they belong to, so all of them
# apply.
_client_redactions: weakref.WeakKeyDictionary[Any, Redaction] = weakref.WeakKeyDictionary()
_client_redactions_lock = ForkSafeLock()
# Bumped by each client remembered. any_client_redaction's answers for one generation are
# kept, so that the same Redaction object comes back for the same base: the stage's
# per-context cache compares redactions by identity. A client that dies leaves its
# attributes private until the next bump: the safe side.
_generation = 0
_combined: tuple[int, dict[int, tuple[Redaction, Redaction]]] = (0, {})
MAX_COMBINED = 64  # bases remembered per generation (one per FlagsIntegration in practice)


def remember_client_redaction(client: Any, redaction: Redaction) -> None:
    global _generation
    with _client_redactions_lock:
        _client_redactions[client] = redaction
        _generation += 1


def any_client_redaction(redaction: Redaction) -> Redaction:
    """``redaction`` plus that of every live LaunchDarkly client we hooked: the same object
    for the same ``redaction`` until another client is hooked."""
    global _combined
    generation, known = _combined
    if generation == _generation:
        found = known.get(id(redaction))
        if found is not None and found[0] is redaction:
            return found[1]
    with _client_redactions_lock:
        generation = _generation
        others = list(_client_redactions.values())
    if others:
        every = (redaction, *others)
        refs = tuple(dict.fromkeys(ref for r in every for ref in r.refs))
        combined = Redaction(any(r.all_private for r in every), refs)
        if combined == redaction:
            combined = redaction
    else:
        combined = redaction
    held, known = _combined
    # A fresh dict per generation, replaced whole: readers see an old or a new one.
    kept = dict(known) if held == generation and len(known) < MAX_COMBINED else {}
    kept[id(redaction)] = (redaction, combined)
    _combined = (generation, kept)
    return combined


def redact(context: Context, redaction: Redaction, *, pii: bool) -> dict[str, Any]:
    """LaunchDarkly's event form of ``context`` with private attributes removed.

    Like LD's own analytics events: ``kind``/``key``/``anonymous`` always stay, redacted
    attribute references are listed under ``_meta.redactedAttributes``.
    """
    if context.multiple:
        out: dict[str, Any] = {"kind": "multi"}
        for i in range(context.individual_context_count):
            single = context.get_individual_context(i)
            if single is not None:
                out[single.kind] = _redact_single(single, redaction, pii, with_kind=False)
        return out
    return _redact_single(context, redaction, pii, with_kind=True)


def _redact_single(context: Context, redaction: Redaction, pii: bool, *, with_kind: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"key": context.key}
    if with_kind:
        out["kind"] = context.kind
    if context.anonymous:
        out["anonymous"] = True
    refs = redaction.refs + tuple(
        p for p in (parse_ref(r) for r in context.private_attributes) if p is not None
    )
    redacted: list[str] = []
    names = ([] if context.name is None else ["name"]) + list(context.custom_attributes)
    for attr in names:
        if redaction.all_private or (attr,) in refs or (not pii and attr in PII_ATTRIBUTES):
            redacted.append(ref_text((attr,)))
            continue
        out[attr] = _redact_value((attr,), context.get(attr), refs, redacted)
    if redacted:
        out["_meta"] = {"redactedAttributes": redacted}
    return out


def _redact_value(path: AttrRef, value: Any, refs: tuple[AttrRef, ...], redacted: list[str]) -> Any:
    if not isinstance(value, Mapping) or not any(len(r) > len(path) and r[: len(path)] == path for r in refs):
        return value
    kept: dict[str, Any] = {}
    for key, item in value.items():
        child = (*path, str(key))
        if child in refs:
            redacted.append(ref_text(child))
        else:
            kept[key] = _redact_value(child, item, refs, redacted)
    return kept


def private_as_redacted(context: Context, redacted: Optional[Mapping[str, Any]]) -> Context:
    """``context`` with every attribute ``redacted`` (a ``launchdarklyContext``) left out marked private.

    What goes to LaunchDarkly then loses what the Sentry event lost: the app's PII choice,
    the private attributes of the client whose evaluation saw the context (not only those of
    the client that sends it), and any attribute the app's before_send dropped or changed
    (or a size limit cut). Without ``redacted`` (the app's before_send removed it) nothing
    is known to have been sent, so every attribute is marked private (LaunchDarkly still
    gets kind and key). Never raises.
    """
    try:
        if not context.multiple:
            return _mark_private(context, _redacted_refs(context, redacted))
        parts = [context.get_individual_context(i) for i in range(context.individual_context_count)]
        singles = [p for p in parts if p is not None]
        marked = [
            _mark_private(p, _redacted_refs(p, None if redacted is None else redacted.get(p.kind, {})))
            for p in singles
        ]
        if all(m is p for m, p in zip(marked, singles)):
            return context
        return type(context).create_multi(*marked)
    except Exception:  # a foreign Context must never break forwarding
        logger.debug("could not mark redacted LaunchDarkly attributes private", exc_info=True)
        return context


def _redacted_refs(single: Context, part: Any) -> list[str]:
    present = ([] if single.name is None else ["name"]) + list(single.custom_attributes)
    if part is None or not isinstance(part, Mapping):
        # The app's before_send removed or replaced it: nothing is known to have been kept.
        return [ref_text((a,)) for a in present]
    meta = part.get("_meta")
    listed = meta.get("redactedAttributes") if isinstance(meta, Mapping) else None
    refs = [r for r in listed if isinstance(r, str) and r] if isinstance(listed, list) else []
    # What the event lost beyond our redaction (the app's before_send dropped or scrubbed it,
    # a size limit cut it): the whole attribute, unless the event has it as we attached it.
    ours = tuple(p for p in (parse_ref(r) for r in refs) if p is not None)
    for attr in present:
        ref = ref_text((attr,))
        if ref in refs:
            continue
        attached = _redact_value((attr,), single.get(attr), ours, [])
        if attr not in part or part[attr] != attached:
            refs.append(ref)
    return refs


def _mark_private(single: Context, refs: list[str]) -> Context:
    already = set(single.private_attributes)
    missing = [r for r in refs if r not in already]
    if not missing:
        return single
    return type(single).builder_from_context(single).private(*missing).build()


class ContextSlot(dict[str, Any]):
    """Holds a Context (or a lazy provider of one) on the scope, with its redaction."""

    __slots__ = ("_owner", "_source", "redaction")

    def __init__(self, source: Union[Context, ContextProvider], redaction: Optional[Redaction]) -> None:
        super().__init__()
        self._source = source
        self.redaction = redaction
        # The ambient unit of work (a Flask request) it was stored in, weakly: the Stage's
        # cache may keep a slot until the next error, and must not keep a request with it.
        self._owner = _owner_ref() if AMBIENT else None

    def holds(self, source: Any, redaction: Optional[Redaction]) -> bool:
        # reusable(), inlined: this runs on every LaunchDarkly evaluation.
        return (
            self._source is source
            and self.redaction is redaction
            and (not AMBIENT or _same_owner(self._owner, _ambient_owner()))
        )

    def reusable(self) -> bool:
        """Whether an evaluation running now may keep this slot rather than store a new one.

        Only in the ambient unit of work it was stored in, or outside any if it was stored
        outside any: a slot of another unit (one that shared this scope, without per-request
        isolation scopes) or stored outside the running one loses to the unit's own context
        when an error is captured, and the evaluation's context must win over that. One
        truth test when no ambient source exists.
        """
        return not AMBIENT or _same_owner(self._owner, _ambient_owner())

    def owned_by(self, owner: Any) -> bool:
        """Whether this slot was stored while ``owner`` (an ambient unit of work) ran."""
        return owner is not None and _same_owner(self._owner, owner)

    @property
    def lazy(self) -> bool:
        """Whether the context comes from a provider, called again for each error."""
        return callable(self._source)

    def resolve(self) -> Optional[Context]:
        source = self._source
        try:
            context = source() if callable(source) else source
        except Exception:  # the app's provider; its failure must not touch the event
            logger.debug("the LaunchDarkly context provider failed", exc_info=True)
            return None
        if context is None:
            return None
        if not getattr(context, "valid", False):
            logger.debug("ignoring invalid LaunchDarkly context: %s", getattr(context, "error", None))
            return None
        return context

    def __deepcopy__(self, memo: dict[int, Any]) -> ContextSlot:
        return self  # immutable once stored; the Context inside is immutable too

    def __copy__(self) -> ContextSlot:
        return self


class AmbientSource(Protocol):
    """Where a unit of work keeps its LaunchDarkly context without storing it on the scope.

    Asked on the capturing thread, while an error is captured (and by
    `get_launchdarkly_context`). Its methods must be cheap, do no I/O and never block; an
    exception is logged at debug and the scope's context is used.
    """

    def owner(self) -> Any:
        """The unit of work running on this thread (a Flask request), or None.

        It must be weakly referenceable, and the same object for the whole unit of work,
        wherever it runs: a Flask request is, in every copy of its request context.
        """

    def slot(self, owner: Any) -> Optional[ContextSlot]:
        """A slot with ``owner``'s context (a provider, called per error), or None."""


# Appended to once per kind of source and never shrunk, so readers need no lock; empty in a
# process without one, which is all the event path then pays: one truth test.
AMBIENT: list[AmbientSource] = []
_ambient_lock = ForkSafeLock()


def add_ambient_source(source: AmbientSource) -> None:
    """Make ``source`` known, once; idempotent."""
    with _ambient_lock:
        if all(known is not source for known in AMBIENT):
            AMBIENT.append(source)


def _ambient_owner() -> Any:
    """The ambient unit of work running on this thread; None also when a source fails."""
    try:
        for source in AMBIENT:
            owner = source.owner()
            if owner is not None:
                return owner
    except Exception:  # runs in the flag hooks: never into the app's evaluation
        logger.debug("could not tell which request is running", exc_info=True)
    return None


class TaskRun:
    """The owner of a Celery task's restored context: every unit of work, while the task runs.

    Ended when the task ends, from then on it owns none: a thread the task started keeps a
    copy of the task's scope, and a request it serves later is not the task's.
    """

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = True


# A slot's ``_owner``: None (stored outside any unit of work), a weak reference to the unit,
# the id of a unit that cannot be referred to weakly, or a task's run.
OwnerRef = Union[None, "weakref.ref[Any]", int, TaskRun]


def _owner_ref() -> OwnerRef:
    owner = _ambient_owner()
    if owner is None:
        return None
    try:
        return weakref.ref(owner)
    except TypeError:
        # A source whose units cannot be referred to weakly (AmbientSource.owner says they
        # must): its id, which keeps nothing alive, so that what the unit stored is still its
        # own (rather than counting as stored outside it, and losing to its own context).
        # Once that unit is gone, another given the same id would take the slot for its own
        # too: only where both share this isolation scope (no per-request scopes).
        logger.debug("cannot refer weakly to %s", type(owner).__name__)
        return id(owner)


def _same_owner(ref: OwnerRef, owner: Any) -> bool:
    """Whether ``ref`` (a slot's ``_owner``) stands for ``owner`` (None: no unit of work).

    A unit that is gone stands for none: it cannot run again.
    """
    if ref is None:
        return owner is None
    if isinstance(ref, TaskRun):
        return owner is None or ref.running
    if isinstance(ref, int):
        return owner is not None and id(owner) == ref
    return ref() is owner


def capture_slot(slot: Optional[ContextSlot]) -> Optional[ContextSlot]:
    """The slot of an error captured now, given ``slot``, the scope's (or None).

    The scope's when it was stored in the ambient unit of work running now (an evaluation,
    `set_launchdarkly_context`), or when none runs or its source has no context for it;
    otherwise the unit's own: a slot the unit's isolation scope inherited from the thread
    or process that started it (a flag evaluated at start-up) says nothing of the request.
    Never raises: a failing source leaves the scope's slot.
    """
    try:
        for source in AMBIENT:
            owner = source.owner()
            if owner is None:
                continue
            if isinstance(slot, ContextSlot) and slot.owned_by(owner):
                return slot
            found = source.slot(owner)
            if found is not None:
                return found
    except Exception:
        logger.debug("could not find the LaunchDarkly context of the running request", exc_info=True)
    return slot


def current_slot() -> Optional[ContextSlot]:
    """The slot an error captured now would carry (see `capture_slot`). May raise."""
    found: Optional[ContextSlot] = None
    # sentry-sdk has no public getter for a scope's contexts; the current scope wins,
    # as it does when scopes are merged into an event.
    for scope in (sentry_sdk.get_current_scope(), sentry_sdk.get_isolation_scope()):
        slot = scope_contexts(scope).get(CONTEXT_KEY)
        if isinstance(slot, ContextSlot):
            found = slot
            break
    return capture_slot(found) if AMBIENT else found


def _no_context() -> None:
    return None


def set_launchdarkly_context(context: Union[Context, ContextProvider, None]) -> None:
    """Make ``context`` the LaunchDarkly context of the current request or task.

    Pass a zero-argument callable to defer building the context until an error is
    captured. ``None`` clears it: errors captured next carry no context, not even the one
    the Flask extension finds for the running request. Never raises. Its private
    attributes are those of the context itself (``Context.builder(...).private(...)``) and
    those of every LaunchDarkly client sentry-flags hooked
    (``FlagsIntegration(launchdarkly_client=...)``, ``SentryFlagsPlugin``): no evaluation
    says which client it belongs to.
    """
    try:
        # None is stored as a slot with no context, not as no slot: the Flask extension's
        # context of the running request applies only where the scope has none of its own.
        isolation_contexts()[CONTEXT_KEY] = ContextSlot(_no_context if context is None else context, None)
    except Exception:
        logger.debug("could not store the LaunchDarkly context", exc_info=True)


def set_task_context(context: Optional[Context]) -> Optional[TaskRun]:
    """`set_launchdarkly_context`, for the context a Celery task was sent with (``None``:
    none), restored before the task runs: it is the task's own in every unit of work the
    task runs, so a Flask request context the task pushes keeps it rather than getting the
    extension's (a context stored after the push still wins). The Celery glue takes it off
    the scope and ends the returned run when the task ends. Never raises (None instead).
    """
    try:
        slot = ContextSlot(_no_context if context is None else context, None)
        run = slot._owner = TaskRun()
        isolation_contexts()[CONTEXT_KEY] = slot
        return run
    except Exception:
        logger.debug("could not store the LaunchDarkly context of a task", exc_info=True)
        return None


def get_launchdarkly_context() -> Optional[Context]:
    """The LaunchDarkly context known for the current request or task, if any.

    What an error captured now would carry: inside a Flask request of an app with
    ``FlagsExtension``, the request's own unless the request stored another.
    """
    try:
        slot = current_slot()
        if slot is not None:
            return slot.resolve()
    except Exception:
        logger.debug("could not read the LaunchDarkly context", exc_info=True)
    return None
