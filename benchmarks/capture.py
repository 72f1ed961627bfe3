"""1. ``capture_exception`` per error: bare sentry-sdk vs with FlagsIntegration.

Every client drops envelopes in the transport. The FlagsIntegration client has 20 ignore
patterns and 10 deny URLs (none matching), 10 include paths, a LaunchDarkly context set by
a flag evaluation through our hook, and all three forwarders feeding real vendor clients
aimed at loopback receivers (in another process). A third client has the same
FlagsIntegration settings and context but no forwarders (informational: what the app
thread pays for filters and context alone). Our delivery worker runs during the timed
loop, as it would in the app; between variants everything is let settle.

Besides the app thread's wall time (what the budget is on), the process CPU time of every
thread over the same loop is recorded: on a machine with idle cores, background threads
(ours, the vendor SDKs') cost CPU that the app thread's clock does not show.
"""

from __future__ import annotations

import time

from benchmarks._harness import Row, gc_off, interleave, log, paired_ratio, us, verdict
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

NAME = "capture"
BUDGET = 1.10
SETTLE = 0.3  # s: our worker wakes every 0.1 s
SIZES = {True: (6, 300), False: (20, 2000)}  # rounds, errors per round: quick, full


def timed(n: int) -> tuple[float, float]:
    """Wall and process-CPU nanoseconds per error over ``n`` captures (gc off)."""
    with gc_off():
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        capture_errors(n)
        cpu, wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
    return wall / n, cpu / n


def spread(numerator: list[float], denominator: list[float]) -> str:
    ratios = sorted(a / b for a, b in zip(numerator, denominator))
    quarter = len(ratios) // 4
    return (
        f"min {ratios[0]:.3f}, middle half {ratios[quarter]:.3f}..{ratios[-1 - quarter]:.3f}, "
        f"max {ratios[-1]:.3f}"
    )


def run(quick: bool) -> list[Row]:
    rounds, n = SIZES[quick]
    servers = Servers()
    vendors = Vendors.start(servers)
    try:
        integration = flags_integration(vendors)
        alone = flags_integration(None)  # same filters; the LD context comes from the hook
        dsn = servers.urls["sentry_dsn"]
        clients = {
            "bare": make_client(dsn, transport=DropTransport),
            "alone": make_client(dsn, [alone], transport=DropTransport),
            "flags": make_client(dsn, [integration], transport=DropTransport),
        }

        def variant(name: str) -> tuple[float, float]:
            with using(clients[name], bare=name == "bare"):
                set_request_scope(None if name == "bare" else vendors.ld)
                capture_errors(20)  # warm-up
                return timed(n)

        log(f"{NAME}: {rounds} rounds x {n} errors per variant")
        samples = interleave(
            {name: (lambda name=name: variant(name)) for name in clients},
            rounds,
            between=lambda _: time.sleep(SETTLE),
        )
        wall = {name: [s[0] for s in found] for name, found in samples.items()}
        cpu = {name: [s[1] for s in found] for name, found in samples.items()}
        ratio = paired_ratio(wall["flags"], wall["bare"])
        ratio_alone = paired_ratio(wall["alone"], wall["bare"])
        assert integration.delivery is not None
        counts = f"dropped={integration.delivery.dropped} "
        counts += f"rate_limited={getattr(integration.delivery, 'rate_limited', 0)}"
        stats = vendors.stats()
    finally:
        vendors.close()
        servers.close()
    title = "1 capture"
    cpu_text = ", ".join(f"{name} {us(med(values))}" for name, values in cpu.items())
    cpu_ratio = paired_ratio(cpu["flags"], cpu["bare"])
    cpu_alone = paired_ratio(cpu["alone"], cpu["bare"])
    return [
        Row(title, "bare sentry-sdk", us(med(wall["bare"])) + "/error"),
        Row(title, "FlagsIntegration, no forwarders", us(med(wall["alone"])) + "/error",
            f"{ratio_alone:.3f}"),
        Row(title, "with FlagsIntegration (+3 forwarders)", us(med(wall["flags"])) + "/error",
            f"{ratio:.3f}", f"<= {BUDGET:.2f}", verdict(ratio <= BUDGET)),
        Row(title, "process CPU, all threads: no forwarders / +3 forwarders", "",
            f"{cpu_alone:.3f} / {cpu_ratio:.3f}"),
        Row.note(title, f"process CPU per error, all threads: {cpu_text}"),
        Row.note(title, "per-round ratios, with forwarders: " + spread(wall["flags"], wall["bare"])
                 + "; no forwarders: " + spread(wall["alone"], wall["bare"])),
        Row.note(title, f"our queue: {counts}; {stats}"),
    ]  # fmt: skip
