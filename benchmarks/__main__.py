"""``python -m benchmarks [--quick] [--only NAME] [--strict] [--fast-vendors]``: run the scenarios.

Each scenario runs in a fresh child process (its variants interleaved inside it), so one
scenario's threads, SDK state and memory never leak into the next. Exit status is 0 even
when a budget is missed (MISSED is printed) unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata

from benchmarks._harness import ERROR, MISSED, Row, render
from benchmarks._vendors import VENDOR_SETTINGS_ENV, vendor_settings

SCENARIOS = (
    "capture",
    "ld_hook",
    "outage",
    "memory",
    "middleware",
    "vendor_calls",
    "of_hook",
    "forwarding",
    "lean_capture",
)
ROWS_PREFIX = "BENCH-ROWS "
TIMEOUT = {True: 150.0, False: 1800.0}  # per scenario: quick, full
PACKAGES = (
    "sentry-flags",
    "sentry-sdk",
    "launchdarkly-server-sdk",
    "openfeature-sdk",
    "splitio-client",
    "segment-analytics-python",
    "flask",
    "django",
)


def machine() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return (
        f"nproc {os.cpu_count()}, Python {platform.python_version()} ({platform.platform()})\n"
        + ", ".join(versions)
    )


def loopback_only() -> None:
    """Receivers live on 127.0.0.1: no proxy from the environment may get in the way."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"


def run_one(name: str, quick: bool) -> None:
    """Child side: run one scenario in this process and print its rows as JSON."""
    module = importlib.import_module(f"benchmarks.{name}")
    rows: list[Row] = module.run(quick)
    sys.stdout.write(ROWS_PREFIX + json.dumps([r.to_json() for r in rows]) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Vendor SDK threads may linger on shutdown; the numbers are out, so do not wait on them.
    os._exit(0)


def run_child(name: str, quick: bool) -> tuple[list[Row], float]:
    command = [sys.executable, "-m", "benchmarks", "--run-one", name] + (["--quick"] if quick else [])
    started = time.monotonic()
    try:
        done = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True, timeout=TIMEOUT[quick])
    except subprocess.TimeoutExpired:
        return [Row(name, "scenario timed out", f"> {TIMEOUT[quick]:.0f} s", result=ERROR)], TIMEOUT[quick]
    elapsed = time.monotonic() - started
    for line in done.stdout.splitlines():
        if line.startswith(ROWS_PREFIX):
            return [Row(**r) for r in json.loads(line[len(ROWS_PREFIX) :])], elapsed
    return [Row(name, f"scenario failed (exit {done.returncode}); see stderr", "", result=ERROR)], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and errors (CI; < 1 min)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run just this scenario")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument(
        "--fast-vendors",
        action="store_true",
        help="vendor clients with tests/conftest.py's short flush intervals instead of the SDK defaults",
    )
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    loopback_only()
    if args.fast_vendors:
        os.environ[VENDOR_SETTINGS_ENV] = "fast"  # the scenario processes inherit it
    if args.run_one:
        run_one(args.run_one, args.quick)
    started = time.monotonic()
    print(f"sentry-flags benchmarks ({'quick' if args.quick else 'full'} run)", flush=True)
    print(machine(), flush=True)
    print(vendor_settings(), flush=True)
    rows: list[Row] = []
    for name in args.only or SCENARIOS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        found, elapsed = run_child(name, args.quick)
        print(f"  {name} took {elapsed:.1f} s", file=sys.stderr, flush=True)
        rows += found
    print()
    print(render(rows))
    missed = [r for r in rows if r.result in (MISSED, ERROR)]
    print()
    if missed:
        print(f"{len(missed)} budget(s) MISSED or errored:")
        for row in missed:
            ratio = f", ratio {row.ratio}" if row.ratio else ""
            print(f"  {row.scenario}: {row.figure} = {row.median}{ratio} (budget {row.budget})")
    else:
        print("all budgets met")
    print(f"total {time.monotonic() - started:.1f} s")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
