"""The README's first command: the offline demo runs and shows every destination."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("flask")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")


def test_demo_runs_offline_and_reports_each_destination() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sentry_flags.demo"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Sentry received 3 error events" in out
    assert 'launchdarklyContext {"kind":"multi","org":{"key":"acme"},"user":{"key":"alice"' in out
    assert "Split received 8 track events" in out
    assert "sentry_exception:checkout" in out
    assert "LaunchDarkly received 2 custom events" in out
    assert "Segment received 2 messages" in out
    assert "ResizeObserver" not in out.split("Sentry received")[1]  # the ignored error went nowhere
    assert "Traceback" not in done.stderr
