"""The examples run against loopback stand-ins, so they never rot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from receivers import LaunchDarklyReceiver, SegmentReceiver, SentryReceiver, SplitReceiver, wait_for

pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def stand_ins() -> Iterator[tuple[SentryReceiver, LaunchDarklyReceiver, SplitReceiver, SegmentReceiver]]:
    with SentryReceiver() as sentry, LaunchDarklyReceiver() as ld, SplitReceiver() as split, \
            SegmentReceiver() as segment:  # fmt: skip
        yield sentry, ld, split, segment


def example_env(sentry: SentryReceiver, ld: LaunchDarklyReceiver, split: SplitReceiver,
                segment: SegmentReceiver) -> dict[str, str]:  # fmt: skip
    return dict(
        os.environ,
        SENTRY_DSN=sentry.dsn,
        LAUNCHDARKLY_SDK_KEY="ld-example-key",
        LAUNCHDARKLY_BASE_URI=ld.url,
        SPLIT_SDK_KEY="split-example-key",
        SPLIT_API_URL=split.api_url,
        SEGMENT_WRITE_KEY="segment-example-key",
        SEGMENT_HOST=segment.host,
        no_proxy="127.0.0.1",
    )


def test_script_example(stand_ins: tuple[SentryReceiver, LaunchDarklyReceiver, SplitReceiver,
                                         SegmentReceiver]) -> None:  # fmt: skip
    sentry, ld, split, segment = stand_ins
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "script.py")],
        env=example_env(*stand_ins), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "processed 2 invoices, 1 failed" in done.stdout

    (event,) = wait_for(lambda: sentry.events)
    assert event["exception"]["values"][-1]["value"] == "invoice amount is negative: -5"
    assert event["contexts"]["launchdarklyContext"] == {"kind": "user", "key": "cust-2"}
    (message,) = wait_for(lambda: segment.messages)
    assert message["userId"] == "cust-2"
    assert message["messageId"] == event["event_id"]
    (custom,) = wait_for(lambda: ld.custom_events)
    assert custom["key"] == "sentry-errors"
    assert custom["context"] == {"kind": "user", "key": "cust-2"}
    tracked = wait_for(lambda: split.events)
    assert {(e["trafficTypeName"], e["key"]) for e in tracked} == {("user", "cust-2")}
