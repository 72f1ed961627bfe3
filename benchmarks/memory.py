"""4. Resident memory over a storm of errors while every vendor endpoint refuses connections.

Full run: 100,000 errors, RSS sampled every 10,000; quick run: 10,000 errors, every 1,000.
Warm-up lasts until the vendor SDK queues can be full: they fill at the rate our bound lets
errors through (200 a second by default), not per error captured, so the warm-up is the
first sample after ``WARM_UP_SECONDS`` of storm (10,000 events, each SDK's default queue
cap, at 200 a second), and not before the first fifth; a storm too short for that (the quick
run) takes the first fifth. The budget is RSS at the end minus RSS after warm-up. Runs with
the garbage collector on, as an app does; Sentry's transport drops envelopes (as in
scenarios 1 and 3).
"""

from __future__ import annotations

import resource
import time

from benchmarks._harness import Row, log, mb, verdict
from benchmarks._vendors import (
    DropTransport,
    Servers,
    Vendors,
    capture_errors,
    flags_integration,
    make_client,
    set_request_scope,
)

NAME = "memory"
BUDGET_BYTES = 10 * 2**20
WARM_UP_SECONDS = 10_000 / 200  # the vendor SDKs' default queue caps, at the default bound


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def run(quick: bool) -> list[Row]:
    total, step = (10_000, 1_000) if quick else (100_000, 10_000)
    servers = Servers()
    vendors = Vendors.start(servers)
    try:
        integration = flags_integration(vendors)
        make_client(servers.urls["sentry_dsn"], [integration], transport=DropTransport)
        set_request_scope(vendors.ld)
        capture_errors(100)
        servers.set_mode("refuse")
        start = rss_bytes()
        samples: dict[int, int] = {}
        elapsed: dict[int, float] = {}
        log(f"{NAME}: {total} errors with every vendor refusing, RSS every {step}")
        began = time.monotonic()
        for done in range(step, total + 1, step):
            capture_errors(step)
            samples[done] = rss_bytes()
            elapsed[done] = time.monotonic() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert integration.delivery is not None
        delivery = integration.delivery
        dropped = f"{delivery.dropped} rate_limited={getattr(delivery, 'rate_limited', 0)}"
        stats = vendors.stats()
    finally:
        vendors.close()
        servers.close()
    warm_up = next(
        (n for n in samples if n >= total // 5 and n < total and elapsed[n] >= WARM_UP_SECONDS), total // 5
    )
    growth = samples[total] - samples[warm_up]
    title = "4 memory"
    curve = " ".join(f"{n // 1000}k:{mb(rss)}" for n, rss in samples.items())
    return [
        Row(title, f"RSS after {warm_up // 1000}k errors (warm-up)", mb(samples[warm_up])),
        Row(title, f"RSS after {total // 1000}k errors", mb(samples[total])),
        Row(title, f"growth {warm_up // 1000}k -> {total // 1000}k", mb(growth), "", "<= 10 MB",
            verdict(growth <= BUDGET_BYTES)),
        Row(title, "peak RSS (ru_maxrss)", mb(peak)),
        Row.note(title, f"{'quick run: ' if quick else ''}{total} errors; RSS before the storm {mb(start)}; "
                 f"{curve}"),
        Row.note(title, f"warm-up: {warm_up} errors in {elapsed[warm_up]:.0f} s (the vendor queues fill "
                 f"in ~{WARM_UP_SECONDS:.0f} s at the default bound); the storm took {elapsed[total]:.0f} s"),
        Row.note(title, f"our queue dropped={dropped}; {stats}"),
    ]  # fmt: skip
