"""Delivery: the bounded queue and the one worker thread that runs every forwarder."""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time
from typing import Any

import pytest

from helpers import wait_child
from receivers import wait_for
from sentry_flags import ErrorView, _delivery, _losses
from sentry_flags._delivery import Delivery
from sentry_flags._privacy import Privacy
from sentry_flags._rate import MIN_BURST
from sentry_flags.forwarders import Forwarder, Stats, VendorCall
from sentry_flags.testing import RecordingForwarder

PRIVACY = Privacy()


def event(i: int) -> dict[str, Any]:
    return {"event_id": f"{i:032x}", "level": "error", "exception": {"values": [{"type": "E"}]}}


def ids(*numbers: int) -> list[str]:
    return [f"{i:032x}" for i in numbers]


class Gate(RecordingForwarder):
    """Holds the worker inside ``send`` until released, to make the queue back up."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, call: VendorCall) -> bool:
        self.entered.set()
        self.release.wait(10)
        return super().send(call)


class HangingFlush(RecordingForwarder):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def flush(self) -> None:
        self.entered.set()
        self.release.wait(10)


def run_bounded(target: Any, timeout: float = 5) -> Any:
    """Run ``target`` on a helper thread: a hang fails the test instead of the suite."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "call did not return"
    return result[0]


# -- delivery -----------------------------------------------------------------------------------


def test_every_event_delivered_once_in_order_to_every_forwarder() -> None:
    first, second = RecordingForwarder(), RecordingForwarder()
    delivery = Delivery([first, second])
    for i in range(200):  # past the early-wake batch size, too
        delivery.submit(event(i), PRIVACY, None)

    assert delivery.flush(5)
    assert first.event_ids == second.event_ids == ids(*range(200))
    assert first.stats.forwarded == second.stats.forwarded == 200
    assert delivery.dropped == 0


def test_concurrent_submitters_each_keep_their_order() -> None:
    recorder = RecordingForwarder()
    delivery = Delivery([recorder])
    start = threading.Barrier(4, timeout=5)

    def submit(thread: int) -> None:
        start.wait()
        for n in range(50):
            delivery.submit(event(thread * 1000 + n), PRIVACY, None)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert delivery.flush(5)
    delivered = recorder.event_ids
    assert sorted(delivered) == sorted(ids(*(t * 1000 + n for t in range(4) for n in range(50))))
    for t in range(4):
        assert [i for i in delivered if int(i, 16) // 1000 == t] == ids(*(t * 1000 + n for n in range(50)))


def test_views_carry_the_ld_context_and_capture_time() -> None:
    seen: list[tuple[ErrorView, float]] = []

    class Spy(RecordingForwarder):
        def _deliver(self, view: ErrorView, calls: list[VendorCall], captured_at: float) -> None:
            seen.append((view, captured_at))

    delivery = Delivery([Spy()])
    context = object()
    before = time.monotonic()
    delivery.submit(event(1), PRIVACY, context)
    after = time.monotonic()

    assert delivery.flush(2)
    [(view, captured_at)] = seen
    assert view.ld_context is context
    assert before <= captured_at <= after  # when it was captured, not when delivered


def test_queue_is_bounded_and_drops_are_counted_on_every_forwarder() -> None:
    gate, other = Gate(), RecordingForwarder()
    delivery = Delivery([gate, other], queue_size=5)
    try:
        delivery.submit(event(0), PRIVACY, None)
        assert gate.entered.wait(5), "worker never picked up the first event"
        # The worker is now held inside gate.send with event 0: nothing drains.
        for i in range(1, 101):
            delivery.submit(event(i), PRIVACY, None)

        assert delivery.dropped == 95
        assert gate.stats.dropped == other.stats.dropped == 95
    finally:
        gate.release.set()
    assert delivery.flush(5)
    assert gate.event_ids == other.event_ids == ids(0, 1, 2, 3, 4, 5)
    assert gate.stats.forwarded == 6


def test_submit_never_blocks_while_the_worker_is_held() -> None:
    gate = Gate()
    delivery = Delivery([gate], queue_size=3)
    try:
        delivery.submit(event(0), PRIVACY, None)
        assert gate.entered.wait(5)

        def flood() -> bool:
            for i in range(1, 1000):
                delivery.submit(event(i), PRIVACY, None)
            return True

        assert run_bounded(flood)
        assert delivery.dropped == 996
    finally:
        gate.release.set()


def test_unreadable_event_is_skipped_and_the_next_delivered() -> None:
    recorder = RecordingForwarder()
    delivery = Delivery([recorder])
    delivery.submit(["not", "an", "event"], PRIVACY, None)  # type: ignore[arg-type]
    delivery.submit(event(2), PRIVACY, None)
    assert delivery.flush(2)
    assert recorder.event_ids == ids(2)


# -- failures -----------------------------------------------------------------------------------


class RaisesInCalls(Forwarder):
    vendor = "calls-raises"

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        raise ValueError("cannot build")

    def send(self, call: VendorCall) -> bool:
        raise AssertionError("unreachable")


class RaisesInSend(Forwarder):
    vendor = "send-raises"

    def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
        return [VendorCall("track", {})]

    def send(self, call: VendorCall) -> bool:
        raise ConnectionError("vendor SDK blew up")

    def flush(self) -> None:
        raise ConnectionError("flush blew up too")


class Refuses(RaisesInSend):
    vendor = "refuses"

    def send(self, call: VendorCall) -> bool:
        return False


def test_a_failing_forwarder_does_not_stop_the_others() -> None:
    broken = [RaisesInCalls(), RaisesInSend(), Refuses()]
    recorder = RecordingForwarder()
    delivery = Delivery([*broken, recorder])
    for i in range(3):
        delivery.submit(event(i), PRIVACY, None)

    assert delivery.flush(2)  # a raising vendor flush is logged, not fatal
    assert recorder.event_ids == ids(0, 1, 2)
    for forwarder in broken:
        assert forwarder.stats.failed == 3
        assert forwarder.stats.forwarded == 0


def test_a_forwarder_whose_handle_raises_does_not_kill_delivery() -> None:
    # The base handle() never raises, but a subclass may override it.
    class BadHandle(RecordingForwarder):
        def handle(self, view: ErrorView, captured_at: float) -> None:
            raise RuntimeError("custom forwarder bug")

    recorder = RecordingForwarder()
    delivery = Delivery([BadHandle(), recorder])
    delivery.submit(event(1), PRIVACY, None)
    assert delivery.flush(2)  # the worker survived: nothing stays busy or queued
    delivery.submit(event(2), PRIVACY, None)
    assert delivery.flush(2)
    assert recorder.event_ids == ids(1, 2)


# -- flush deadlines ----------------------------------------------------------------------------


def test_flush_gives_up_at_its_deadline_when_a_vendor_flush_hangs() -> None:
    hanging, recorder = HangingFlush(), RecordingForwarder()
    delivery = Delivery([hanging, recorder])
    try:
        delivery.submit(event(1), PRIVACY, None)
        assert run_bounded(lambda: delivery.flush(0.3)) is False
        # It returned while the vendor flush was still hung: the deadline, not the vendor,
        # ended the wait. The queue itself was delivered before the vendor flushes.
        assert hanging.entered.is_set()
        assert not hanging.release.is_set()
        assert hanging.event_ids == recorder.event_ids == ids(1)
    finally:
        hanging.release.set()


def test_flush_gives_up_at_its_deadline_when_delivery_is_held() -> None:
    gate = Gate()
    delivery = Delivery([gate])
    try:
        delivery.submit(event(1), PRIVACY, None)
        assert run_bounded(lambda: delivery.flush(0.2)) is False
        assert gate.entered.is_set()
        assert gate.event_ids == []
    finally:
        gate.release.set()
    assert delivery.flush(5)
    assert gate.event_ids == ids(1)


def test_flush_starts_delivery_and_flushes_vendors() -> None:
    recorder = RecordingForwarder()
    delivery = Delivery([recorder], interval=60)  # the timer alone would not drain in time
    delivery.submit(event(1), PRIVACY, None)
    assert delivery.flush(2)
    assert recorder.event_ids == ids(1)
    assert recorder.flushes == 1


def test_an_error_queued_while_close_stops_the_worker_is_still_delivered() -> None:
    gate = Gate()
    delivery = Delivery([gate])
    delivery.submit(event(1), PRIVACY, None)
    assert gate.entered.wait(5)  # the worker is inside event 1's send
    delivery.submit(event(2), PRIVACY, None)  # another thread's error, queued meanwhile
    closing = threading.Thread(target=delivery.close, args=(0.2,), daemon=True)
    closing.start()  # its flush gives up at its deadline; it stops the worker
    closing.join(5)
    assert not closing.is_alive()
    gate.release.set()
    wait_for(lambda: gate.event_ids == ids(1, 2), message="event 2 delivered by the stopping worker")
    assert gate.stats.forwarded == 2
    assert delivery._thread is None  # no new worker was needed


def test_flush_with_no_forwarders_or_nothing_queued() -> None:
    assert Delivery([]).flush(1)
    recorder = RecordingForwarder()
    assert Delivery([recorder]).flush(1)
    assert recorder.flushes == 1


def test_worker_wakes_on_its_own() -> None:
    recorder = RecordingForwarder()
    Delivery([recorder]).submit(event(1), PRIVACY, None)
    assert recorder.wait_for(1, timeout=5)


class CountingDrains(Delivery):
    """Counts the worker's rounds (each drain is one wake-up of its thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drains = 0

    def _drain(self) -> None:
        self.drains += 1
        super()._drain()


def test_an_idle_worker_sleeps_until_the_next_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each wake-up takes the GIL from the app's threads; a process that stopped failing
    # should not pay ten a second for ever.
    monkeypatch.setattr(_delivery, "IDLE_AFTER", 0.05)
    recorder = RecordingForwarder()
    delivery = CountingDrains([recorder], interval=0.01)
    delivery.submit(event(1), PRIVACY, None)
    assert recorder.wait_for(1, timeout=5)
    time.sleep(0.2)  # IDLE_AFTER, and the round after it if one is on its way
    rounds = delivery.drains
    time.sleep(0.5)  # 50 rounds on the timer alone
    assert delivery.drains == rounds

    delivery.submit(event(2), PRIVACY, None)  # wakes it
    assert recorder.wait_for(2, timeout=5)
    assert recorder.event_ids == ids(1, 2)


def test_events_from_many_threads_reach_a_worker_that_goes_idle_between_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_delivery, "IDLE_AFTER", 0.0)  # idle whenever the queue is empty
    recorder = RecordingForwarder()
    delivery = Delivery([recorder], interval=0.001)

    def submit_some(start: int) -> None:
        for i in range(start, start + 50):
            delivery.submit(event(i), PRIVACY, None)
            time.sleep(0.0005 * (i % 3))  # now and then long enough for the worker to go idle

    threads = [threading.Thread(target=submit_some, args=(n * 50,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert recorder.wait_for(200, timeout=10)  # no event left behind by a missed wake-up
    assert sorted(recorder.event_ids) == sorted(ids(*range(200)))


def test_an_idle_worker_still_tells_of_losses_counted_on_the_app_thread(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Errors over the rate bound are counted on the app's thread and never queued, so they
    # do not wake the worker; it looks at its counters every IDLE_CHECK seconds anyway.
    caplog.set_level(logging.WARNING, logger="sentry_flags")
    monkeypatch.setattr(_losses, "REPORT_EVERY", 0.2)
    monkeypatch.setattr(_delivery, "IDLE_CHECK", 0.3)
    monkeypatch.setattr(_delivery, "IDLE_AFTER", 0.0)
    recorder = RecordingForwarder()
    delivery = Delivery([recorder], interval=0.01, max_per_second=0.01)
    for i in range(MIN_BURST + 1):
        delivery.submit(event(i), PRIVACY, None)
    assert delivery.flush(5)

    def told() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "sentry_flags" and r.levelno == logging.WARNING
        ]

    assert wait_for(lambda: len(told()) == 1, timeout=5)
    for i in range(4):  # the bucket is empty: counted, not queued
        delivery.submit(event(1000 + i), PRIVACY, None)
    assert delivery.rate_limited == 5
    assert wait_for(lambda: len(told()) == 2, timeout=5)
    assert told()[1].startswith("4 errors not forwarded to recording in the last ")


# -- the worker's pauses (it holds the GIL in short slices) --------------------------------------


class CountingPauses(Delivery):
    """Counts the worker's pauses; ``during_flush`` counts those taken while a flush waits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pauses = 0
        self.flushing = False
        self.during_flush = 0

    def _pause(self) -> None:
        self.pauses += 1
        if self.flushing:
            self.during_flush += 1
        super()._pause()


def test_a_draining_worker_pauses_between_slices_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_delivery, "SLICE", 0.0)  # pause after every event
    first, second = RecordingForwarder(), RecordingForwarder()
    delivery = CountingPauses([first, second], interval=60)
    for i in range(300):
        delivery.submit(event(i), PRIVACY, None)
    delivery._wake.set()  # drain now, without a flush (a flush drains without pausing)

    assert first.wait_for(300, timeout=30)
    assert second.wait_for(300, timeout=30)
    assert delivery.pauses >= 299  # before every event but the first
    assert first.event_ids == second.event_ids == ids(*range(300))
    assert delivery.dropped == delivery.rate_limited == 0


def test_events_submitted_while_the_worker_pauses_are_delivered_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_delivery, "SLICE", 0.0)
    recorder = RecordingForwarder()
    delivery = CountingPauses([recorder], interval=0.01)
    for i in range(400):
        delivery.submit(event(i), PRIVACY, None)
        if i % 50 == 0:
            time.sleep(0.005)  # let the worker start draining and pausing meanwhile

    assert recorder.wait_for(400, timeout=30)
    assert delivery.pauses > 0
    assert recorder.event_ids == ids(*range(400))


def test_a_flush_drains_without_pausing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_delivery, "SLICE", 0.0)
    monkeypatch.setattr(_delivery, "PAUSE", 0.05)  # 50 pauses would take 2.5 s
    recorder = RecordingForwarder()
    delivery = CountingPauses([recorder], interval=60)
    for i in range(50):
        delivery.submit(event(i), PRIVACY, None)
    delivery.flushing = True
    assert delivery.flush(30)
    assert recorder.event_ids == ids(*range(50))
    assert delivery.during_flush <= 1  # at most the pause the worker was already in


# -- the rate bound before the queue --------------------------------------------------------------


def test_over_the_rate_events_are_counted_on_every_forwarder_and_not_queued() -> None:
    first, second = RecordingForwarder(), RecordingForwarder()
    # 0.01 a second with the minimum burst: the first MIN_BURST pass, the rest do not.
    delivery = Delivery([first, second], max_per_second=0.01)
    for i in range(MIN_BURST + 150):
        delivery.submit(event(i), PRIVACY, None)

    assert delivery.flush(10)
    assert delivery.rate_limited == 150
    assert delivery.dropped == 0
    assert first.event_ids == second.event_ids == ids(*range(MIN_BURST))
    for forwarder in (first, second):
        assert forwarder.stats == Stats(
            errors=MIN_BURST + 150, forwarded=MIN_BURST, rate_limited=150, calls={"forwarded": MIN_BURST}
        )
        assert forwarder.stats.dropped == 0


def test_a_full_queue_drops_before_the_rate_bound_spends_a_token() -> None:
    gate = Gate()
    delivery = Delivery([gate], queue_size=2, max_per_second=0.01)
    try:
        delivery.submit(event(0), PRIVACY, None)
        assert gate.entered.wait(5)
        for i in range(1, 11):
            delivery.submit(event(i), PRIVACY, None)
        assert delivery.dropped == 8  # events 3..10: the queue holds 1 and 2
        assert delivery.rate_limited == 0
    finally:
        gate.release.set()
    assert delivery.flush(5)
    assert gate.event_ids == ids(0, 1, 2)


# -- fork ----------------------------------------------------------------------------------------


def _read_all(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "child did not report in time"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads running
def test_delivery_works_in_a_forked_child() -> None:
    recorder = RecordingForwarder()
    delivery = Delivery([recorder], interval=60)  # the parent's events stay queued
    for i in range(3):
        delivery.submit(event(i), PRIVACY, None)

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_fd)
            delivery.submit(event(99), PRIVACY, None)
            flushed = delivery.flush(2)
            report = {"flushed": flushed, "ids": recorder.event_ids, "dropped": delivery.dropped}
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)

    os.close(write_fd)
    try:
        report = json.loads(_read_all(read_fd, 10))
    finally:
        os.close(read_fd)
        assert wait_child(pid, time.monotonic() + 10) == 0  # -9: it did not exit

    # The child has its own worker, and the parent's queued events stay the parent's.
    assert report == {"flushed": True, "ids": ids(99), "dropped": 0}
    assert delivery.flush(2)
    assert recorder.event_ids == ids(0, 1, 2)


def test_a_forwarder_cannot_change_the_events_contexts() -> None:
    # The view's contexts are the event's own dict (no copy per error), which sentry-sdk may
    # still be serializing on the app's thread: a forwarder only reads them.
    class Meddler(Forwarder):
        vendor = "meddler"

        def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
            view.contexts.pop("launchdarklyContext", None)  # type: ignore[attr-defined]
            return [VendorCall("noop", {})]

        def send(self, call: VendorCall) -> bool:
            return True

    class Rewriter(Meddler):
        def calls(self, view: ErrorView, captured_at: float) -> list[VendorCall]:
            view.ld_context_json["key"] = "someone-else"  # type: ignore[index]
            return [VendorCall("noop", {})]

    meddler, rewriter, recorder = Meddler(), Rewriter(), RecordingForwarder()
    delivery = Delivery([meddler, rewriter, recorder])
    sent = {**event(1), "contexts": {"launchdarklyContext": {"kind": "user", "key": "k"}}}
    delivery.submit(sent, PRIVACY, None)
    assert delivery.flush(2)

    assert sent["contexts"] == {"launchdarklyContext": {"kind": "user", "key": "k"}}
    assert meddler.stats.failed == rewriter.stats.failed == 1  # their TypeError, counted
    [view] = recorder.views
    assert view.contexts == sent["contexts"]
