"""Test helpers: assert what sentry-flags would forward, without any network.

Modelled on ``structlog.testing.capture_logs``:

    import sentry_sdk
    from sentry_flags.testing import capture_forwarded

    def test_checkout_error_reaches_launchdarkly(client):
        with capture_forwarded() as calls:
            client.get("/checkout?fail=1")

        # Every forwarder's calls, in delivery order: select the vendor.
        [call] = [c for c in calls if c.vendor == "launchdarkly"]
        assert call.method == "track"
        assert call.kwargs["event_name"] == "sentry-errors"
        assert call.kwargs["context"].key == "user-123"

`capture_forwarded` works on the forwarders of the current Sentry client's
``FlagsIntegration``: the vendor clients you configured are never called while it is
active, and each forwarder still runs its own logic (environment filter, rate limit,
skips), so ``forwarder.stats`` counts as it would in production. `RecordingForwarder`
is a forwarder of its own that keeps every `sentry_flags.ErrorView` it receives, for
testing code that reads them.

The loopback stand-ins for Sentry, LaunchDarkly, Split and Segment, for tests that assert
on what the real vendor SDKs send over the wire, are in `sentry_flags.testing.receivers`:
point the DSN at ``SentryReceiver().dsn`` and the errors your tests capture go to a
stand-in on 127.0.0.1 instead of to sentry.io.
"""

from sentry_flags.testing._recorder import (
    ForwardedCall,
    RecordingForwarder,
    capture_forwarded,
    current_integration,
    flush_forwarders,
)

__all__ = [
    "ForwardedCall",
    "RecordingForwarder",
    "capture_forwarded",
    "current_integration",
    "flush_forwarders",
]
