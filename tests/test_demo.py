"""The README's first command: the offline demo runs and tells the story of each error."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("flask")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")


def demo(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}\nfrom sentry_flags.demo import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report() -> str:
    done = demo()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def sentry_errors(report: str) -> list[str]:
    """The report's block for each error Sentry received."""
    section = report.split("Sentry received")[1].split("\nSplit received", maxsplit=1)[0]
    return re.split(r"\n  \d+\. ", section)[1:]


def test_demo_runs_offline_and_reports_each_destination(report: str) -> None:
    assert "Sentry received 3 error events" in report
    assert "Split received 8 track events" in report
    assert "sentry_exception:checkout" in report
    assert "LaunchDarkly received 2 custom events" in report
    assert "Segment received 2 messages" in report
    assert "ResizeObserver" not in report.split("Sentry received")[1]  # the ignored error went nowhere


def test_each_error_shows_who_and_what_they_were_served(report: str) -> None:
    errors = sentry_errors(report)
    assert len(errors) == 3
    for error in errors:
        assert "context  {" in error
        assert "served   new-checkout = " in error
        assert "flags    " in error
    alice_new_flow, bob_old_flow = errors[0], errors[1]
    assert alice_new_flow.startswith("[staging] RuntimeError: new checkout flow")
    assert '"user": {"key": "alice", "plan": "pro"}' in alice_new_flow
    assert "served   new-checkout = true (variation 0, TARGET_MATCH, launchdarkly)" in alice_new_flow
    assert "flags    new-checkout: true" in alice_new_flow
    assert bob_old_flow.startswith("[production] ValueError: old checkout flow")
    assert '"user": {"key": "bob", "plan": "pro"}' in bob_old_flow
    assert "served   new-checkout = false (variation 1, FALLTHROUGH, launchdarkly)" in bob_old_flow


def test_no_value_is_cut(report: str) -> None:
    assert "…" not in report
    assert "..." not in report
    # A long value wraps at a space onto the next line; joined again, it is whole.
    segment = re.sub(r"\s+", " ", report.split("Segment received")[1])
    assert segment.count('"url": "http://localhost/checkout"}') == 2


def test_it_ends_with_what_ran_and_how_to_try_your_own_flag(report: str) -> None:
    ending = report.split("\nWhat ran\n")[1]
    assert "The Flask example app, " in ending
    assert "flask_app/app.py" in ending
    assert "Try your own flag" in ending
    assert 'ld.variation("your-flag", context, False)' in ending
    assert 'add ld_flag("your-flag") to demo_flags()' in ending
    assert "demo.py" in ending


def test_help_says_it_takes_no_arguments_and_runs_nothing() -> None:
    done = demo("--help")
    assert done.returncode == 0
    assert "usage: sentry-flags-demo" in done.stdout
    assert "takes no arguments" in done.stdout
    assert "Requests to the Flask example app" not in done.stdout


def test_an_argument_is_an_error() -> None:
    done = demo("--verbose")
    assert done.returncode == 2
    assert "unrecognized arguments: --verbose" in done.stderr
    assert "Requests to the Flask example app" not in done.stdout


def test_a_missing_extra_is_named_with_the_install_line() -> None:
    # As after `pip install "sentry-flags[launchdarkly]"`: no Flask.
    done = demo(prelude="import sys; sys.modules['flask'] = None")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "missing: flask." in done.stderr
    assert 'pip install "sentry-flags[flask,launchdarkly,split,segment]"' in done.stderr
