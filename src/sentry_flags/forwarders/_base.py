"""What every forwarder shares: environment filter, counters, rate limit, the vendor call.

A forwarder knows its vendor and nothing else. It runs on the delivery worker thread,
never on the app's, and must never raise: the base's ``_prepare`` and ``_deliver`` count and
log what goes wrong. What a forwarder author implements and calls is public (`Forwarder`);
what the delivery worker calls is private.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from sentry_flags._event import ErrorView
from sentry_flags._private import PrivateName, step_aside

if TYPE_CHECKING:
    from sentry_flags._delivery import Tally

logger = logging.getLogger("sentry_flags")


@dataclass(frozen=True)
class Stats:
    """A snapshot of a forwarder's counters: `Forwarder.stats`.

    Counted per error: every error that reached the forwarder (``errors``) has exactly one
    outcome, so ``forwarded + failed + rate_limited + dropped + skipped_total == errors``
    (errors still queued have none yet; after a flush none is queued). ``calls`` counts the
    vendor SDK calls, which differ from errors where one error makes several calls (Split:
    one per identity, and culprit events). An error is forwarded when at least one of its
    calls was accepted.

    Attributes:
        errors: Errors that reached the forwarder.
        forwarded: Errors the vendor SDK accepted.
        failed: Errors the vendor SDK refused or raised for, every call of them.
        rate_limited: Errors over ``max_forwarded_per_second``, or the forwarder's own bound.
        dropped: Errors dropped because the delivery queue was full.
        skipped: Errors not sent, by reason (``environment``, ``no_user_id``,
            ``no_context``, ``backoff``, ...).
        calls: Vendor SDK calls: ``forwarded`` and ``failed`` ones, and calls left out of an
            error that was still forwarded, by reason (``no_identity:org``).
        stepped_aside: How often a feature stepped aside because a private name of the
            vendor SDK is missing in the installed release, by that name (e.g.
            ``"SplitClient._factory..."``); each is also logged once.
    """

    errors: int = 0
    forwarded: int = 0
    failed: int = 0
    rate_limited: int = 0
    dropped: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    calls: Mapping[str, int] = field(default_factory=dict)
    stepped_aside: Mapping[str, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        """Errors skipped, for every reason together."""
        return sum(self.skipped.values())

    @property
    def accounted(self) -> int:
        """Errors with an outcome: equals ``errors``."""
        return self.forwarded + self.failed + self.rate_limited + self.dropped + self.skipped_total


OUTCOMES = ("forwarded", "failed", "rate_limited", "dropped")


class Counters:
    """Thread-safe counters behind `Stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._calls: Counter[str] = Counter()
        self._stepped: Counter[str] = Counter()
        # The tallies of the deliveries this forwarder belongs to; a delivery's is folded
        # into the counts when the delivery is gone, so the list holds live ones only.
        self._tallies: list[Tally] = []
        # Tallies of deliveries gone, to fold in under the lock. Their finalizer runs inside
        # a garbage collection, on whatever thread it interrupts, possibly one holding
        # _lock (a plain Lock): it appends here and takes no lock.
        self._retired: list[Tally] = []

    def share(self, tally: Tally, owner: object) -> None:
        """Count ``tally``'s errors as this forwarder's outcomes, for as long as ``owner``
        (the delivery keeping it) lives, and for good after."""
        with self._lock:
            self._fold_retired()
            if any(t is tally for t in self._tallies):
                return
            self._tallies.append(tally)
        weakref.finalize(owner, self._retired.append, tally)

    def _fold_retired(self) -> None:
        # Under _lock. list.pop and list.append are atomic: a finalizer may append meanwhile.
        retired = self._retired
        while retired:
            tally = retired.pop()
            for i, found in enumerate(self._tallies):
                if found is tally:
                    del self._tallies[i]
                    self._counts["errors"] += tally.dropped + tally.rate_limited
                    self._counts["dropped"] += tally.dropped
                    self._counts["rate_limited"] += tally.rate_limited
                    break

    def after_fork(self) -> None:
        # The lock may have been held by the parent's worker at fork time. The counts start
        # over: a child's stats describe the child, so summing workers counts nothing twice.
        # The parent's deliveries that were gone stay out of the child's counts.
        self._lock = threading.Lock()
        retired, self._retired = self._retired, []
        self._tallies = [t for t in self._tallies if not any(t is r for r in retired)]
        self._counts = Counter()
        self._skipped = Counter()
        self._calls = Counter()
        self._stepped = Counter()

    def outcome(self, name: str, n: int = 1) -> None:
        """``n`` errors reached the forwarder and ended as ``name`` (one of OUTCOMES)."""
        with self._lock:
            self._counts["errors"] += n
            self._counts[name] += n

    def skip(self, reason: str, n: int = 1) -> None:
        """``n`` errors reached the forwarder and were not forwarded, for ``reason``."""
        with self._lock:
            self._counts["errors"] += n
            self._skipped[reason] += n

    def reclassify(self, was: str, now: str) -> None:
        """One error counted ``was`` (and its one call) turned out ``now``: a call handed to
        an event loop that failed there, after the error was counted."""
        with self._lock:
            self._counts[was] -= 1
            self._counts[now] += 1
            self._calls[was] -= 1
            self._calls[now] += 1

    def call(self, name: str) -> None:
        with self._lock:
            self._calls[name] += 1

    def step_aside(self, path: str) -> None:
        with self._lock:
            self._stepped[path] += 1

    def snapshot(self) -> Stats:
        with self._lock:
            self._fold_retired()
            c = self._counts
            errors, dropped, rate_limited = c["errors"], c["dropped"], c["rate_limited"]
            for tally in self._tallies:
                shared = (tally.dropped, tally.rate_limited)  # read once: the same in each sum
                errors += shared[0] + shared[1]
                dropped += shared[0]
                rate_limited += shared[1]
            return Stats(
                errors=errors,
                forwarded=c["forwarded"],
                failed=c["failed"],
                rate_limited=rate_limited,
                dropped=dropped,
                skipped=dict(self._skipped),
                calls=dict(self._calls),
                stepped_aside=dict(self._stepped),
            )


class Skipped(list[Any]):
    """What `Forwarder.calls` returns for an error it does not forward: no calls,
    and why (a skip reason, or ``rate_limited``)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


RATE_LIMITED = "rate_limited"


def parse_environments(value: Any) -> Optional[frozenset[str]]:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(
            "environments must be None or a set of Sentry environment names (str), "
            f"got {type(value).__name__}"
        )
    names = list(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"environments must contain non-empty str names, got {name!r}")
    if not names:
        raise ValueError("environments must not be empty: pass None to forward every environment")
    return frozenset(names)


def require_method(option: str, client: Any, method: str, expected: str) -> None:
    if client is None or not callable(getattr(client, method, None)):
        # The type only: what is passed here by mistake is often the vendor's SDK or write
        # key, and this message ends up in the app's start-up logs.
        got = "None" if client is None else f"a {type(client).__name__}"
        raise TypeError(f"{option} must be {expected} with a {method}() method, got {got}")


@dataclass(frozen=True)
class VendorCall:
    """One vendor SDK call, as data: what `Forwarder.send` will pass to the client.

    `Forwarder.calls` returns these; `sentry_flags.testing.capture_forwarded` records them
    instead of sending.

    Attributes:
        method: The vendor client's method, e.g. ``"track"``.
        kwargs: Its keyword arguments.
    """

    method: str
    kwargs: Mapping[str, Any]


class Forwarder(ABC):
    """The base of every forwarder, the vendors' and yours.

    Subclasses set `vendor` and implement `calls` (pure: the vendor calls one error becomes,
    or `skip` with the reason it becomes none) and `send` (the SDK call itself). Keeping
    them apart is what lets `sentry_flags.testing.capture_forwarded` record exactly what
    would be sent. Both run on the delivery thread, never on the app's; the base applies
    ``environments``, gives every error exactly one outcome in `stats`, and never lets an
    exception out. A guide with an example: docs/forwarders.md, "Writing your own forwarder".

    Args:
        environments: The Sentry environments to forward (a set of names). Default `None`:
            every environment; errors from others are counted as ``skipped["environment"]``.

    Raises:
        TypeError: ``environments`` is not a collection of non-empty names.
        ValueError: ``environments`` is empty (pass `None` to forward every environment).
    """

    vendor: ClassVar[str]
    """The vendor's name in `ForwardedCall.vendor` and the logs, e.g. ``"split"``."""
    display_name: ClassVar[str] = ""
    """How the vendor is named in warnings (default: `vendor`)."""
    expected_skips: ClassVar[frozenset[str]] = frozenset({"environment", "vendor_sdk_log"})
    """Skips that are the forwarder working as designed (the app chose the environments; an
    error Sentry's vendor integration would not forward either): no warning for these."""

    def __init__(self, *, environments: Optional[Iterable[str]] = None) -> None:
        self.environments = parse_environments(environments)
        self._counters = Counters()

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters: every error this forwarder saw, and its outcome."""
        return self._counters.snapshot()

    @property
    def name(self) -> str:
        """How warnings name the vendor: `display_name`, else `vendor`."""
        return self.display_name or self.vendor

    def _prepare(self, view: ErrorView, captured_at: float) -> Optional[list[VendorCall]]:
        """The calls to make for ``view``, or None when its outcome is already counted.

        The delivery worker prepares a batch of errors, then delivers each forwarder's calls
        back to back: a vendor SDK thread woken by the first call then finds the others
        queued too, instead of waking (and taking the GIL from the app) once per error.
        """
        counters = self._counters
        if self.environments is not None and view.environment not in self.environments:
            counters.skip("environment")
            return None
        try:
            calls = self.calls(view, captured_at)
        except Exception as exc:
            self._fail("could not build the call", exc)
            return None
        if isinstance(calls, Skipped):
            if calls.reason == RATE_LIMITED:
                counters.outcome(RATE_LIMITED)
            else:
                counters.skip(calls.reason)
            return None
        if not calls:  # a subclass that returned [] without saying why
            counters.skip("no_calls")
            return None
        return calls

    def _deliver(self, view: ErrorView, calls: list[VendorCall], captured_at: float) -> None:
        """Make ``calls`` (what ``_prepare`` returned) and count the error's outcome."""
        counters = self._counters
        accepted = False
        for call in calls:
            try:
                sent = self.send(call)
            except Exception as exc:
                counters.call("failed")
                logger.debug("%s forwarder: call failed (%s)", self.vendor, type(exc).__name__, exc_info=True)
                continue
            counters.call("forwarded" if sent else "failed")
            accepted = accepted or sent
        if accepted:
            counters.outcome("forwarded")
            logger.debug("event %s forwarded to %s", view.event_id, self.vendor)
        else:
            counters.outcome("failed")
            logger.debug("%s did not take event %s", self.vendor, view.event_id)

    def _fail(self, what: str, exc: BaseException) -> None:
        self._counters.outcome("failed")
        logger.debug("%s forwarder: %s (%s)", self.vendor, what, type(exc).__name__, exc_info=True)

    @staticmethod
    def skip(reason: str) -> list[VendorCall]:
        """What `calls` returns to skip the error: ``return self.skip("no_user_id")``.

        An empty list that carries ``reason``: the error is counted in
        ``stats.skipped[reason]``."""
        return Skipped(reason)

    @staticmethod
    def rate_limit() -> list[VendorCall]:
        """What `calls` returns for an error over the forwarder's own rate bound (counted
        as ``rate_limited``)."""
        return Skipped(RATE_LIMITED)

    def skip_call(self, reason: str) -> None:
        """Count one vendor call `calls` leaves out of an error it still forwards."""
        self._counters.call(reason)

    def _step_aside(self, name: PrivateName, exc: Optional[BaseException] = None) -> None:
        """The vendor SDK lacks the private name ``name``: count it in `stats` and
        process-wide (one warning per name); the feature that needed it does without."""
        self._counters.step_aside(name.path)
        step_aside(name, exc)

    @abstractmethod
    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        """The vendor calls for ``view``, or ``self.skip(reason)``."""

    @abstractmethod
    def send(self, call: VendorCall) -> bool:
        """Make ``call`` through the vendor SDK; False when the SDK refused it."""

    def flush(self) -> None:
        """Ask the vendor client to send what it queued. May block; delivery bounds it."""

    def after_fork(self) -> None:
        """Called in a forked child before it forwards anything."""
        self._counters.after_fork()

    def _count_outcome(self, name: str, n: int = 1) -> None:
        """Errors delivery gave an outcome before the forwarder saw them (queue full,
        rate limit)."""
        self._counters.outcome(name, n)

    def _count_skipped(self, reason: str, n: int = 1) -> None:
        """Count ``n`` errors skipped for ``reason`` before the forwarder saw them."""
        self._counters.skip(reason, n)

    def _share_tally(self, tally: Tally, owner: object) -> None:
        """Count a delivery's refused errors (``tally``, kept by ``owner``) as this
        forwarder's: the delivery counts each once, not once per forwarder."""
        self._counters.share(tally, owner)


class BackoffForwarder(Forwarder):
    """A forwarder that pauses its vendor calls after a refusal, doubling while it lasts.

    A vendor that refuses (queue full, endpoint gone) costs the app a warning or a forced
    flush per call; pausing keeps that to one per pause. Timed by the errors' capture
    time, not the wall clock, so it is deterministic.
    """

    backoff_initial = 1.0
    backoff_max = 60.0

    def __init__(self, *, environments: Optional[Iterable[str]] = None) -> None:
        super().__init__(environments=environments)
        self._delay: Optional[float] = None  # None: the next pause is backoff_initial
        self._resume_at = -math.inf
        self._now = -math.inf  # captured_at of the error being handled

    def _deliver(self, view: ErrorView, calls: list[VendorCall], captured_at: float) -> None:
        if self._paused(captured_at):
            # A call of an error prepared in the same batch was refused meanwhile.
            self._counters.skip("backoff")
            return
        # send() needs the capture time to start a pause; deliver runs on one thread.
        self._now = captured_at
        super()._deliver(view, calls, captured_at)

    def _paused(self, captured_at: float) -> bool:
        return captured_at < self._resume_at

    def _accepted(self) -> None:
        self._delay = None
        self._resume_at = -math.inf

    def _refused(self) -> None:
        now = self._now
        if now < self._resume_at:
            return  # another call for the same error; the pause already started
        delay = self.backoff_initial if self._delay is None else self._delay
        self._resume_at = now + delay
        self._delay = min(delay * 2, self.backoff_max)
        logger.debug("%s refused an event; pausing its calls for %.0fs", self.vendor, delay)


def now() -> float:
    return time.monotonic()
