"""The offline demo: ``sentry-flags-demo``, ``python -m sentry_flags.demo`` or ``bash scripts/demo``.

Starts loopback stand-ins for Sentry, LaunchDarkly, Split and Segment, runs the Flask
example app against them with the real SDKs, sends a few failing requests and prints, for
each error Sentry received, who it happened to (``launchdarklyContext``) and what they were
served (``flags``, ``flagEvaluations``), then what each vendor received, and how to try a
flag of your own. Needs no network and no accounts; takes no arguments.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

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
WIDTH = 100

# What the demo imports, and the extra of sentry-flags that installs it.
NEEDED = (
    ("flask", "flask"),
    ("ldclient", "launchdarkly"),
    ("splitio", "split"),
    ("segment.analytics", "segment"),
)


def demo_flags() -> list[dict[str, Any]]:
    """The flags the LaunchDarkly stand-in serves. Add yours here to try it in the demo."""
    checkout = ld_flag("new-checkout", fallthrough_variation=1)  # everyone: false ...
    checkout["targets"] = [{"values": ["alice"], "variation": 0}]  # ... but alice: true
    return [checkout]


def missing_extras() -> list[str]:
    """The extras whose packages cannot be imported here, in `NEEDED` order."""
    missing = []
    for module, extra in NEEDED:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(extra)
    return missing


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


def _json(value: Any) -> str:
    # Spaces after separators give the wrapper places to break; nothing is ever cut.
    return json.dumps(value, separators=(", ", ": "), sort_keys=True, default=str)


def _field(label: str, text: str, indent: int = 6) -> list[str]:
    """``label  text``, wrapped at spaces only: long values go on, never cut mid-word."""
    head = " " * indent + f"{label:<9}"
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [head.rstrip()]


def _section(title: str, lines: list[str], out: Callable[[str], None]) -> None:
    out("")
    out(title)
    for line in lines or ["  (nothing)"]:
        out(line)


def _served(evaluation: Mapping[str, Any]) -> str:
    """One ``flagEvaluations`` entry: ``new-checkout = true (variation 0, TARGET_MATCH, launchdarkly)``."""
    details = []
    for key in ("variation", "variant"):
        if key in evaluation:
            details.append(f"{key} {evaluation[key]}")
    details += [str(evaluation[key]) for key in ("reason", "source") if evaluation.get(key)]
    return f"{evaluation.get('flag')} = {_json(evaluation.get('value'))} ({', '.join(details)})"


def _sentry_lines(events: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for number, event in enumerate(events, 1):
        exc = event.get("exception", {}).get("values", [{}])[-1]
        contexts = event.get("contexts", {})
        lines.append(f"  {number}. [{event.get('environment')}] {exc.get('type')}: {exc.get('value')}")
        lines += _field("user", str(event.get("user", {}).get("id")))
        lines += _field("context", _json(contexts.get("launchdarklyContext")))
        evaluations = (contexts.get("flagEvaluations") or {}).get("values") or []
        for evaluation in evaluations or [{"flag": "(no flag evaluated)"}]:
            lines += _field("served", _served(evaluation) if evaluations else "(no flag evaluated)")
        flags = (contexts.get("flags") or {}).get("values") or []
        lines += _field(
            "flags", ", ".join(f"{f.get('flag')}: {_json(f.get('result'))}" for f in flags) or "(none)"
        )
    return lines


def run(out: Callable[[str], None] = print) -> int:
    """Run the demo, printing with ``out``.

    Args:
        out: Called with each line of the report. Default `print`.

    Returns:
        The process exit code: 0 when every destination received what it should.
    """
    logging.getLogger("splitio").setLevel(logging.CRITICAL)  # its startup chatter is noise here
    examples = _examples_dir()
    sys.path.insert(0, str(examples))
    app_path = examples / "flask_app" / "app.py"
    with _receivers() as (sentry, ld, split, segment):
        ld.set_flags(*demo_flags())
        os.environ.update(_environ(sentry, ld, split, segment))
        app_module = _load(app_path, "sentry_flags_demo_app")
        vendors = app_module.vendors_from_env()
        out("sentry-flags demo: Sentry, LaunchDarkly, Split and Segment are stand-ins on 127.0.0.1.")
        out(f"Errors are forwarded to the vendors from the {FORWARDED_ENVIRONMENTS!r} environment only.")
        out("")
        out("Requests to the Flask example app")
        ok = False
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
                wait_for(lambda: len(split.events) >= forwarded * 4, timeout=WAIT)
                ok = True
            except AssertionError as exc:
                out(f"\nsentry-flags demo: not everything arrived: {exc}")
            _report(sentry, ld, split, segment, out)
            _what_ran(app_path, out)
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
    _section(
        f"Sentry received {len(sentry.events)} error events, each with who it happened to"
        " (launchdarklyContext)\nand what they were served (flagEvaluations; booleans also in"
        " Sentry's own flags context)",
        _sentry_lines(sentry.events),
        out,
    )
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
            line
            for e in ld.custom_events
            for line in [
                f"  {e.get('key')}  exceptionType={(e.get('data') or {}).get('exceptionType')}",
                *_field("context", _json(e.get("context")), indent=4),
            ]
        ],
        out,
    )
    _section(
        f"Segment received {len(segment.messages)} messages",
        [
            line
            for m in segment.messages
            for line in [
                f"  {m.get('event')!r} userId={m.get('userId')}"
                f" exceptionType={(m.get('properties') or {}).get('exceptionType')}",
                *_field("page", _json((m.get("properties") or {}).get("page")), indent=4),
            ]
        ],
        out,
    )


def _what_ran(app_path: Path, out: Callable[[str], None]) -> None:
    served = ", ".join(flag["key"] for flag in demo_flags())
    _section(
        "What ran",
        [
            f"  The Flask example app, {app_path}",
            "  (FlagsExtension gives each request its LaunchDarkly context; FlagsIntegration and the",
            f"  forwarders are set up in {app_path.parent.parent / 'vendors.py'}).",
            f"  The LaunchDarkly stand-in served: {served} (true for alice, false for everyone else).",
        ],
        out,
    )
    _section(
        "Try your own flag",
        [
            f"  1. Evaluate it in the app's /checkout view ({app_path.name}):",
            '       ld.variation("your-flag", context, False)',
            '  2. Serve it from the stand-in: add ld_flag("your-flag") to demo_flags() in',
            f"     {Path(__file__).resolve()}",
            "  3. Run the demo again: each error lists your flag under 'served'.",
            "  Or against your own LaunchDarkly project and Sentry:",
            f"       SENTRY_DSN=<your DSN> LAUNCHDARKLY_SDK_KEY=<your SDK key> flask --app {app_path} run",
        ],
        out,
    )


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="sentry-flags-demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep "sentry-flags[all]" whole
        description=textwrap.dedent(
            """\
            The offline sentry-flags demo. It takes no arguments.

            The Flask example app runs against loopback stand-ins for Sentry, LaunchDarkly,
            Split and Segment (127.0.0.1 only, no accounts). For each error Sentry received,
            the demo prints the user's LaunchDarkly context and the flags they were served,
            then what each vendor received, and how to try a flag of your own."""
        ),
        epilog='Needs the extras flask, launchdarkly, split and segment: pip install "sentry-flags[all]"',
    )


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``sentry-flags-demo`` command: run the demo and exit with its status.

    Args:
        argv: The command-line arguments. Default `None`: ``sys.argv[1:]``. Only ``--help``
            is accepted.
    """
    _parser().parse_args(argv)
    missing = missing_extras()
    if missing:
        extras = ",".join(extra for _, extra in NEEDED)
        raise SystemExit(
            f"sentry-flags-demo needs the extras {', '.join(e for _, e in NEEDED)}; missing: "
            f'{", ".join(missing)}.\nInstall them with:  pip install "sentry-flags[{extras}]"'
            '   (or "sentry-flags[all]")'
        )
    raise SystemExit(run())


if __name__ == "__main__":
    main()
