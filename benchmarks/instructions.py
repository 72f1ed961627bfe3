"""Scenario 1 counted in instructions: what each thread executes per error, without noise.

``python -m benchmarks.instructions [--errors N]`` (needs valgrind; not one of the timed
scenarios, since it takes a few minutes and no wall clock). Runs scenario 1's bare and
FlagsIntegration (+3 forwarders) clients under ``valgrind --tool=callgrind
--separate-threads=yes``, once capturing nothing after the warm-up and once capturing N
errors, and reports the difference per error: the app thread's own instructions, and the
other threads' (our delivery worker with the vendor calls it makes, and the vendor SDKs'
own threads). Under valgrind the threads run one at a time and ~50x slower, so the bound
lets every error through: the other threads' figure is per *forwarded* error.

Instruction counts do not vary with the machine's load the way CPU time does; they do not
show what a thread loses to the others (caches, GIL hand-offs), which is what the timed
scenario's caller-thread CPU adds on top (docs/benchmarks.md, "Where the storm's cost goes").
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks._harness import Row, render

VARIANTS = ("bare", "flags")


def child(variant: str, n: int) -> None:
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

    servers = Servers()
    vendors = Vendors.start(servers)
    try:
        integrations = [flags_integration(vendors)] if variant == "flags" else []
        client = make_client(servers.urls["sentry_dsn"], integrations, transport=DropTransport)
        with using(client, bare=variant == "bare"):
            set_request_scope(vendors.ld if variant == "flags" else None)
            capture_errors(20)  # warm-up: imports, caches, the vendor clients' first calls
            capture_errors(n)
            client.flush(timeout=30)
    finally:
        vendors.close()
        servers.close()


def counts(variant: str, n: int, folder: str) -> tuple[int, int]:
    """(app thread, every other thread) instructions of one run under callgrind."""
    out = os.path.join(folder, f"{variant}.{n}")
    subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable, "-m", "benchmarks.instructions", "--child", variant, str(n),
        ],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    main, others = 0, 0
    for path in glob.glob(out + "-*"):
        with open(path) as file:
            total = next(int(line.split()[1]) for line in file if line.startswith("summary:"))
        if path.endswith("-01"):  # callgrind numbers threads in start order: 01 is main
            main += total
        else:
            others += total
    return main, others


def run(n: int) -> list[Row]:
    folder = tempfile.mkdtemp(prefix="sentry-flags-callgrind-")
    try:
        per_error = {}
        for variant in VARIANTS:
            main0, others0 = counts(variant, 0, folder)
            main1, others1 = counts(variant, n, folder)
            per_error[variant] = ((main1 - main0) / n, (others1 - others0) / n)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    bare_main, bare_others = per_error["bare"]
    flags_main, flags_others = per_error["flags"]
    title = "1 capture (instructions)"
    return [
        Row(title, "bare sentry-sdk, app thread", f"{bare_main / 1e3:.0f}k instr/error"),
        Row(title, "FlagsIntegration (+3 forwarders), app thread", f"{flags_main / 1e3:.0f}k instr/error",
            f"{flags_main / bare_main:.3f}"),
        Row(title, "other threads per forwarded error: bare / FlagsIntegration",
            f"{bare_others / 1e3:.0f}k / {flags_others / 1e3:.0f}k instr"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--errors", type=int, default=200)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("benchmarks.instructions needs valgrind (Debian: apt-get install valgrind)")
    print(render(run(args.errors)))


if __name__ == "__main__":
    main()
