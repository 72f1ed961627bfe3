"""Scenarios 1 and 9 counted in instructions: what each thread executes per error, without noise.

``python -m benchmarks.instructions [--errors N] [--only capture|lean_capture]`` (needs
valgrind; not one of the timed scenarios: it takes ~15 minutes and no wall clock). Runs
each scenario's bare, control, FlagsIntegration-alone and FlagsIntegration (+3 forwarders)
clients under ``valgrind --tool=callgrind --separate-threads=yes``, one process per variant. The
process marks the N errors it captures (after a warm-up) by calling ``os.getppid()`` before
and after them, and callgrind dumps the capturing thread's counts at each mark
(``--dump-before=getppid``), so its figure is those N errors and nothing else: startup,
warm-up and shutdown fall outside. The garbage collector is off between the marks, as in
the timed loops, and the capturing thread keeps the GIL (no switch interval) but while
sentry-sdk reads the frames' source files: its figure is its own work, the same from run to
run within ~5k instructions an error in scenario 1 (four frames' files read), ~2k in 9.

**The verdict** (issue 21): our instructions on the capturing thread per error, at most a
third of what they were before that issue's work (``BUDGET``). Ours are FlagsIntegration
(+3 forwarders) minus a control: a client with an inert integration that has our three hooks
on that thread (a global event processor, before_send, custom_repr), each doing nothing
(``_vendors.InertIntegration``). What the control spends more than bare sentry-sdk is
sentry-sdk's own work for any such integration (its name in every event's
``sdk.integrations``, which its serializer walks; calling the hooks), printed on a row of its
own. Our share of the capturing thread's instructions (ours / bare) is printed beside ours.
Under valgrind the bound lets every error through; a fifth variant has it refuse every
one, as it does most of a timed storm's, and shows what such an error costs (information).
The other threads' figure (our delivery worker with the vendor calls it
makes, and the vendor SDKs' own threads) is per *forwarded* error: under valgrind the
threads run one at a time and ~50x slower, so the bound lets every error through. callgrind
dumps only the marking thread at a mark, so the other threads' figure is their whole
lifetime's count less that of a run capturing no errors between the marks.

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


def child(scenario: str, variant: str, n: int) -> None:
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
        using,
    )

    lean = scenario == "lean_capture"
    capture = capture_lean_errors if lean else capture_errors
    servers = Servers()
    vendors = Vendors.start(servers)
    try:
        # As in the timed scenario: the forwarding integration hooks the LD client, whose
        # evaluation gives the FlagsIntegration-alone client its context too.
        integration = flags_integration(vendors) if variant != "hooks" else None
        integrations: list[Any] = []
        if variant == "hooks":
            integrations = [InertIntegration()]
        elif variant != "bare":
            integrations = [flags_integration(None) if variant == "alone" else integration]
        client = make_client(
            servers.urls["sentry_dsn"], integrations, transport=DropTransport, default_integrations=not lean
        )
        if variant == "hooks":
            InertIntegration.hook(client)
        with using(client, bare=variant in ("bare", "hooks")):
            set_request_scope(None if variant in ("bare", "hooks") else vendors.ld)
            capture(20)  # warm-up: imports, caches, the vendor clients' first calls
            client.flush(timeout=30)
            if variant == "refused":
                refuse_all(integration)
            gc.collect()
            gc.disable()
            # No forced hand-off of the GIL between the marks: how often the other threads
            # take it depends on the wall clock, and each hand-off costs the capturing thread
            # instructions of its own (they show in the timed scenarios instead).
            switch = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
            os.getppid()  # mark 1: the errors start
            capture(n)
            os.getppid()  # mark 2: the errors end (the capturing thread's figure)
            sys.setswitchinterval(switch)
            gc.enable()
            client.flush(timeout=30)
            os.getppid()  # mark 3: their background work is done (the other threads')
        delivery = integration.delivery if integration is not None else None
        queued = n if variant == "flags" and delivery is not None and not delivery.rate_limited else 0
        print(COUNTS + json.dumps({"forwarded": queued}), flush=True)
    finally:
        vendors.close()
        servers.close()


def refuse_all(integration: Any) -> None:
    """From now on the bound refuses every error, as it does most of a storm's (the timed
    scenarios' storm lets ~200 a second through; under valgrind none would be refused)."""
    from sentry_flags._rate import RateBound

    bound = RateBound(1e-9, burst=1.0)
    bound.take(time.monotonic())  # its one token: none comes back
    integration.delivery._bucket = bound  # private: the benchmark's own way in


@dataclass(frozen=True)
class Count:
    """One variant's N errors: the capturing thread's instructions, the others', forwarded."""

    main: int
    others: int
    forwarded: int


def counts(scenario: str, variant: str, n: int, folder: str) -> Count:
    out = os.path.join(folder, f"{scenario}.{variant}.{n}")
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts in every run
    done = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--dump-before={MARK}",
            f"--callgrind-out-file={out}",
            sys.executable, "-m", "benchmarks.instructions", "--child", scenario, variant, str(n),
        ],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    found = [json.loads(line[len(COUNTS) :]) for line in done.stdout.splitlines() if line.startswith(COUNTS)]
    dumps: dict[int, dict[int, int]] = {}
    for path in glob.glob(glob.escape(out) + ".*-*"):
        match = re.fullmatch(r"\.(\d+)-(\d+)", path[len(out) :])
        if match is None:
            continue
        with open(path) as file:
            total = next(int(line.split()[1]) for line in file if line.startswith("summary:"))
        dumps.setdefault(int(match.group(1)), {})[int(match.group(2))] = total
    if sorted(dumps) != [1, 2, 3] or not found:
        raise RuntimeError(f"{scenario}/{variant}: expected 3 marks, got dumps {sorted(dumps)}")
    # callgrind numbers threads in start order: 1 is the main (capturing) thread. A mark
    # dumps (and zeroes) that thread only; the others are dumped once, when the process ends.
    others = 0
    for path in glob.glob(glob.escape(out) + "-*"):
        thread = int(path.rsplit("-", 1)[1])
        if thread != 1:
            with open(path) as file:
                others += next(int(line.split()[1]) for line in file if line.startswith("summary:"))
    return Count(dumps[2].get(1, 0), others, found[0]["forwarded"])


def rows(scenario: str, found: dict[str, Count], idle: Count, n: int) -> list[Row]:
    """``found``: each variant's N errors; ``idle``: the forwarding variant capturing none."""
    title = TITLES[scenario]
    bare = found["bare"].main / n
    hooks = found["hooks"].main / n - bare
    alone = found["alone"].main / n - bare - hooks
    ours = found["flags"].main / n - bare - hooks
    refused = found["refused"].main / n - bare - hooks
    budget = BUDGET[scenario]
    background = (found["flags"].others - idle.others) / max(1, found["flags"].forwarded)
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
        Row.note(title, f"{n} errors per variant, {found['flags'].forwarded} forwarded; the app's "
                 f"capturing thread pays ours and sentry-sdk's: {(ours + hooks) / 1e3:+,.1f}k "
                 f"({(ours + hooks) / bare:.2%}); budget: a third of {BEFORE[scenario] / 1e3:,.1f}k, "
                 "ours before issue 21"),
    ]  # fmt: skip


def run(n: int, scenarios: tuple[str, ...] = SCENARIOS) -> list[Row]:
    folder = tempfile.mkdtemp(prefix="sentry-flags-callgrind-")
    try:
        found: list[Row] = []
        for scenario in scenarios:
            per_variant = {variant: counts(scenario, variant, n, folder) for variant in VARIANTS}
            found += rows(scenario, per_variant, counts(scenario, "flags", 0, folder), n)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--errors", type=int, default=200)
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run just this scenario")
    parser.add_argument("--child", nargs=3, metavar=("SCENARIO", "VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        os._exit(0)  # vendor SDK threads may linger; the counts are out
    if shutil.which("valgrind") is None:
        sys.exit("benchmarks.instructions needs valgrind (Debian: apt-get install valgrind)")
    print(render(run(args.errors, tuple(args.only or SCENARIOS))))


if __name__ == "__main__":
    main()
