"""The vendor receivers, in a process of their own: ``python -m benchmarks._servers``.

Vendor servers are not part of the app being measured, so they must not share its CPU
time or its GIL. Prints one JSON line with the URLs, then obeys stdin, one command a line:
``mode <normal|refuse|hang>`` (every receiver; also forgets what was recorded) answered
with ``ok``. Exits at end of input, so it never outlives the benchmark.
"""

from __future__ import annotations

import json
import sys

from sentry_flags.testing.receivers import (
    BaseReceiver,
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
)


def main() -> None:
    # No Sentry normalizer here: its CPU time would compete with the app being measured.
    sentry = SentryReceiver(normalize=False)
    ld, split, segment = LaunchDarklyReceiver(), SplitReceiver(), SegmentReceiver()
    receivers: tuple[BaseReceiver, ...] = (sentry, ld, split, segment)
    urls = {
        "sentry_dsn": sentry.dsn,
        "ld_url": ld.url,
        "split": split.factory_kwargs,
        "segment_host": segment.host,
    }
    print(json.dumps(urls), flush=True)
    try:
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "mode":
                for receiver in receivers:
                    receiver.set_mode(arg)
                    receiver.clear()
            print("ok", flush=True)
    finally:
        for receiver in receivers:
            receiver.stop()


if __name__ == "__main__":
    main()
