"""Our part of each Sentry event's path: a global event processor and the before_send stage.

The global event processor runs for every client's events but cannot tell which client
is capturing (a client's ``capture_event`` may run while another one is current), so it
only takes our per-scope values (the LD context slot, the flag log) out of the event and,
for errors, hands them to the stage through the hint. The stage is bound to one client
(see ``FlagsIntegration._bind``) and so knows that client's privacy rules:
filters -> launchdarklyContext and flags -> settings -> the user's before_send -> forward.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from sentry_flags._bounds import MAX_VALUE_BYTES, bound_context
from sentry_flags._context import (
    AMBIENT,
    CONTEXT_KEY,
    HINT_KEY,
    ContextSlot,
    any_client_redaction,
    capture_slot,
    redact,
)
from sentry_flags._filters import Processor
from sentry_flags._flags import FLAGS_KEY, SENTRY_FLAGS_KEY, FlagLog, flag_contexts
from sentry_flags._locals import PLAIN, local_repr
from sentry_flags._privacy import Privacy
from sentry_flags._shape import Event, fresh, is_error_event

if TYPE_CHECKING:
    from sentry_flags._integration import FlagsIntegration

logger = logging.getLogger("sentry_flags")

BeforeSend = Callable[[Event, dict[str, Any]], Optional[Event]]

SLOT_HINT = "sentry_flags_context_slot"
FLAGS_HINT = "sentry_flags_flag_log"

# Errors the vendor SDKs log become Sentry events through sentry-sdk's logging integration;
# forwarding those to the failing vendor would feed the failure back into itself. These are
# the exact names the SDKs log to (read in their source: launchdarkly-server-sdk 9.12-9.20
# and the launchdarkly-eventsource it uses, launchdarkly-openfeature-server,
# segment-analytics-python 2.x and analytics-python 1.4, openfeature-sdk), so that an app's
# own logger ("analytics.reports") is never taken for one.
VENDOR_LOGGERS = frozenset({
    "ldclient.util", "ldclient.flag",
    "launchdarkly-eventsource.null", "launchdarkly-eventsource-async.null",
    "launchdarkly-openfeature-server",
    "segment",
    "openfeature",
    "sentry_flags",
})  # fmt: skip
# splitio-client logs to each of its modules' own logger (getLogger(__name__)).
SPLIT_PACKAGE = "splitio"
# analytics-python 1.4 (its "analytics" and its copy of "segment.analytics") retries uploads
# with the backoff library, which logs to "backoff" on the Segment consumer's thread; an
# app's own backoff logs there on the app's threads.
BACKOFF_LOGGER = "backoff"
SEGMENT_CONSUMERS = frozenset({"analytics.consumer", "segment.analytics.consumer"})


def process_event(event: Event, hint: dict[str, Any]) -> Optional[Event]:
    """Global event processor: move our scope values from the event into the hint."""
    try:
        contexts = event.get("contexts")
        if not isinstance(contexts, dict):
            return event
        slot = contexts.get(CONTEXT_KEY)
        log = contexts.get(FLAGS_KEY)
        error = event.get("type") is None or is_error_event(event)  # an error has no type
        if isinstance(slot, ContextSlot):
            del contexts[CONTEXT_KEY]
            if error:
                hint[SLOT_HINT] = slot
        if isinstance(log, FlagLog):
            del contexts[FLAGS_KEY]
            if error:
                hint[FLAGS_HINT] = log
    except Exception:
        logger.debug("sentry-flags event processor failed; event unchanged", exc_info=True)
    return event


class Stage:
    """One client's before_send, composed around the user's own."""

    __slots__ = (
        "_last_context",
        "_last_flags",
        "integration",
        "options",
        "pipeline",
        "privacy",
        "user_before_send",
        "value_limit",
    )

    def __init__(
        self,
        integration: FlagsIntegration,
        user_before_send: Optional[BeforeSend],
        privacy: Privacy,
        pipeline: tuple[Processor, ...],
        value_limit: int = MAX_VALUE_BYTES,
    ) -> None:
        self.integration = integration
        self.user_before_send = user_before_send
        self.privacy = privacy
        self.pipeline = pipeline
        self.value_limit = value_limit  # of one value we attach: _bounds.value_limit
        self.options: dict[str, Any] = {}  # the client's, set by the bind (see attach)
        # The errors of one request or task (a retry loop, a batch job, a storm) share its
        # LD context and flag log: their redacted, bounded forms are made once, and copied
        # only for an app's before_send (see attach). Each is one tuple, replaced whole, so
        # threads see an old or a new one, never half. The context's is found by its slot
        # (when the slot holds a Context, not a provider) or by the Context and redaction.
        self._last_context: Optional[tuple[Any, Any, Any, dict[str, Any]]] = None
        self._last_flags: Optional[tuple[FlagLog, dict[str, Any], Optional[dict[str, Any]]]] = None

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled client (sentry-sdk pickles a Client as its options) is rebuilt through
        # _init_impl, which binds a new stage around the user's own before_send.
        return (_same, (self.user_before_send,))

    def __call__(self, event: Event, hint: dict[str, Any]) -> Optional[Event]:
        if event.get("type") is not None and not is_error_event(event):  # an error has no type
            # A check-in (sentry-sdk 2.x calls before_send for those too) or another non-error:
            # not filtered, changed, forwarded or counted; the app's before_send still sees it.
            user_before_send = self.user_before_send
            return event if user_before_send is None else user_before_send(event, hint)
        integration = self.integration
        for processor in self.pipeline:
            try:
                result = processor(event)
            except Exception:
                logger.debug("%s failed; event passed on unchanged", processor.name, exc_info=True)
                continue
            if result is None:
                if integration.debug:
                    why = dropped_by(processor, event)
                    logger.debug("event %s dropped by %s", event.get("event_id"), why)
                return None
            event = result
        try:
            self.attach(event, hint)
        except Exception:
            logger.debug("could not attach the flag contexts; event passed on without them", exc_info=True)
        if self.user_before_send is not None:
            # The user's own errors propagate to sentry-sdk, which handles them as it would
            # without us.
            user_result = self.user_before_send(event, hint)
            if user_result is None:
                return None
            event = user_result
        delivery = integration.delivery
        if delivery is not None:
            try:
                if event.get("logger") is not None and _from_vendor_sdk(event):
                    delivery.skip("vendor_sdk_log")
                else:
                    delivery.submit(event, self.privacy, hint.get(HINT_KEY))
            except Exception:
                logger.debug("could not queue event for forwarding", exc_info=True)
        return event

    def attach(self, event: Event, hint: dict[str, Any]) -> None:
        """launchdarklyContext (redacted, bounded) and the flag contexts, on an error event."""
        slot = hint.pop(SLOT_HINT, None)
        if AMBIENT:  # the Flask extension: the running request's context, unless the scope's wins
            slot = capture_slot(slot)
        log = hint.pop(FLAGS_HINT, None)
        if slot is None and log is None:
            return
        contexts = event.get("contexts")
        if not isinstance(contexts, dict):
            contexts = event["contexts"] = {}
        # Nothing after us changes an event but the app's own before_send (sentry-sdk has
        # serialized it already; the transport reads it, our forwarders get a copy): without
        # one, the events of a request share the forms made once, read-only. A before_send
        # the app put in front of ours after init may change them too: then each is copied.
        copy = self.user_before_send is not None or self.options.get("before_send") is not self
        if isinstance(slot, ContextSlot):
            # A context no evaluation saw belongs to no one client: every client's rules (the
            # same object until another client is hooked).
            redaction = slot.redaction or any_client_redaction(self.integration.redaction)
            last = self._last_context
            if last is not None and last[0] is slot and last[2] is redaction:
                context, bounded = last[1], last[3]  # the same slot holds the same Context
            else:
                context = slot.resolve()
                if context is not None:
                    if last is not None and last[1] is context and last[2] is redaction:
                        bounded = last[3]
                    else:
                        bounded = bound_context(
                            redact(context, redaction, pii=self.privacy.user_info), self.value_limit
                        )
                    self._last_context = (None if slot.lazy else slot, context, redaction, bounded)
            if context is not None:
                contexts[CONTEXT_KEY] = fresh(bounded) if copy else bounded
                hint[HINT_KEY] = context
                if self.integration.debug:
                    logger.debug("launchdarklyContext attached (kind %s)", context.kind)
        if isinstance(log, FlagLog):
            existing = contexts.get(SENTRY_FLAGS_KEY)
            last_flags = self._last_flags
            if existing is None and last_flags is not None and last_flags[0] is log:
                evaluations, flags = last_flags[1], last_flags[2]
            else:
                evaluations, flags = flag_contexts(log, existing, self.value_limit)
                if existing is None:
                    self._last_flags = (log, evaluations, flags)
            contexts[FLAGS_KEY] = fresh(evaluations) if copy else evaluations
            if flags is not None:
                contexts[SENTRY_FLAGS_KEY] = fresh(flags) if copy else flags


def dropped_by(processor: Processor, event: Event) -> str:
    """The option that dropped ``event``: asked again of a processor that applies several
    (``Filters.drop``); only in debug mode, so the event path does not keep it."""
    drop = getattr(processor, "drop", None)
    found = drop(event) if drop is not None else None
    return found if isinstance(found, str) else processor.name


def _same(value: Any) -> Any:
    return value


def _from_vendor_sdk(event: Event) -> bool:
    """Whether ``event`` is a record a vendor SDK logged (runs on the logging thread)."""
    name = event.get("logger")
    if not isinstance(name, str):
        return False
    if name in VENDOR_LOGGERS:
        return True
    if name.startswith(SPLIT_PACKAGE) and name.partition(".")[0] == SPLIT_PACKAGE:
        return name in sys.modules  # a splitio module's own logger
    if name == BACKOFF_LOGGER:
        return type(threading.current_thread()).__module__ in SEGMENT_CONSUMERS
    return False


class RedactingRepr:
    """sentry-sdk's ``custom_repr``: LaunchDarkly contexts among local variables, redacted.

    A Context's own repr is its full JSON, private attributes included, and sentry-sdk sends
    the repr of every local variable of the raising frames; so does the repr of anything that
    holds a Context. Each value is shown by ``_locals.local_repr``: redacted part by part, or
    screened by its repr text, failing closed. A local does not say which LD client
    evaluated it, so the private attributes of every client we hooked apply. Runs only while
    an error is captured; never raises (sentry-sdk would then send the plain repr).
    """

    __slots__ = ("integration", "previous", "privacy")

    def __init__(
        self, previous: Optional[Callable[[Any], Any]], integration: FlagsIntegration, privacy: Privacy
    ) -> None:
        self.previous = previous
        self.integration = integration
        self.privacy = privacy

    def __reduce__(self) -> tuple[Any, ...]:
        return (_same, (self.previous,))  # rebuilt by the next bind, as the stage is

    def __call__(self, value: Any) -> Any:
        if self.previous is None and type(value) in PLAIN:
            return None  # sentry-sdk's own repr, as local_repr would say: asked for every local
        try:
            return local_repr(value, self._show, self.previous)
        except Exception:
            logger.debug("could not screen a local variable; not shown", exc_info=True)
            return f"<{type(value).__name__}: not shown>"

    def _show(self, context: Any) -> dict[str, Any]:
        redaction = any_client_redaction(self.integration.redaction)
        return redact(context, redaction, pii=self.privacy.user_info)
