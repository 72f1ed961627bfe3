"""1. ``capture_exception`` per error: bare sentry-sdk vs with FlagsIntegration.

Every client drops envelopes in the transport. The FlagsIntegration client has 20 ignore
patterns and 10 deny URLs (none matching), 10 include paths, a LaunchDarkly context set by
a flag evaluation through our hook, and all three forwarders feeding real vendor clients
aimed at loopback receivers (in another process). A third client has the same
FlagsIntegration settings and context but no forwarders (informational: what the app
thread pays for filters and context alone). Our delivery worker runs during the timed
loop, as it would in the app; between variants everything is let settle.

The errors come back to back, far faster than the default bound (200 forwarded a second):
a storm. Every variant's round starts with a warm-up of ``WARM_UP`` errors, enough to spend
the bound's burst (which the other variants' rounds refill), so the timed loop is a storm
that lasts: 200 forwarded a second, the rest refused by the bound. Three figures per variant,
over the same loop:

* the caller thread's own CPU time (``time.thread_time``): what the budget is on, what our
  before_send stage costs the thread that captures;
* the caller thread's wall time: also the time it waits for the GIL while our worker and the
  vendor threads run. In this loop the app never waits for I/O, so every microsecond of
  background CPU shows here one for one; in an app that spends time in I/O most of it would
  not;
* the process CPU time of every thread (``time.process_time``): the whole cost.

The budget is judged on rounds run on the machine as it is. Two other kinds of round, taken
in turn with those, show how much of the caller's figure is its CPU idling while it waits
for the GIL (``benchmarks._idle``): with idle CPUs polling instead of halting, where the
machine allows it (root, ``/dev/cpu_dma_latency``), and with every thread of the process on
one CPU (Linux), so the thread that holds the GIL runs where the waiting one was. The caller
thread's voluntary context switches per error count its waits.
"""

from __future__ import annotations

import resource
import time
from contextlib import nullcontext
from functools import partial

from benchmarks import _idle
from benchmarks._harness import (
    NOT_AVAILABLE,
    Row,
    gc_off,
    interleave,
    log,
    median_interval,
    paired_ratio,
    us,
    verdict,
)
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
SIZES = {True: (2, 300), False: (12, 2000)}  # rounds of each kind, errors per round: quick, full
# Errors captured before each timed loop (the FlagsIntegration variant's goes on, up to twice
# as long, until the bound has refused one). The burst (200) refills during the other
# variants' rounds; at ~600 captures a second against 200 a second refilled it is spent
# after ~300.
WARM_UP = 400


def timed(n: int) -> tuple[float, float, float, float]:
    """Wall, caller-thread CPU and process-CPU nanoseconds per error over ``n`` captures
    (gc off), and the caller thread's voluntary context switches per error."""
    with gc_off():
        switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
        wall, thread, cpu = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
        capture_errors(n)
        cpu = time.process_time_ns() - cpu
        thread = time.thread_time_ns() - thread
        wall = time.perf_counter_ns() - wall
        switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - switches
    return wall / n, thread / n, cpu / n, switches / n


def ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    return sorted(a / b for a, b in zip(numerator, denominator))


def spread(numerator: list[float], denominator: list[float]) -> str:
    found = ratios(numerator, denominator)
    quarter = len(found) // 4
    return (
        f"min {found[0]:.3f}, middle half {found[quarter]:.3f}..{found[-1 - quarter]:.3f}, "
        f"max {found[-1]:.3f}"
    )


AS_IT_IS, POLLING, ONE_CPU = "as it is", "idle CPUs polling", "all threads on one CPU"
SETTINGS = {POLLING: _idle.polling, ONE_CPU: _idle.one_cpu}


def kinds() -> list[str]:
    """The kinds of round this machine can run, the budget's first."""
    return [AS_IT_IS] + [POLLING] * _idle.can_poll() + [ONE_CPU] * _idle.can_pin()


def run(quick: bool) -> list[Row]:
    each, n = SIZES[quick]
    kind = kinds()
    rounds = each * len(kind)
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

        queued: list[float] = []  # per timed flags loop: the share of its errors let through
        begun = {name: 0 for name in clients}

        def kind_of(round_index: int) -> str:
            return kind[round_index % len(kind)]

        def delivery_counts(name: str) -> int:
            delivery = integration.delivery if name == "flags" else None
            return delivery.rate_limited if delivery is not None else 0

        def variant(name: str) -> tuple[float, float, float, float]:
            setting = SETTINGS.get(kind_of(begun[name]))
            mode = setting() if setting is not None else nullcontext()
            begun[name] += 1
            with mode, using(clients[name], bare=name == "bare"):
                set_request_scope(None if name == "bare" else vendors.ld)
                limited = delivery_counts(name)
                capture_errors(WARM_UP)
                # A slow moment of the machine refills more of the burst during the warm-up.
                extra = 0
                while name == "flags" and delivery_counts(name) == limited and extra < WARM_UP:
                    capture_errors(50)
                    extra += 50
                before = delivery_counts(name)
                sample = timed(n)
                if name == "flags":
                    queued.append(1 - (delivery_counts(name) - before) / n)
                return sample

        log(
            f"{NAME}: {rounds} rounds x {n} errors per variant"
            + (", rounds taken in turn: machine " + " / ".join(kind) if len(kind) > 1 else "")
        )
        samples = interleave(
            {name: partial(variant, name) for name in clients},
            rounds,
            between=lambda _: time.sleep(SETTLE),
        )
        by_kind = {k: [i for i in range(rounds) if kind_of(i) == k] for k in (AS_IT_IS, POLLING, ONE_CPU)}
        as_is = by_kind[AS_IT_IS]

        def figure(k: int, picked: list[int]) -> dict[str, list[float]]:
            return {name: [found[i][k] for i in picked] for name, found in samples.items()}

        wall, thread, cpu, waits = (figure(k, as_is) for k in range(4))
        other = {k: figure(1, by_kind[k]) for k in (POLLING, ONE_CPU)}
        ratio = paired_ratio(thread["flags"], thread["bare"])
        ratio_alone = paired_ratio(thread["alone"], thread["bare"])
        wall_ratio = paired_ratio(wall["flags"], wall["bare"])
        wall_alone = paired_ratio(wall["alone"], wall["bare"])
        assert integration.delivery is not None
        counts = f"dropped={integration.delivery.dropped} "
        counts += f"rate_limited={getattr(integration.delivery, 'rate_limited', 0)}"
        seen = vendors.forwarders[0].stats
        share = (
            f"{med([queued[i] for i in as_is]):.0%} of the timed storm's errors let through the "
            f"bound (median of rounds); "
            f"{seen.forwarded / max(1, seen.errors):.0%} of all errors forwarded, warm-ups included"
        )
        stats = vendors.stats()
    finally:
        vendors.close()
        servers.close()
    title = "1 capture"
    cpu_text = ", ".join(f"{name} {us(med(values))}" for name, values in cpu.items())
    cpu_ratio = paired_ratio(cpu["flags"], cpu["bare"])
    cpu_alone = paired_ratio(cpu["alone"], cpu["bare"])
    return [
        Row(title, "bare sentry-sdk, caller-thread CPU", us(med(thread["bare"])) + "/error"),
        Row(title, "FlagsIntegration, no forwarders", us(med(thread["alone"])) + "/error",
            f"{ratio_alone:.3f}"),
        Row(title, "with FlagsIntegration (+3 forwarders)", us(med(thread["flags"])) + "/error",
            f"{ratio:.3f}", f"<= {BUDGET:.2f}", verdict(ratio <= BUDGET)),
        Row(title, "caller-thread wall: no forwarders / +3 forwarders", us(med(wall["bare"])) + " bare",
            f"{wall_alone:.3f} / {wall_ratio:.3f}"),
        Row(title, "process CPU, all threads: no forwarders / +3 forwarders", "",
            f"{cpu_alone:.3f} / {cpu_ratio:.3f}"),
        Row.note(title, f"process CPU per error, all threads: {cpu_text}; {share}"),
        Row.note(title, "per-round ratios of caller-thread CPU, with forwarders: "
                 + spread(thread["flags"], thread["bare"]) + "; 95% interval of their median "
                 + "{:.3f}..{:.3f}".format(*median_interval(ratios(thread["flags"], thread["bare"])))
                 + "; no forwarders: " + spread(thread["alone"], thread["bare"])),
        Row.note(title, "per-round ratios of wall time, with forwarders: "
                 + spread(wall["flags"], wall["bare"])),
        Row.note(title, f"our queue: {counts}; {stats}"),
        setting_row(title, POLLING, other[POLLING]),
        setting_row(title, ONE_CPU, other[ONE_CPU]),
        Row.note(title, "the caller thread's waits for the GIL (voluntary context switches) per "
                 "error: " + ", ".join(f"{name} {med(values):.2f}" for name, values in waits.items())
                 + f"; {_idle.describe()}"),
    ]  # fmt: skip


def setting_row(title: str, setting: str, thread: dict[str, list[float]]) -> Row:
    """Scenario 1's caller figure in the rounds of one setting; n/a where it cannot run."""
    figure = f"caller-thread CPU, {setting}: no forwarders / +3 forwarders"
    if not thread["bare"]:
        return Row(title, figure, "", "", result=NOT_AVAILABLE)
    alone = paired_ratio(thread["alone"], thread["bare"])
    flags = paired_ratio(thread["flags"], thread["bare"])
    return Row(title, figure, us(med(thread["bare"])) + " bare", f"{alone:.3f} / {flags:.3f}")
