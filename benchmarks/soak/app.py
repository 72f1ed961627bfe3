"""The WSGI app the soak's gunicorn preloads: the Flask example, plus what the soak counts.

Configured from the environment, as a deployment would be: examples/vendors.py reads the
vendor keys and URLs (the soak points them at its receivers and sets ``SPLIT_PREFORKED=1``
so that ``factory.resume()`` works in each worker), ``SOAK_REPORT_DIR`` is where each worker
writes its report, and ``SOAK_BASELINE=1`` builds the same app without sentry-flags.

What the soak adds to the example app, none of it in sentry-flags' path:

* a Sentry tag ``soak_request`` with the load generator's request id, so every event at the
  Sentry receiver can be matched to the request that raised it, and ``soak_worker`` (the
  worker's pid, on the global scope) on every event the worker sends, vendor SDK log
  events included;
* the worker's pid in the ``X-Soak-Worker`` response header;
* its own count of requests and of the errors Flask raised (sentry-sdk captures those from
  the same ``got_request_exception`` signal), kept apart from sentry-flags' own counters.

The forwarders are the example's own (``vendors_from_env()``: Split with two identities and
culprit events, LaunchDarkly, Segment); stats count per error, whatever the calls per error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import sentry_sdk
from flask import Flask, Response, got_request_exception, request

from sentry_flags import FlagsIntegration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REQUEST_HEADER = "X-Soak-Request"  # the load generator's names (benchmarks/soak/load.py)
WORKER_HEADER = "X-Soak-Worker"
REQUEST_TAG = "soak_request"
WORKER_TAG = "soak_worker"
# What the example's ignore_errors drops: these errors are raised, answered 500 and sent nowhere.
IGNORED_PATHS = frozenset({"/resize"})
FLUSH_TIMEOUT = 10.0
CLOSE_TIMEOUT = 15.0

BASELINE = os.environ.get("SOAK_BASELINE") == "1"
REPORT_DIR = Path(os.environ.get("SOAK_REPORT_DIR", "."))


def _load_example() -> ModuleType:
    # The example is a script directory, not a package: load it as the demo does.
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("soak_flask_example", EXAMPLES / "flask_app" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()
import vendors as example_vendors  # type: ignore[import-not-found]  # noqa: E402  (on sys.path once the example is loaded)


def build_vendors() -> Any:
    if BASELINE:  # the same vendor clients, no forwarders
        return example_vendors.Vendors(
            example_vendors.launchdarkly_client(),
            example_vendors.split_factory(),
            example_vendors.segment_client(),
        )
    return example_vendors.vendors_from_env()


class Counts:
    """This process's own count of what it served (a sync worker serves one request at a time)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.raised: Counter[str] = Counter()

    @property
    def kept(self) -> int:
        """Errors captured and not dropped by the example's filters."""
        return sum(n for path, n in self.raised.items() if path not in IGNORED_PATHS)


VENDORS = build_vendors()
COUNTS = Counts()
app: Flask = example.create_app(VENDORS, with_sentry_flags=not BASELINE)


@app.before_request
def _tag_request() -> None:
    COUNTS.requests[request.path] += 1
    rid = request.headers.get(REQUEST_HEADER)
    if rid:
        sentry_sdk.set_tag(REQUEST_TAG, rid)


@app.after_request
def _name_worker(response: Response) -> Response:
    response.headers[WORKER_HEADER] = str(os.getpid())
    return response


def _count_error(sender: Flask, exception: BaseException, **extra: Any) -> None:
    COUNTS.raised[request.path] += 1


got_request_exception.connect(_count_error, app)


# -- gunicorn hooks (benchmarks/soak/gunicorn_conf.py calls these) ----------------------


def worker_started() -> None:
    """In each worker after the README's post-fork steps."""
    global COUNTS
    COUNTS = Counts()  # the master served nothing, but a worker counts only its own
    sentry_sdk.get_global_scope().set_tag(WORKER_TAG, str(os.getpid()))
    split = VENDORS.split_factory
    info = {"pid": os.getpid(), "split_ready": bool(split is not None and split.ready)}
    (REPORT_DIR / f"started-{os.getpid()}.json").write_text(json.dumps(info))


def _forwarder_stats() -> dict[str, dict[str, Any]]:
    stats = {}
    for forwarder in VENDORS.forwarders:
        s = forwarder.stats
        stats[forwarder.vendor] = {
            "forwarded": s.forwarded,
            "failed": s.failed,
            "rate_limited": s.rate_limited,
            "dropped": s.dropped,
            "skipped": dict(s.skipped),
            "skipped_total": s.skipped_total,
            # The accounting identity being added to Stats: every error that reached the
            # forwarder. None until then (the soak uses its own count instead).
            "errors": getattr(s, "errors", None),
        }
    return stats


def _close_vendors() -> None:
    # What the example's Vendors.close() does, but waiting for Split to post its queue
    # (destroy() alone returns at once) so the receivers show what the vendors got.
    ld, split, segment = VENDORS.launchdarkly, VENDORS.split_factory, VENDORS.segment
    if ld is not None:
        ld.close()
    if split is not None:
        destroyed = threading.Event()
        split.destroy(destroyed)
        destroyed.wait(5)
    if segment is not None:
        segment.shutdown()


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _threads_cpu_s() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (Linux /proc).

    The request thread is what is left of the process's total: in a forked child,
    ``threading.main_thread().native_id`` still names the parent's thread.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    times = os.times()
    segment_consumers = list(getattr(VENDORS.segment, "consumers", None) or [])
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread is threading.main_thread():
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        # Segment's consumers are unnamed ("Thread-N"); every other SDK names its threads.
        name = "segment.consumer" if thread in segment_consumers else thread.name
        found[name] = round(found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks, 2)
    found["requests (main thread)"] = round(times.user + times.system - sum(found.values()), 2)
    return found


def worker_exiting() -> None:
    """In each worker as gunicorn stops it (SIGTERM, graceful): flush, close, report."""
    started = time.monotonic()
    threads_cpu = _threads_cpu_s()  # before closing: the vendor clients' threads end there
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)  # also drains sentry-flags' queue
    # Vendor clients can take long to close against an endpoint that just recovered
    # (Segment's shutdown() is an unbounded queue.join()): bounded, on a daemon thread.
    closer = threading.Thread(target=_close_vendors, name="soak-close-vendors", daemon=True)
    closer.start()
    closer.join(CLOSE_TIMEOUT)
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)  # vendor SDK log events from closing, if any
    integration: Optional[FlagsIntegration] = sentry_sdk.get_client().get_integration(FlagsIntegration)
    delivery = integration.delivery if integration is not None else None
    report = {
        "pid": os.getpid(),
        "baseline": BASELINE,
        "requests": dict(COUNTS.requests),
        "raised": dict(COUNTS.raised),
        "kept": COUNTS.kept,
        "stats": _forwarder_stats(),
        "delivery": None
        if delivery is None
        else {"dropped": delivery.dropped, "rate_limited": delivery.rate_limited},
        "vendors_closed": not closer.is_alive(),
        "exit_seconds": round(time.monotonic() - started, 2),
        "rss_kb": _rss_kb(),
        "threads_cpu_s": threads_cpu,
    }
    (REPORT_DIR / f"worker-{os.getpid()}.json").write_text(json.dumps(report))
