"""The offline demo: ``python -m sentry_flags.demo``.

Starts loopback stand-ins for Sentry, LaunchDarkly, Split and Segment, runs the Flask
example app against them with the real SDKs, sends a few failing requests and prints what
each destination received. Needs no network and no accounts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from sentry_flags.testing.receivers import (
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
    ld_flag,
    wait_for,
)

# (environment, user, org, path): alice gets the new checkout flow, bob the old one.
REQUESTS = (
    ("staging", "alice", "acme", "/checkout"),
    ("production", "bob", "globex", "/checkout"),
    ("production", "alice", "acme", "/resize"),
    ("production", "alice", "acme", "/checkout"),
)
FORWARDED_ENVIRONMENTS = "production"
WAIT = 10.0


def _examples_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_examples", here.parent.parent / "examples"):
        if (candidate / "flask_app" / "app.py").is_file():
            return candidate
    raise SystemExit("sentry-flags demo: the example apps were not found next to the package")


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"sentry-flags demo: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkout_flag() -> dict[str, Any]:
    flag = ld_flag("new-checkout", fallthrough_variation=1)
    flag["targets"] = [{"values": ["alice"], "variation": 0}]
    return flag


@contextmanager
def _receivers() -> Iterator[tuple[SentryReceiver, LaunchDarklyReceiver, SplitReceiver, SegmentReceiver]]:
    started = (SentryReceiver(), LaunchDarklyReceiver(), SplitReceiver(), SegmentReceiver())
    try:
        yield started
    finally:
        for receiver in started:
            receiver.stop()


def _environ(
    sentry: SentryReceiver, ld: LaunchDarklyReceiver, split: SplitReceiver, segment: SegmentReceiver
) -> dict[str, str]:
    return {
        "SENTRY_DSN": sentry.dsn,
        "APP_VERSION": "shop@1.4.2",
        "LAUNCHDARKLY_SDK_KEY": "demo-ld-sdk-key",
        "LAUNCHDARKLY_BASE_URI": ld.url,
        "SPLIT_SDK_KEY": "demo-split-sdk-key",
        "SPLIT_API_URL": split.api_url,
        "SEGMENT_WRITE_KEY": "demo-segment-write-key",
        "SEGMENT_HOST": segment.host,
        "FORWARD_ENVIRONMENTS": FORWARDED_ENVIRONMENTS,
    }


def _compact(value: Any, limit: int = 150) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(title: str, lines: list[str], out: Callable[[str], None]) -> None:
    out("")
    out(title)
    for line in lines or ["  (nothing)"]:
        out(line)


def _sentry_lines(events: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for event in events:
        exc = event.get("exception", {}).get("values", [{}])[-1]
        user = event.get("user", {}).get("id")
        lines.append(f"  [{event.get('environment')}] {exc.get('type')}: {exc.get('value')}  user={user}")
        lines.append(
            f"      launchdarklyContext {_compact(event.get('contexts', {}).get('launchdarklyContext'))}"
        )
    return lines


def run(out: Callable[[str], None] = print) -> int:
    """Run the demo, printing with ``out``; returns the process exit code."""
    logging.getLogger("splitio").setLevel(logging.CRITICAL)  # its startup chatter is noise here
    examples = _examples_dir()
    sys.path.insert(0, str(examples))
    with _receivers() as (sentry, ld, split, segment):
        ld.set_flags(_checkout_flag())
        os.environ.update(_environ(sentry, ld, split, segment))
        app_module = _load(examples / "flask_app" / "app.py", "sentry_flags_demo_app")
        vendors = app_module.vendors_from_env()
        out("sentry-flags demo: Sentry, LaunchDarkly, Split and Segment are stand-ins on 127.0.0.1.")
        out(f"Errors are forwarded to the vendors from the {FORWARDED_ENVIRONMENTS!r} environment only.")
        out("")
        out("Requests to the Flask example app")
        try:
            import sentry_sdk

            for environment in dict.fromkeys(r[0] for r in REQUESTS):
                os.environ["SENTRY_ENVIRONMENT"] = environment
                app = app_module.create_app(vendors)
                app.logger.disabled = True  # Flask's own traceback print-outs would bury the report
                client = app.test_client()
                for env, user, org, path in REQUESTS:
                    if env != environment:
                        continue
                    status = client.get(f"{path}?user={user}&org={org}").status_code
                    note = "  (ignored by ignore_errors: sent nowhere)" if path == "/resize" else ""
                    out(f"  {environment:<11} {user:<6} GET {path:<10} -> {status}{note}")
                sentry_sdk.flush(timeout=WAIT)
            expected = sum(1 for r in REQUESTS if r[3] == "/checkout")
            forwarded = sum(1 for r in REQUESTS if r[3] == "/checkout" and r[0] == FORWARDED_ENVIRONMENTS)
            try:
                wait_for(lambda: len(sentry.events) >= expected, timeout=WAIT)
                wait_for(lambda: len(segment.messages) >= forwarded, timeout=WAIT)
                wait_for(lambda: len(ld.custom_events) >= forwarded, timeout=WAIT)
                wait_for(lambda: len(split.events) >= forwarded * 3, timeout=WAIT)
                ok = True
            except AssertionError as exc:
                out(f"\nsentry-flags demo: not everything arrived: {exc}")
                ok = False
            _report(sentry, ld, split, segment, out)
        finally:
            vendors.close()
    return 0 if ok else 1


def _report(
    sentry: SentryReceiver,
    ld: LaunchDarklyReceiver,
    split: SplitReceiver,
    segment: SegmentReceiver,
    out: Callable[[str], None],
) -> None:
    _section(f"Sentry received {len(sentry.events)} error events", _sentry_lines(sentry.events), out)
    _section(
        f"Split received {len(split.events)} track events (one per identity, plus a culprit event)",
        [
            f"  {e.get('trafficTypeName', ''):<5} key={e.get('key', ''):<7} {e.get('eventTypeId', ''):<27}"
            f" exceptionType={(e.get('properties') or {}).get('exceptionType')}"
            for e in split.events
        ],
        out,
    )
    _section(
        f"LaunchDarkly received {len(ld.custom_events)} custom events",
        [
            f"  {e.get('key')}  context={_compact(e.get('context'), 80)}"
            f"  exceptionType={(e.get('data') or {}).get('exceptionType')}"
            for e in ld.custom_events
        ],
        out,
    )
    _section(
        f"Segment received {len(segment.messages)} messages",
        [
            f"  {m.get('event')!r} userId={m.get('userId'):<6}"
            f" exceptionType={(m.get('properties') or {}).get('exceptionType')}"
            f" page={_compact((m.get('properties') or {}).get('page'), 70)}"
            for m in segment.messages
        ],
        out,
    )


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()
