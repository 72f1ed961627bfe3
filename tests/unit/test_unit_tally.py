"""A delivery counts the errors it refuses once, in a tally every forwarder's stats add in."""

from __future__ import annotations

import gc
import threading

from sentry_flags._delivery import Delivery
from sentry_flags._privacy import Privacy
from sentry_flags.testing import RecordingForwarder

EVENT = {"event_id": "0" * 32, "exception": {"values": [{"type": "E", "value": "v"}]}}


def refusing(*forwarders: RecordingForwarder, queue_size: int = 1000) -> Delivery:
    """A delivery whose bound refuses every error (its bucket is empty and never refills)."""
    delivery = Delivery(forwarders, queue_size=queue_size, max_per_second=1.0)
    assert delivery._bucket is not None
    delivery._bucket._tokens = 0.0
    delivery._bucket._last = float("inf")
    return delivery


def test_each_refused_error_is_one_outcome_of_every_forwarder() -> None:
    first, second = RecordingForwarder(), RecordingForwarder()
    delivery = refusing(first, second)
    for _ in range(5):
        delivery.submit(dict(EVENT), Privacy(), None)
    assert (delivery.rate_limited, delivery.dropped) == (5, 0)
    for forwarder in (first, second):
        stats = forwarder.stats
        assert (stats.errors, stats.rate_limited, stats.dropped) == (5, 5, 0)
        assert stats.accounted == stats.errors


def test_a_full_queue_is_counted_as_dropped_in_the_same_tally() -> None:
    forwarder = RecordingForwarder()
    delivery = Delivery([forwarder], queue_size=1, max_per_second=None)
    delivery._thread = threading.current_thread()  # as if the worker ran: nothing drains the queue
    for _ in range(4):
        delivery.submit(dict(EVENT), Privacy(), None)
    assert (delivery.dropped, delivery.rate_limited) == (3, 0)
    stats = forwarder.stats
    assert (stats.errors, stats.dropped) == (3, 3)  # the queued one has no outcome yet


def test_a_forwarder_of_two_deliveries_counts_both() -> None:
    shared = RecordingForwarder()
    one, two = refusing(shared), refusing(shared)
    one.submit(dict(EVENT), Privacy(), None)
    two.submit(dict(EVENT), Privacy(), None)
    two.submit(dict(EVENT), Privacy(), None)
    assert shared.stats.rate_limited == 3
    assert shared.stats.errors == 3


def test_a_delivery_gone_leaves_its_counts_and_no_reference() -> None:
    forwarder = RecordingForwarder()
    delivery = refusing(forwarder)
    for _ in range(7):
        delivery.submit(dict(EVENT), Privacy(), None)
    del delivery
    gc.collect()
    stats = forwarder.stats
    assert (stats.errors, stats.rate_limited) == (7, 7)
    # Folded in: memory stays bounded however many come and go.
    assert (forwarder._counters._tallies, forwarder._counters._retired) == ([], [])
    refusing(forwarder).submit(dict(EVENT), Privacy(), None)  # a new one counts on top
    assert forwarder.stats.rate_limited == 8


def test_a_delivery_collected_while_the_counters_are_locked_deadlocks_nothing() -> None:
    # sentry-sdk's client sits in a reference cycle, so a delivery it held is freed by a
    # collection, on whatever thread that interrupts: here one reading the same stats.
    forwarder = RecordingForwarder()
    delivery = refusing(forwarder)
    delivery.submit(dict(EVENT), Privacy(), None)
    cycle: list[object] = [delivery]
    cycle.append(cycle)
    del delivery, cycle
    done = threading.Event()

    def collect_holding_the_lock() -> None:
        with forwarder._counters._lock:
            gc.collect()
        done.set()

    threading.Thread(target=collect_holding_the_lock, daemon=True).start()
    assert done.wait(5), "a collection under the counters' lock never returned"
    stats = forwarder.stats
    assert (stats.errors, stats.rate_limited) == (1, 1)
    assert forwarder._counters._tallies == []


def test_counts_are_exact_under_threads() -> None:
    forwarder = RecordingForwarder()
    delivery = refusing(forwarder)
    start = threading.Barrier(8, timeout=5)

    def work() -> None:
        start.wait()
        for _ in range(500):
            delivery.submit(dict(EVENT), Privacy(), None)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert delivery.rate_limited == 4000
    assert forwarder.stats.rate_limited == forwarder.stats.errors == 4000


def test_a_forked_child_counts_afresh() -> None:
    forwarder = RecordingForwarder()
    delivery = refusing(forwarder)
    delivery.submit(dict(EVENT), Privacy(), None)
    delivery._after_fork()  # what the child runs (see _fork.py), parent's counts gone
    assert forwarder.stats.errors == 0
    assert delivery._bucket is not None
    delivery._bucket._tokens = 0.0
    delivery.submit(dict(EVENT), Privacy(), None)
    assert (forwarder.stats.errors, forwarder.stats.rate_limited) == (1, 1)
