"""3. The app thread's time per ``capture_exception`` while every vendor endpoint is down.

The LaunchDarkly, Split and Segment receivers (another process) first serve normally, so
the vendor clients start as in production; then all of them (a) refuse connections, (b)
accept and never answer. Sentry's transport drops envelopes, as in scenario 1, so the
figures are about us and not about sentry-sdk's own transport. Each call is timed on its
own; bare sentry-sdk and FlagsIntegration alternate in chunks. The budget is on what we
add at p99: on this 2-core machine sentry-sdk's own capture_exception is already ~0.8 ms at
p50 and above 1 ms at p99, so the absolute p99 is printed but cannot be judged alone.
"""

from __future__ import annotations

import time
from typing import Callable

import sentry_sdk

from benchmarks._harness import Row, gc_off, interleave, log, percentile, us, verdict
from benchmarks._vendors import (
    DropTransport,
    Servers,
    Vendors,
    capture_errors,
    fail,
    flags_integration,
    make_client,
    set_request_scope,
    using,
)

NAME = "outage"
BUDGET_NS = 1_000_000
MODES = ("refuse", "hang")


def capture_latencies(n: int) -> list[int]:
    """Nanoseconds of each ``capture_exception`` call (the raise is not timed)."""
    capture = sentry_sdk.capture_exception
    clock = time.perf_counter_ns
    out = []
    with gc_off():
        for _ in range(n):
            try:
                fail()
            except ValueError:
                start = clock()
                capture()
                out.append(clock() - start)
    return out


def run(quick: bool) -> list[Row]:
    rounds, chunk = (4, 250) if quick else (12, 1000)
    servers = Servers()
    vendors = Vendors.start(servers)
    rows: list[Row] = []
    try:
        integration = flags_integration(vendors)
        dsn = servers.urls["sentry_dsn"]
        bare = make_client(dsn, transport=DropTransport)
        flags = make_client(dsn, [integration], transport=DropTransport)

        def variant(client: object, is_bare: bool) -> Callable[[], list[int]]:
            def one_round() -> list[int]:
                with using(client, bare=is_bare):
                    set_request_scope(None if is_bare else vendors.ld)
                    return capture_latencies(chunk)

            return one_round

        with using(flags):
            set_request_scope(vendors.ld)
            capture_errors(50)  # the clients see a healthy vendor first
        for mode in MODES:
            servers.set_mode(mode)
            for client, is_bare in ((bare, True), (flags, False)):
                with using(client, bare=is_bare):
                    set_request_scope(None if is_bare else vendors.ld)
                    capture_errors(200)  # into the outage before timing
            log(f"{NAME}: vendors {mode}: {rounds} rounds x {chunk} errors per variant")
            samples = interleave({"bare": variant(bare, True), "flags": variant(flags, False)}, rounds)
            bare_ns = [t for chunk_ in samples["bare"] for t in chunk_]
            flags_ns = [t for chunk_ in samples["flags"] for t in chunk_]
            title = f"3 outage: {mode}"
            b50, b99 = percentile(bare_ns, 50), percentile(bare_ns, 99)
            f50, f99 = percentile(flags_ns, 50), percentile(flags_ns, 99)
            rows += [
                Row(title, "bare sentry-sdk p50 / p99", f"{us(b50)} / {us(b99)}"),
                Row(title, "FlagsIntegration p50 / p99", f"{us(f50)} / {us(f99)}",
                    f"{f50 / b50:.2f} / {f99 / b99:.2f}"),
                Row(title, "added at p99 (FlagsIntegration - bare)", us(f99 - b99), "", "<= 1 ms",
                    verdict(f99 - b99 <= BUDGET_NS)),
                Row.note(title, f"max {us(max(bare_ns))} bare, {us(max(flags_ns))} FlagsIntegration; "
                         f"{len(flags_ns)} errors timed per variant; counters so far: {vendors.stats()}"),
            ]  # fmt: skip
        assert integration.delivery is not None
        rows.append(Row.note("3 outage", f"our queue dropped={integration.delivery.dropped} in total"))
    finally:
        vendors.close()
        servers.close()
    return rows
