"""9. Scenario 1 on a small event: where our cost is not hidden under sentry-sdk's own work.

Each error is raised and caught in one frame, and the Sentry clients run without sentry-sdk's
default integrations (``default_integrations=False``), so bare sentry-sdk builds a small
event in ~250 µs instead of ~1.4 ms (no source lines and local variables of four frames, no
logging, threading, modules or argv integrations). Everything else is scenario 1's
(``benchmarks.capture``): the transport drops envelopes; bare vs FlagsIntegration alone (20
ignore patterns, 10 deny URLs, 10 include paths, a LaunchDarkly context) vs FlagsIntegration
with the three forwarders; a storm that lasts; the same three kinds of round. The budget is
the same too, judged on the one-CPU rounds: with forwarders <= 1.10 x bare.
"""

from __future__ import annotations

from benchmarks._harness import Row
from benchmarks._vendors import capture_lean_errors
from benchmarks.capture import Storm, run_storm

NAME = "lean_capture"
# Rounds of each kind, errors per round: quick, full. A lean error takes ~0.3 ms, a fifth of
# scenario 1's, so a round has more of them for a timed loop of about the same length.
SIZES = {True: (2, 1000), False: (12, 5000)}
STORM = Storm(NAME, "9 lean capture", capture_lean_errors, SIZES, default_integrations=False)


def run(quick: bool) -> list[Row]:
    return run_storm(STORM, quick)
