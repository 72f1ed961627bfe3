"""1. ``capture_exception`` per error: bare sentry-sdk vs with FlagsIntegration.

Both clients drop envelopes in the transport. The FlagsIntegration client has 20 ignore
patterns and 10 deny URLs (none matching), 10 include paths, a LaunchDarkly context set by
a flag evaluation through our hook, and all three forwarders feeding real vendor clients
aimed at loopback receivers (in another process). Our delivery worker runs during the
timed loop, as it would in the app; between variants everything is let settle.
"""

from __future__ import annotations

import time

from benchmarks._harness import Row, interleave, log, paired_ratio, per_op_ns, us, verdict
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
SETTLE = 0.3  # s: our worker wakes every 0.1 s, the vendor clients post within 0.2 s


def run(quick: bool) -> list[Row]:
    rounds, n = (6, 300) if quick else (20, 2000)
    servers = Servers()
    vendors = Vendors.start(servers)
    try:
        integration = flags_integration(vendors)
        dsn = servers.urls["sentry_dsn"]
        bare = make_client(dsn, transport=DropTransport)
        flags = make_client(dsn, [integration], transport=DropTransport)

        def bare_round() -> float:
            with using(bare, bare=True):
                set_request_scope()
                capture_errors(20)  # warm-up
                return per_op_ns(capture_errors, n)

        def flags_round() -> float:
            with using(flags):
                set_request_scope(vendors.ld)
                capture_errors(20)
                return per_op_ns(capture_errors, n)

        log(f"{NAME}: {rounds} rounds x {n} errors per variant")
        samples = interleave(
            {"bare": bare_round, "flags": flags_round}, rounds, between=lambda _: time.sleep(SETTLE)
        )
        ratio = paired_ratio(samples["flags"], samples["bare"])
        assert integration.delivery is not None
        dropped = integration.delivery.dropped
        stats = vendors.stats()
    finally:
        vendors.close()
        servers.close()
    title = "1 capture"
    return [
        Row(title, "bare sentry-sdk", us(med(samples["bare"])) + "/error"),
        Row(
            title,
            "with FlagsIntegration (+3 forwarders)",
            us(med(samples["flags"])) + "/error",
            f"{ratio:.3f}",
            f"<= {BUDGET:.2f}",
            verdict(ratio <= BUDGET),
        ),
        Row.note(title, f"our queue dropped={dropped}; {stats}"),
    ]
