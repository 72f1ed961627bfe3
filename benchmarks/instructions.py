"""Scenarios 1 and 9 counted in instructions: what each thread executes per error, without noise.

``python -m benchmarks.instructions [--errors N] [--rounds R] [--only capture|lean_capture]``
(needs valgrind; not one of the timed scenarios: it takes ~10 minutes and no wall clock). Runs
each scenario's bare, control, FlagsIntegration-alone and FlagsIntegration (+3 forwarders)
clients under ``valgrind --tool=callgrind --separate-threads=yes``, all in one process: the
variants take turns, R rounds of N/R errors each (a fresh seeded order every round), so each
variant's N errors are spread over the whole run. The process marks each block by calling
``os.getppid()`` before and after it, and callgrind dumps the capturing thread's counts at
each mark (``--dump-before=getppid``), so a variant's figure is its blocks and nothing else:
startup, warm-up, switching clients and shutdown fall outside. The garbage collector is off
between the marks, as in the timed loops, and the capturing thread keeps the GIL (no switch
interval) but while sentry-sdk reads the frames' source files.

Why one process: the same code counted in two processes differs by up to ~0.2% of bare
sentry-sdk's instructions an error (~10-25k in scenario 1), almost all of it in CPython's
small-object allocator freeing memory (``_PyObject_Free``: how the process's memory happens
to be laid out), while blocks of one process agree within ~2k. Comparing variants inside
one process cancels that; a variant in a process of its own (this module until
2026-12-07) could gain or lose the whole difference.

**The verdict** (issue 21): our instructions on the capturing thread per error, at most a
third of what they were before that issue's work (``BUDGET``). Ours are FlagsIntegration
(+3 forwarders) minus a control: a client with an inert integration that has our three hooks
on that thread (a global event processor, before_send, custom_repr), each doing nothing
(``_vendors.InertIntegration``). What the control spends more than bare sentry-sdk is
sentry-sdk's own work for any such integration (its name in every event's
``sdk.integrations``, which its serializer walks; calling the hooks), printed on a row of its
own. Our share of the capturing thread's instructions (ours / bare) is printed beside ours.
Under valgrind the bound lets every error through; a fifth variant (the same client, its
bound swapped for one that refuses every error) shows what an error the bound refuses costs,
as most of a timed storm's are (information).
The other threads' figure (our delivery worker with the vendor calls it
makes, and the vendor SDKs' own threads) is per *forwarded* error: under valgrind the
threads run one at a time and ~50x slower, so the bound lets every error through. callgrind
dumps only the marking thread at a mark, so the other threads' figure is their whole
lifetime's count less that of a run of the same program capturing no errors between the
marks.

Instruction counts do not vary with the machine's load the way CPU time does; they do not
show what a thread loses to the others (caches, GIL hand-offs), which is what the timed
scenarios' caller-thread CPU adds on top (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from benchmarks._harness import Row, render, verdict

VARIANTS = ("bare", "hooks", "alone", "flags", "refused")
SCENARIOS = ("capture", "lean_capture")
TITLES = {"capture": "1 capture (instructions)", "lean_capture": "9 lean capture (instructions)"}
# Our instructions on the capturing thread per error (FlagsIntegration with forwarders minus
# the control) before issue 21: 8431372's src/ run by this module (Python 3.11.7, sentry-sdk
# 2.76.0; the control +39.6k and +32.0k over bare). The budget is a third of each.
BEFORE = {"capture": 146_700, "lean_capture": 138_900}
BUDGET = {name: before / 3 for name, before in BEFORE.items()}
MARK = "getppid"  # the libc function callgrind dumps before; nothing else here calls it
COUNTS = "BENCH-COUNTS "
SWITCH_INTERVAL = 1000.0  # s: longer than the marked errors take under valgrind
# Blocks a variant: the variants take turns in one process (see the module's docstring).
ROUNDS = 10
ORDER_SEED = 21


def child(scenario: str, n: int, rounds: int) -> None:
    """Every variant in this one process, in turns: ``rounds`` blocks of ``n / rounds`` errors
    each, the order rotated every round, each block between two marks (its own dump)."""
    import sentry_sdk
    import sentry_sdk.scope

    from benchmarks._vendors import (
        DropTransport,
        InertIntegration,
        Servers,
        Vendors,
        capture_errors,
        capture_lean_errors,
        flags_integration,
        make_client,
        set_request_scope,
    )
    from benchmarks._vendors import _inert_processor as inert_processor
    from sentry_flags._stage import process_event

    lean = scenario == "lean_capture"
    capture = capture_lean_errors if lean else capture_errors
    servers = Servers()
    vendors = Vendors.start(servers)
    try:
        dsn = servers.urls["sentry_dsn"]
        # As in the timed scenario: the forwarding integration hooks the LD client, whose
        # evaluation gives the FlagsIntegration-alone client its context too.
        integration = flags_integration(vendors)
        made: dict[str, list[Any]] = {
            "bare": [],
            "hooks": [InertIntegration()],
            "alone": [flags_integration(None)],
            "flags": [integration],
        }
        clients = {
            variant: make_client(dsn, given, transport=DropTransport, default_integrations=not lean)
            for variant, given in made.items()
        }
        clients["refused"] = clients["flags"]
        delivery = integration.delivery
        assert delivery is not None
        InertIntegration.hook(clients["hooks"])
        processors: list[Any] = sentry_sdk.scope.global_event_processors
        hooked = {"bare": (), "hooks": (inert_processor,)}
        ours = delivery._bucket  # private: the benchmark's own way in
        refusing = refusing_bound()
        # sentry-sdk runs `git rev-parse` to find the release at each init, which the clients
        # made before record as breadcrumbs: a process of one client has none.
        sentry_sdk.get_isolation_scope().clear_breadcrumbs()
        sentry_sdk.get_current_scope().clear_breadcrumbs()
        scopes: dict[str, Any] = {}
        for variant in VARIANTS:
            activate(clients[variant], processors, hooked.get(variant, (process_event,)))
            delivery._bucket = refusing if variant == "refused" else ours
            if variant == "refused":  # the forwarding client's request: only its bound differs
                with sentry_sdk.scope.use_isolation_scope(scopes["flags"]):
                    capture(20)
                continue
            with sentry_sdk.isolation_scope() as scope:
                set_request_scope(None if variant in ("bare", "hooks") else vendors.ld)
                capture(20)  # warm-up: imports, caches, the vendor clients' first calls
            scopes[variant] = scope
        scopes["refused"] = scopes["flags"]
        for client in clients.values():
            client.flush(timeout=30)
        block = n // rounds
        # A fresh order every round (seeded: the same in every run), so that no variant
        # always follows the same one.
        shuffled = random.Random(ORDER_SEED)
        refused_before, dropped_before = delivery.rate_limited, delivery.dropped
        gc.collect()
        gc.disable()
        # No forced hand-off of the GIL between the marks: how often the other threads
        # take it depends on the wall clock, and each hand-off costs the capturing thread
        # instructions of its own (they show in the timed scenarios instead).
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        marks: list[str] = []
        for _ in range(rounds if block else 0):
            order = list(VARIANTS)
            shuffled.shuffle(order)
            for variant in order:
                activate(clients[variant], processors, hooked.get(variant, (process_event,)))
                delivery._bucket = refusing if variant == "refused" else ours
                with sentry_sdk.scope.use_isolation_scope(scopes[variant]):
                    marks += ("-", variant)  # the labels of the next two marks
                    os.getppid()  # a block starts
                    capture(block)
                    os.getppid()  # ...and ends: its dump is this variant's
        sys.setswitchinterval(switch)
        gc.enable()
        delivery._bucket = ours
        for client in clients.values():
            client.flush(timeout=30)
        marks.append("-")
        os.getppid()  # their background work is done (the other threads' figure)
        # Every error of the forwarding blocks is queued unless the bound (or a full queue)
        # refused some of them too.
        refused = delivery.rate_limited - refused_before + delivery.dropped - dropped_before
        forwarded = block * rounds if refused == block * rounds else 0
        print(COUNTS + json.dumps({"forwarded": forwarded, "marks": marks}), flush=True)
    finally:
        vendors.close()
        servers.close()


def activate(client: Any, processors: list[Any], wanted: tuple[Any, ...]) -> None:
    """Make ``client`` current, with just the ``wanted`` global event processors of ours and
    the control's (sentry-sdk keeps each for the whole process once any client had it)."""
    import sentry_sdk

    from benchmarks._vendors import _inert_processor as inert
    from sentry_flags._stage import process_event

    sentry_sdk.get_global_scope().set_client(client)
    for processor in (process_event, inert):
        if processor in processors and processor not in wanted:
            processors.remove(processor)
        elif processor in wanted and processor not in processors:
            processors.append(processor)


def refusing_bound() -> Any:
    """A bound that refuses every error from now on, as it does most of a storm's (the timed
    scenarios' storm lets ~200 a second through; under valgrind none would be refused)."""
    from sentry_flags._rate import RateBound

    bound = RateBound(1e-9, burst=1.0)
    bound.take(time.monotonic())  # its one token: none comes back
    return bound


@dataclass(frozen=True)
class Run:
    """One process's N errors a variant: the capturing thread's instructions in each
    variant's blocks, the other threads' over the whole run, and the errors forwarded."""

    main: dict[str, int]
    others: int
    forwarded: int


def counts(scenario: str, n: int, rounds: int, folder: str) -> Run:
    out = os.path.join(folder, f"{scenario}.{n}")
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts in every run
    done = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--dump-before={MARK}",
            f"--callgrind-out-file={out}",
            sys.executable, "-m", "benchmarks.instructions", "--child", scenario, str(n), str(rounds),
        ],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    found = [json.loads(line[len(COUNTS) :]) for line in done.stdout.splitlines() if line.startswith(COUNTS)]
    if not found:
        raise RuntimeError(f"{scenario}: the child printed no counts")
    marks: list[str] = found[0]["marks"]
    # callgrind numbers threads in start order: 1 is the main (capturing) thread. A mark
    # dumps (and zeroes) that thread only, as part k for the k-th mark; the others are
    # dumped once, when the process ends.
    dumps: dict[int, int] = {}
    others = 0
    for path in glob.glob(glob.escape(out) + "*-*"):
        match = re.fullmatch(r"(?:\.(\d+))?-(\d+)", path[len(out) :])
        if match is None:
            continue
        with open(path) as file:
            total = next(int(line.split()[1]) for line in file if line.startswith("summary:"))
        thread = int(match.group(2))
        if match.group(1) is not None and thread == 1:
            dumps[int(match.group(1))] = total
        elif match.group(1) is None and thread != 1:
            others += total
    if sorted(dumps) != list(range(1, len(marks) + 1)):
        raise RuntimeError(f"{scenario}: expected {len(marks)} marks, got dumps {sorted(dumps)}")
    main = dict.fromkeys(VARIANTS, 0)
    for part, label in enumerate(marks, start=1):
        if label in main:
            main[label] += dumps[part]
    return Run(main, others, found[0]["forwarded"])


def rows(scenario: str, found: Run, idle: Run, n: int) -> list[Row]:
    """``found``: N errors a variant; ``idle``: the same process capturing none."""
    title = TITLES[scenario]
    per_error = {variant: count / n for variant, count in found.main.items()}
    bare = per_error["bare"]
    hooks = per_error["hooks"] - bare
    alone = per_error["alone"] - bare - hooks
    ours = per_error["flags"] - bare - hooks
    refused = per_error["refused"] - bare - hooks
    budget = BUDGET[scenario]
    background = (found.others - idle.others) / max(1, found.forwarded)
    return [
        Row(title, "bare sentry-sdk, capturing thread", f"{bare / 1e3:,.0f}k instr/error"),
        Row(title, "sentry-sdk's for any integration with our three hooks, doing nothing",
            f"{hooks / 1e3:+,.1f}k instr/error", f"{hooks / bare:.2%}"),
        Row(title, "ours on the capturing thread: FlagsIntegration, no forwarders",
            f"{alone / 1e3:+,.1f}k instr/error", f"{alone / bare:.2%}"),
        Row(title, "ours on the capturing thread: with FlagsIntegration (+3 forwarders)",
            f"{ours / 1e3:+,.1f}k instr/error", f"{ours / bare:.2%}",
            f"<= {budget / 1e3:,.1f}k", verdict(ours <= budget)),
        Row(title, "ours for an error the bound refuses (most of a storm's), +3 forwarders",
            f"{refused / 1e3:+,.1f}k instr/error", f"{refused / bare:.2%}"),
        Row(title, "other threads per forwarded error (our worker, the vendor SDKs' threads)",
            f"{background / 1e3:,.0f}k instr"),
        Row.note(title, f"{n} errors per variant, {found.forwarded} forwarded; the app's "
                 f"capturing thread pays ours and sentry-sdk's: {(ours + hooks) / 1e3:+,.1f}k "
                 f"({(ours + hooks) / bare:.2%}); budget: a third of {BEFORE[scenario] / 1e3:,.1f}k, "
                 "ours before issue 21"),
    ]  # fmt: skip


def run(n: int, scenarios: tuple[str, ...] = SCENARIOS, rounds: int = ROUNDS) -> list[Row]:
    folder = tempfile.mkdtemp(prefix="sentry-flags-callgrind-")
    try:
        found: list[Row] = []
        for scenario in scenarios:
            idle = counts(scenario, 0, rounds, folder)
            found += rows(scenario, counts(scenario, n, rounds, folder), idle, n)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--errors", type=int, default=200, help="errors a variant (default 200)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"blocks a variant (default {ROUNDS})")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run just this scenario")
    parser.add_argument("--child", nargs=3, metavar=("SCENARIO", "N", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        os._exit(0)  # vendor SDK threads may linger; the counts are out
    if shutil.which("valgrind") is None:
        sys.exit("benchmarks.instructions needs valgrind (Debian: apt-get install valgrind)")
    if args.rounds < 1 or args.errors % args.rounds:
        sys.exit("--errors must be a multiple of --rounds")
    print(render(run(args.errors, tuple(args.only or SCENARIOS), args.rounds)))


if __name__ == "__main__":
    main()
