"""8. What forwarding costs the process: CPU per forwarded error at 50, 100 and 200 a second.

The app captures errors at a steady pace (no storm: every error is forwarded, the default
bound is 200 a second), once on bare sentry-sdk and once with ``FlagsIntegration`` and the
three forwarders on real vendor clients (as in scenario 1), interleaved. The CPU of every
thread is read from ``/proc`` over the same window, so the extra is split by whose it is:

* the app's thread (our before_send stage, and whatever the other threads cost it);
* ``sentry-flags-delivery``, our worker (views, messages, and the vendor SDKs' ``track``
  calls, which run on it);
* the vendor SDKs' own threads (Segment's consumer, LaunchDarkly's event processor, Split's
  tasks): their batching and HTTP posts.

Budget: at 200 forwarded a second, our worker plus the vendor threads use at most 10% of one
core. Linux only (``/proc/self/task``); elsewhere the scenario reports n/a.
"""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from typing import Optional

from benchmarks._harness import NOT_AVAILABLE, Row, interleave, log, verdict
from benchmarks._harness import median as med
from benchmarks._vendors import (
    DropTransport,
    Servers,
    Vendors,
    capture_errors,
    flags_integration,
    make_client,
    set_request_scope,
    using,
)

NAME = "forwarding"
RATES = (50, 100, 200)
BUDGET = 0.10  # of one core, at 200 a second, our worker and the vendor threads
SIZES = {True: (2, 1.5), False: (5, 5.0)}  # rounds, seconds per rate and variant
OURS = "sentry-flags-delivery"
APP = "app"
VENDORS = "vendor SDK threads"


def thread_cpu() -> Optional[dict[str, float]]:
    """CPU seconds so far, per group of threads (see the module docstring)."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        return None
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    ticks = os.sysconf("SC_CLK_TCK")
    found = {APP: 0.0, OURS: 0.0, VENDORS: 0.0}
    for tid in os.listdir(tasks):
        try:
            with open(f"{tasks}/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        name = names.get(int(tid), "")
        group = APP if int(tid) == main else OURS if name == OURS else VENDORS
        found[group] += cpu
    return found


def paced(rate: int, seconds: float) -> int:
    """Capture ``rate`` errors a second for ``seconds``, on schedule; how many."""
    count = int(rate * seconds)
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        capture_errors(1)
    return count


def run(quick: bool) -> list[Row]:
    title = "8 forwarding"
    if thread_cpu() is None:
        return [Row(title, "CPU per thread (needs /proc)", NOT_AVAILABLE)]
    rounds, seconds = SIZES[quick]
    servers = Servers()
    vendors = Vendors.start(servers)
    rows: list[Row] = []
    try:
        integration = flags_integration(vendors)
        dsn = servers.urls["sentry_dsn"]
        clients = {"bare": make_client(dsn, transport=DropTransport),
                   "flags": make_client(dsn, [integration], transport=DropTransport)}  # fmt: skip
        split = vendors.forwarders[0]
        for rate in RATES:

            def variant(name: str, rate: int = rate) -> tuple[dict[str, float], int, int]:
                with using(clients[name], bare=name == "bare"):
                    set_request_scope(None if name == "bare" else vendors.ld)
                    before, sent = thread_cpu(), split.stats.forwarded
                    count = paced(rate, seconds)
                    integration.flush(5.0)
                    time.sleep(1.0)  # the vendor threads' own batches, posted after
                    after = thread_cpu()
                assert before is not None
                assert after is not None
                used = {group: after[group] - before[group] for group in after}
                return used, count, split.stats.forwarded - sent

            log(f"{NAME}: {rate}/s, {rounds} rounds x {seconds:g} s per variant")
            samples = interleave({name: partial(variant, name) for name in clients}, rounds)
            rows += _rows(title, rate, seconds, samples)
    finally:
        vendors.close()
        servers.close()
    return rows


def _rows(
    title: str, rate: int, seconds: float, samples: dict[str, list[tuple[dict[str, float], int, int]]]
) -> list[Row]:
    extra: dict[str, list[float]] = {APP: [], OURS: [], VENDORS: []}
    forwarded: list[int] = []
    for (bare, _, _), (flags, _, sent) in zip(samples["bare"], samples["flags"]):
        for group, values in extra.items():
            values.append(max(0.0, flags[group] - bare[group]))
        forwarded.append(sent)
    per = {group: med(values) / max(1, med(forwarded)) for group, values in extra.items()}
    window = seconds + 1.0  # the paced capture, then the vendor threads' posts
    background = (med(extra[OURS]) + med(extra[VENDORS])) / window
    total = sum(med(values) for values in extra.values()) / window
    scenario = f"{title} {rate}/s"
    rows = [
        Row(scenario, "CPU per forwarded error: app thread / our worker / vendor threads",
            " / ".join(f"{per[g] * 1e6:.0f} µs" for g in (APP, OURS, VENDORS))),
        Row(scenario, "share of one core: our worker + vendor threads (all threads)",
            f"{background:.1%} ({total:.1%})",
            budget=f"<= {BUDGET:.0%}" if rate == RATES[-1] else "",
            result=verdict(background <= BUDGET) if rate == RATES[-1] else ""),
        Row.note(scenario, f"forwarded per round: {forwarded} (of {int(rate * seconds)} captured)"),
    ]  # fmt: skip
    return rows
