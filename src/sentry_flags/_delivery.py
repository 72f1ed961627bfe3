"""The only place that runs vendor calls: a bounded queue served by one worker thread.

Waking another thread per event is what costs (see docs/benchmarks.md), so ``submit`` only
appends to a deque; the worker wakes on a short timer, or early when a batch is waiting.
A second after its last event it stops waking on the timer and sleeps until the next one
(which wakes it, then a batch gathers): a process that has stopped failing pays no
wake-ups, each of which would take the GIL from the app's threads, and a storm pays no
more than one a round.
A full queue drops and counts; nothing here blocks the caller or grows without bound.
Errors over ``max_per_second`` (a token bucket checked before the queue) are counted and
not queued, so an error storm costs the app a bounded amount of forwarding work; and the
worker drains in short slices so an app thread waiting for the GIL is not kept waiting.
See docs/benchmarks.md for the measurements behind these numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from sentry_flags._event import ErrorView
from sentry_flags._fork import run_after_fork
from sentry_flags._losses import LossReport
from sentry_flags._privacy import Privacy
from sentry_flags._rate import RateBound

if TYPE_CHECKING:
    from sentry_flags.forwarders._base import Forwarder, VendorCall

logger = logging.getLogger("sentry_flags")

DEFAULT_QUEUE_SIZE = 1000
# An ordinary spike (a bad variation failing every request of a busy process) is counted in
# full; a real storm is cut. Bursts of max(rate, _rate.MIN_BURST). See docs/benchmarks.md.
DEFAULT_MAX_PER_SECOND = 200.0
WAKE_INTERVAL = 0.1
WAKE_BATCH = 64
# Seconds without an event before the worker stops waking on its timer. Going idle after every
# drain would cost a storm a second wake-up a round (the event that ends the sleep).
IDLE_AFTER = 1.0
# An idle worker still looks at its loss counters this often: errors can be counted as not
# forwarded on the app's thread without queuing anything that would wake it.
IDLE_CHECK = 60.0
# The worker holds the GIL for at most SLICE seconds of draining, then sleeps PAUSE seconds
# (unless a flush is waiting). An app thread that gave up the GIL for I/O (sentry-sdk reads
# source files while building each event) gets it back at once instead of after Python's
# 5 ms switch interval. Caps the worker near SLICE / (SLICE + PAUSE) of one core (11%):
# measured in a storm at 200 forwarded a second, a longer pause cost the app thread less
# (fewer hand-offs of the GIL, and of the vendor threads each slice wakes) than 2 ms did,
# while keeping well ahead of the bound (docs/benchmarks.md, "The storm at 200/s").
SLICE = 0.0005
PAUSE = 0.004

_Item = tuple[dict[str, Any], Privacy, Any, float]


class Tally:
    """Errors a delivery refused before any forwarder saw them (queue full, over the rate),
    counted once on the app's thread for all of its forwarders; each forwarder's ``stats``
    adds them in (``Forwarder._share_tally``). Written under the delivery's lock."""

    __slots__ = ("dropped", "rate_limited")

    def __init__(self) -> None:
        self.dropped = 0
        self.rate_limited = 0


class Delivery:
    """Hands captured events to the forwarders off the caller's thread."""

    def __init__(
        self,
        forwarders: Sequence[Forwarder],
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        interval: float = WAKE_INTERVAL,
        max_per_second: Optional[float] = None,
    ) -> None:
        self.forwarders = tuple(forwarders)
        self.queue_size = queue_size
        self.interval = interval
        self.max_per_second = max_per_second
        self._bucket = None if max_per_second is None else RateBound(max_per_second)
        self._slice_end = 0.0
        self.tally = Tally()
        for forwarder in self.forwarders:
            forwarder._share_tally(self.tally, self)
        self._reset()
        run_after_fork(self)

    def _after_fork(self) -> None:
        # In a forked child (see _fork.py): the parent's worker thread does not exist
        # here, its locks may be held forever, and its queued events are the parent's to
        # send. The forwarders get to mend their vendor clients (forwarder.after_fork).
        self._reset()
        for forwarder in self.forwarders:
            try:
                forwarder.after_fork()
            except Exception:
                logger.debug("%s after_fork failed", forwarder.vendor, exc_info=True)

    def _reset(self) -> None:
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._busy = False
        self._sleeping = False  # the worker waits for a first event (submit must wake it)
        self._last_event = 0.0  # monotonic time the worker last found events queued
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._vendor_flush: Optional[threading.Event] = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._flushes_waiting = 0  # while one waits, the worker drains without pauses
        # A forked child starts counting afresh, as its forwarders' counters do (the
        # forwarders keep counting this tally).
        self.tally.dropped = 0
        self.tally.rate_limited = 0
        self.losses = LossReport(self.forwarders, self.max_per_second)

    def submit(self, event: dict[str, Any], privacy: Privacy, ld_context: Any) -> None:
        """Queue one event for every forwarder. O(1), never blocks, never raises."""
        queue = self._queue
        # The length check is unlocked on purpose: concurrent callers may overshoot the
        # bound by at most one item each. Every error still gets exactly one outcome.
        if len(queue) >= self.queue_size:
            self._count("dropped")
            return
        now = time.monotonic()
        bucket = self._bucket
        if bucket is not None and not bucket.take(now):
            self._count("rate_limited")
            return
        queue.append((event, privacy, ld_context, now))
        if self._thread is None:
            self._start()
        elif self._sleeping or len(queue) == WAKE_BATCH:
            self._wake.set()

    @property
    def dropped(self) -> int:
        """Errors refused because the queue was full."""
        return self.tally.dropped

    @property
    def rate_limited(self) -> int:
        """Errors refused over ``max_per_second``."""
        return self.tally.rate_limited

    def _count(self, outcome: str) -> None:
        # On the app's thread, for errors that never reach the queue: in a storm, most of
        # them. Counted once, exactly under any number of threads, in the tally every
        # forwarder's stats add in.
        tally = self.tally
        with self._count_lock:
            if outcome == "dropped":
                tally.dropped += 1
            else:
                tally.rate_limited += 1

    def skip(self, reason: str) -> None:
        """Count an event every forwarder skips before it is queued."""
        for forwarder in self.forwarders:
            forwarder._count_skipped(reason)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(self._stop,), name="sentry-flags-delivery", daemon=True
            )
            thread.start()
            self._thread = thread

    def _try_start(self) -> bool:
        try:
            self._start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            logger.debug("sentry-flags could not start its worker", exc_info=True)
            return False
        return True

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._wait_for_work(stop)
                self._drain()
                self._serve_flush()
                self.losses.check(time.monotonic())
            except Exception:  # the worker must outlive any bug, ours or a forwarder's
                logger.debug("sentry-flags delivery error", exc_info=True)
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
                stop.wait(self.interval)  # a bug that repeats must not spin
        # Stopped by close(): what was queued after its flush (another thread's error, while
        # this worker was busy) gets its outcome now, not whenever the next submit comes.
        try:
            self._drain()
        except Exception:
            logger.debug("sentry-flags delivery error", exc_info=True)

    def _wait_for_work(self, stop: threading.Event) -> None:
        request = self._vendor_flush
        idle = time.monotonic() - self._last_event >= IDLE_AFTER
        if idle and not self._queue and (request is None or request.is_set()):
            self._sleep_until_work()
        if not stop.is_set() and not self._flushes_waiting:
            self._wake.wait(self.interval)  # let a batch gather
        self._wake.clear()

    def _sleep_until_work(self) -> None:
        # _sleeping is set before the queue is looked at again, so an event appended in
        # between is either seen here or wakes the wait (submit reads _sleeping after its
        # append).
        self._sleeping = True
        try:
            if not self._queue:
                due = self.losses.next_due()
                left = IDLE_CHECK if due is None else due - time.monotonic()
                self._wake.wait(min(IDLE_CHECK, max(0.0, left)))
        finally:
            self._sleeping = False
        self._wake.clear()

    def _drain(self) -> None:
        queue = self._queue
        if not queue:
            return
        self._last_event = time.monotonic()
        with self._idle:
            self._busy = True  # until the last popped event is handled: flush() waits for it
        self._slice_end = time.monotonic() + SLICE
        # Two passes: every queued error's view and calls, then each forwarder's calls back to
        # back, so each vendor SDK thread wakes once per drain, not once per error.
        batches: list[list[tuple[ErrorView, list[VendorCall], float]]] = [[] for _ in self.forwarders]
        while queue:
            self._yield_if_due()
            try:
                event, privacy, ld_context, captured_at = queue.popleft()
            except IndexError:
                break
            try:
                view = ErrorView.build(event, privacy, ld_context)
            except Exception:
                logger.debug("could not read a captured event; not forwarded", exc_info=True)
                for forwarder in self.forwarders:
                    forwarder._count_outcome("failed")
                continue
            for forwarder, batch in zip(self.forwarders, batches):
                try:
                    calls = forwarder._prepare(view, captured_at)
                except Exception:  # a subclass that overrode prepare() and raised
                    logger.debug("%s forwarder raised", forwarder.vendor, exc_info=True)
                    forwarder._count_outcome("failed")
                    continue
                if calls is not None:
                    batch.append((view, calls, captured_at))
        for forwarder, batch in zip(self.forwarders, batches):
            for view, calls, captured_at in batch:
                self._yield_if_due()
                try:
                    forwarder._deliver(view, calls, captured_at)
                except Exception:  # a subclass that overrode deliver() and raised
                    logger.debug("%s forwarder raised", forwarder.vendor, exc_info=True)
                    forwarder._count_outcome("failed")
        with self._idle:
            self._busy = False
            self._idle.notify_all()

    def _yield_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._slice_end:
            if not self._flushes_waiting:
                self._pause()
            self._slice_end = time.monotonic() + SLICE

    def _pause(self) -> None:
        # A sleep releases the GIL and leaves this thread unrunnable for a while, so an app
        # thread waiting for the GIL takes it now. (time.sleep(0) would not do: the worker
        # would take the GIL back before the woken app thread runs.)
        time.sleep(PAUSE)

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued and flush the vendor clients, within ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._count_lock:
            self._flushes_waiting += 1
        try:
            if self._thread is None and self._queue and not self._try_start():
                return False
            self._wake.set()
            with self._idle:
                while self._queue or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        logger.debug("sentry-flags flush timed out with %d queued", len(self._queue))
                        return False
                    self._wake.set()
                    self._idle.wait(min(left, 0.05))
            return self._flush_vendors(deadline - time.monotonic())
        finally:
            with self._count_lock:
                self._flushes_waiting -= 1

    def close(self, timeout: float) -> None:
        """Deliver what is queued, then stop the worker; a later submit starts a new one."""
        self.flush(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            self._wake.set()
            thread.join(max(0.0, timeout))

    def _flush_vendors(self, timeout: float) -> bool:
        # Vendor flushes can block for many seconds on a dead endpoint (Segment's did for
        # over 20 s), so the worker runs them and we stop waiting at our own deadline.
        # The worker already exists at interpreter exit, when Python 3.12+ refuses to
        # start new threads; a flush asked for while one is running joins that one.
        if not self.forwarders or timeout <= 0:
            return not self.forwarders
        with self._lock:
            request = self._vendor_flush
            if request is None or request.is_set():
                request = self._vendor_flush = threading.Event()
        if self._thread is None and not self._try_start():
            return False
        self._wake.set()
        if not request.wait(timeout):
            logger.debug("vendor flush did not finish in %.1fs", timeout)
            return False
        return True

    def _serve_flush(self) -> None:
        request = self._vendor_flush
        if request is None or request.is_set():
            return
        for forwarder in self.forwarders:
            try:
                forwarder.flush()
            except Exception:
                logger.debug("%s flush failed", forwarder.vendor, exc_info=True)
        request.set()
