"""Errors captured right before the process exits still reach every vendor.

The child process never calls flush or close: sentry-sdk's atexit handler closes the
client, whose flush we patched to drain our queue and flush the vendor clients.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import vendor_env
from receivers import LaunchDarklyReceiver, SegmentReceiver, SentryReceiver, SplitReceiver, wait_for

pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import sentry_sdk
    from ldclient import Context
    from vendors import flags_integration, vendors_from_env
    from sentry_flags import set_launchdarkly_context

    vendors = vendors_from_env()
    sentry_sdk.init(dsn=sys.argv[2], integrations=[flags_integration(vendors)])
    sentry_sdk.set_user({"id": "u-exit"})
    sentry_sdk.set_tag("org", "acme")
    set_launchdarkly_context(Context.create("u-exit"))
    try:
        1 / 0
    except ZeroDivisionError:
        sentry_sdk.capture_exception()
    print("captured", flush=True)
    """
)


@pytest.mark.parametrize("default_integrations", [True, False])
def test_errors_captured_just_before_exit_are_delivered(default_integrations: bool) -> None:
    with SentryReceiver() as sentry, LaunchDarklyReceiver() as ld, SplitReceiver() as split, \
            SegmentReceiver() as segment:  # fmt: skip
        env = vendor_env(sentry, ld, split, segment)
        script = CHILD
        if not default_integrations:
            # Without sentry-sdk's Atexit integration our own exit handler drains the queue.
            script = script.replace("integrations=[", "default_integrations=False, integrations=[")
        done = subprocess.run(
            [sys.executable, "-c", script, str(EXAMPLES), sentry.dsn],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "captured" in done.stdout

        segment_msg = wait_for(lambda: segment.messages, timeout=10)[0]
        assert segment_msg["event"] == "Error Captured"
        assert segment_msg["userId"] == "u-exit"
        ld_event = wait_for(lambda: ld.custom_events, timeout=10)[0]
        assert ld_event["key"] == "sentry-errors"
        split_events = wait_for(lambda: len(split.events) >= 2 and split.events, timeout=10)
        assert {(e["trafficTypeName"], e["key"]) for e in split_events} >= {
            ("user", "u-exit"),
            ("org", "acme"),
        }
        if default_integrations:
            assert wait_for(lambda: sentry.events, timeout=10)
