"""Real vendor SDK clients aimed at the receivers process, and the Sentry set-ups compared.

The vendor clients run with their SDKs' default flush intervals, timeouts and retries, as
an app would configure them: only what pointing them at 127.0.0.1 needs is set (the URLs,
no streaming connection, LaunchDarkly flags from a TestData source). ``--fast-vendors``
(environment ``SENTRY_FLAGS_BENCH_VENDORS=fast``) uses the settings of
``tests/conftest.py`` instead: flushes every 0.05-0.2 s and 2 s timeouts, 35 small posts a
second, far more than any app would configure (pessimistic; the runs recorded before the
fixes used them). Vendor loggers are set to CRITICAL so that outage scenarios do not flood
the output (and, through sentry-sdk's logging integration, turn into extra Sentry events);
the same holds for every variant.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

import sentry_sdk
import sentry_sdk.scope
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations import Integration
from sentry_sdk.transport import Transport

from sentry_flags import FlagsIntegration
from sentry_flags._stage import process_event
from sentry_flags.forwarders import Forwarder, LaunchDarklyForwarder, SegmentForwarder, SplitForwarder
from sentry_flags.testing.receivers import join_threads

# sentry_flags too: its not-forwarded warnings, which every storm here triggers by design.
VENDOR_LOGGERS = ("ldclient", "splitio", "segment", "analytics", "backoff", "urllib3", "sentry_flags")

IGNORE_ERRORS: list[Any] = [
    *(f"NoSuchError{i}: never raised" for i in range(10)),
    *(re.compile(rf"^Unrelated{i}Error\b") for i in range(10)),
]
DENY_URLS = [f"/never/matches/{i}" for i in range(5)] + [
    re.compile(rf"^https?://cdn{i}\.example\.com/") for i in range(5)
]
INCLUDE_PATHS = [f"mycompany_pkg{i}" for i in range(9)] + ["benchmarks"]

USER = {"id": "user-42", "orgId": "org-7"}

VENDOR_SETTINGS_ENV = "SENTRY_FLAGS_BENCH_VENDORS"


def fast_vendors() -> bool:
    """True when the vendor clients use the tests' short intervals (``--fast-vendors``)."""
    return os.environ.get(VENDOR_SETTINGS_ENV) == "fast"


def vendor_settings() -> str:
    if fast_vendors():
        return (
            "vendor clients: tests/conftest.py settings (--fast-vendors: LD flush 0.1 s, "
            "Split push 0.2 s, Segment upload 0.05 s, 2 s timeouts)"
        )
    return (
        "vendor clients: SDK defaults (LD flush 5 s, Split push 10 s, Segment upload 0.5 s; "
        "default timeouts and retries)"
    )


def quiet_vendor_loggers() -> None:
    for name in VENDOR_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


class DropTransport(Transport):
    """A Sentry transport that drops every envelope: measures the SDK, not the network."""

    def capture_envelope(self, envelope: Envelope) -> None:
        pass


class Servers:
    """The receivers process (``benchmarks._servers``); ``set_mode`` switches all of them."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._servers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.urls: dict[str, Any] = json.loads(self._proc.stdout.readline())

    def set_mode(self, mode: str) -> None:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(f"mode {mode}\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ok":
            raise RuntimeError("receivers process did not answer")

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Vendors:
    """Real LaunchDarkly, Split and Segment clients; LD flags come from a TestData source."""

    servers: Servers
    ld: Any
    split_factory: Any
    segment: Any
    forwarders: list[Forwarder] = field(default_factory=list)

    @classmethod
    def start(cls, servers: Servers) -> Vendors:
        from ldclient.client import LDClient
        from ldclient.config import Config, HTTPConfig
        from segment.analytics import Client as SegmentClient
        from splitio import get_factory

        quiet_vendor_loggers()
        fast = fast_vendors()
        url = servers.urls["ld_url"]
        ld_fast: dict[str, Any] = (
            {"flush_interval": 0.1, "http": HTTPConfig(connect_timeout=2, read_timeout=2)} if fast else {}
        )
        ld = LDClient(
            Config(
                "sdk-bench-key",
                base_uri=url,
                events_uri=url,
                stream_uri=url,
                stream=False,
                diagnostic_opt_out=True,
                update_processor_class=bench_flags(),
                **ld_fast,
            ),
            start_wait=5,
        )
        split_config: dict[str, Any] = {
            "streamingEnabled": False,  # no streaming server on loopback
            "machineIp": "127.0.0.1",
            "machineName": "bench",
        }
        if fast:
            split_config.update(
                featuresRefreshRate=1,
                segmentsRefreshRate=1,
                eventsPushRate=0.2,
                impressionsMode="debug",
                impressionsRefreshRate=1,
                connectionTimeout=2000,
            )
        split_factory = get_factory("split-bench-key", config=split_config, **servers.urls["split"])
        split_factory.block_until_ready(10)
        join_threads("SDKInitializer", timeout=5)  # see tests/conftest.py
        segment_fast: dict[str, Any] = (
            {"upload_interval": 0.05, "max_retries": 1, "timeout": 2,
             "max_total_backoff_duration": 2, "max_rate_limit_duration": 2}
            if fast
            else {}
        )  # fmt: skip
        segment = SegmentClient(
            "segment-bench-key",
            host=servers.urls["segment_host"],
            sync_mode=False,
            **segment_fast,
        )
        vendors = cls(servers, ld, split_factory, segment)
        vendors.forwarders = [
            SplitForwarder(split_factory.client()),
            LaunchDarklyForwarder(ld),
            SegmentForwarder(segment),
        ]
        return vendors

    def stats(self) -> str:
        parts = []
        for forwarder in self.forwarders:
            s = forwarder.stats
            skipped = ",".join(f"{k}={v}" for k, v in sorted(s.skipped.items())) or "0"
            parts.append(
                f"{forwarder.vendor}: forwarded={s.forwarded} failed={s.failed} "
                f"rate_limited={s.rate_limited} dropped={s.dropped} skipped[{skipped}]"
            )
        return "; ".join(parts)

    def close(self) -> None:
        """Bounded: the servers are set back to normal first so nothing hangs."""
        self.servers.set_mode("normal")
        self.ld.close()
        destroyed = threading.Event()
        self.split_factory.destroy(destroyed)
        destroyed.wait(5)
        closer = threading.Thread(target=self.segment.join, daemon=True)
        closer.start()
        closer.join(5)


def bench_flags() -> Any:
    """A TestData source with one boolean flag, ``bench-flag``, on for everyone."""
    from ldclient.integrations.test_data import TestData

    td = TestData.data_source()
    td.update(td.flag("bench-flag").boolean_flag().variation_for_all(True))
    return td


def ld_context() -> Any:
    from ldclient import Context

    user = Context.builder(USER["id"]).kind("user").set("plan", "pro").set("email", "a@b.c").build()
    org = Context.builder(USER["orgId"]).kind("org").build()
    return Context.create_multi(user, org)


def flags_integration(vendors: Optional[Vendors]) -> FlagsIntegration:
    """Scenario 1's configuration: 20 ignore patterns, 10 deny URLs, 10 include paths."""
    return FlagsIntegration(
        launchdarkly_client=vendors.ld if vendors else None,
        ignore_errors=IGNORE_ERRORS,
        deny_urls=DENY_URLS,
        include_paths=INCLUDE_PATHS,
        forwarders=vendors.forwarders if vendors else None,
    )


def make_client(
    dsn: str, integrations: Sequence[Any] = (), transport: Any = None, *, default_integrations: bool = True
) -> Any:
    """A Sentry client as ``sentry_sdk.init`` builds it (default integrations on, unless
    ``default_integrations`` is False: the lean capture)."""
    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": "production",
        "shutdown_timeout": 2,
        "http_proxy": "",
        "https_proxy": "",
        "integrations": list(integrations),
        "default_integrations": default_integrations,
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    return sentry_sdk.get_client()


class InertIntegration(Integration):
    """The control of ``benchmarks.instructions``: an integration with FlagsIntegration's three
    hooks on the capturing thread (a global event processor, before_send, custom_repr), each
    doing nothing. What a client with it spends more than a bare one is sentry-sdk's own work
    for any such integration (its name in every event's ``sdk.integrations``, calling the
    hooks), not ours. Its identifier is as long as ours, so that name costs the same."""

    identifier = "sentry_inert"

    @staticmethod
    def setup_once() -> None:
        sentry_sdk.scope.add_global_event_processor(_inert_processor)

    @staticmethod
    def hook(client: Any) -> None:
        """Give ``client`` the other two hooks, as ``FlagsIntegration.bind`` gives ours."""
        client.options["before_send"] = _inert_before_send
        client.options["custom_repr"] = _inert_repr


def _inert_processor(event: Any, hint: Any) -> Any:
    return event


def _inert_before_send(event: Any, hint: Any) -> Any:
    return event


def _inert_repr(value: Any) -> Any:
    return None


_our_processor: list[Any] = [process_event]  # what sentry-sdk runs: ours or a timing wrapper


@contextmanager
def using(client: Any, *, bare: bool = False) -> Iterator[None]:
    """Make ``client`` current. ``bare`` also unhooks our global event processor, which
    sentry-sdk keeps for the whole process once any client had the integration."""
    sentry_sdk.get_global_scope().set_client(client)
    processors: list[Any] = sentry_sdk.scope.global_event_processors
    processor = _our_processor[0]
    removed = bare and processor in processors
    if removed:
        processors.remove(processor)
    try:
        yield
    finally:
        if removed:
            processors.append(processor)


class OurClock:
    """Nanoseconds spent inside sentry-flags' two app-thread entry points: the global event
    processor and the before_send stage. ``ns`` accumulates until reset by the caller."""

    def __init__(self) -> None:
        self.ns = 0

    def install(self) -> None:
        """Wrap both entry points (after ``setup_once`` ran, i.e. after a client with
        FlagsIntegration was made); the wrappers add ~0.2 µs per error."""
        from sentry_flags._stage import Stage

        clock = time.perf_counter_ns
        original_call = Stage.__call__

        def stage_call(stage: Any, event: Any, hint: Any) -> Any:
            start = clock()
            try:
                return original_call(stage, event, hint)
            finally:
                self.ns += clock() - start

        def processor(event: Any, hint: Any) -> Any:
            start = clock()
            try:
                return process_event(event, hint)
            finally:
                self.ns += clock() - start

        Stage.__call__ = stage_call  # type: ignore[method-assign, assignment]
        processors: list[Any] = sentry_sdk.scope.global_event_processors
        processors[processors.index(_our_processor[0])] = processor
        _our_processor[0] = processor


def set_request_scope(ld: Any = None) -> None:
    """What a request handler would have set: the user, a tag, and (with ``ld``) one
    flag evaluation, which our hook turns into the LaunchDarkly context. Without ``ld`` (a
    bare client's rounds) nothing of ours stays on the scopes: our event processor is
    unhooked then, so sentry-sdk would serialize what is left (``set_launchdarkly_context(None)``
    stores an empty context, and a flag log stays from earlier evaluations)."""
    from sentry_flags import set_launchdarkly_context
    from sentry_flags._context import CONTEXT_KEY
    from sentry_flags._flags import FLAGS_KEY

    sentry_sdk.set_user(dict(USER))
    sentry_sdk.set_tag("org", USER["orgId"])
    if ld is None:
        for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
            scope.remove_context(CONTEXT_KEY)
            scope.remove_context(FLAGS_KEY)
        return
    set_launchdarkly_context(None)
    ld.variation("bench-flag", ld_context(), False)


def fail(depth: int = 3) -> None:
    """Raise from a few frames down, like application code does."""
    if depth:
        fail(depth - 1)
    raise ValueError("checkout failed: cart total is negative")


def capture_errors(n: int) -> None:
    capture = sentry_sdk.capture_exception
    for _ in range(n):
        try:
            fail()
        except ValueError:
            capture()


def capture_lean_errors(n: int) -> None:
    """The lean capture: each error raised and caught in one frame, so the event is small
    and sentry-sdk's own per-frame work (source lines, local variables) is as little as it
    gets."""
    capture = sentry_sdk.capture_exception
    for _ in range(n):
        try:
            raise ValueError("checkout failed: cart total is negative")
        except ValueError:
            capture()
