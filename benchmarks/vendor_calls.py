"""6. What each vendor SDK's own ``track`` costs the thread that calls it.

This is why every vendor call runs on sentry-flags' worker thread and never on the app's:
the three SDKs are timed directly (no sentry-flags involved), one call at a time, while
their endpoints serve normally, refuse connections and hang, and for Split also before
the SDK is ready. Informational: it has no budget; docs/benchmarks.md draws the
conclusion.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from benchmarks._harness import Row, gc_off, log, percentile, us
from benchmarks._vendors import Servers, Vendors, ld_context
from sentry_flags.testing.receivers import closed_port_url

NAME = "vendor_calls"
MODES = ("normal", "refuse", "hang")


def latencies(call: Callable[[int], Any], n: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    with gc_off():
        for i in range(n):
            start = clock()
            call(i)
            out.append(clock() - start)
    return out


def row(figure: str, samples: list[int]) -> Row:
    return Row(
        NAME,
        figure,
        us(percentile(samples, 50)),
        ratio=f"p99 {us(percentile(samples, 99))}, max {us(max(samples))}",
    )


def not_ready_split(n: int) -> list[int]:
    """A Split factory whose SDK endpoint is down: never ready, ``track`` logs a warning."""
    from splitio import get_factory

    url = closed_port_url()
    urls = {
        name: url
        for name in (
            "sdk_api_base_url",
            "events_api_base_url",
            "auth_api_base_url",
            "telemetry_api_base_url",
        )
    }
    config = {"streamingEnabled": False, "machineIp": "127.0.0.1", "machineName": "bench"}
    factory = get_factory("split-not-ready-key", config=config, **urls)
    try:
        client = factory.client()
        return latencies(lambda i: client.track(f"user-{i}", "user", "sentry_exception"), n)
    finally:
        destroyed = threading.Event()
        factory.destroy(destroyed)
        destroyed.wait(2)


def run(quick: bool) -> list[Row]:
    n = 300 if quick else 3000
    servers = Servers()
    vendors = Vendors.start(servers)
    split = vendors.split_factory.client()
    context = ld_context()
    calls: dict[str, Callable[[int], Any]] = {
        "launchdarkly": lambda i: vendors.ld.track("sentry-errors", context, {"i": i}),
        "split": lambda i: split.track(f"user-{i}", "user", "sentry_exception", None, {"i": i}),
        "segment": lambda i: vendors.segment.track(
            user_id=f"user-{i}", event="Error Captured", properties={"i": i}
        ),
    }
    rows: list[Row] = []
    try:
        for mode in MODES:
            servers.set_mode(mode)
            log(f"vendor calls, endpoints {mode}")
            for vendor, call in calls.items():
                rows.append(row(f"{vendor} track, endpoint {mode}", latencies(call, n)))
        rows.append(row("split track, SDK not ready", not_ready_split(min(n, 300))))
    finally:
        vendors.close()
        servers.close()
    rows.append(
        Row.note(NAME, "direct SDK calls on the calling thread; sentry-flags makes them on its worker")
    )
    return rows
