"""Loopback stand-ins for the Sentry, LaunchDarkly, Split and Segment HTTP APIs.

The demo, our tests and yours drive the real vendor SDK clients against these receivers
and then assert on what actually arrived over the wire, instead of mocking the SDKs.
Everything binds to 127.0.0.1 on an ephemeral port; nothing here talks to the internet.

Point each client at its receiver, then read what arrived:

- sentry-sdk: ``sentry_sdk.init(dsn=sentry.dsn)``; ``sentry.events``.
- LaunchDarkly: ``LDClient(Config("sdk-key", **ld.config_kwargs))``; ``ld.events``,
  ``ld.custom_events``.
- Split: ``get_factory("sdk-key", config={"streamingEnabled": False}, **split.factory_kwargs)``;
  ``split.events``, ``split.impressions``.
- Segment: ``Client("write-key", host=segment.host)``; ``segment.messages``.

Addresses and what arrived are properties (each read is a fresh snapshot); methods are
for what takes arguments or changes state: ``wait_for_events(count)`` and its kin wait for
something to arrive (instead of sleeping), ``set_mode`` switches a receiver's behaviour
to exercise failure handling (HTTP 500, HTTP 429 with ``Retry-After``, bytes that are not
HTTP at all, a 200 whose body is not JSON, hanging, refusing connections), ``stop`` (or
the end of a ``with`` block) closes it. The parsed views (``events``, ``messages``...)
only include requests answered in ``Mode.NORMAL``: data the SDK would consider delivered;
``requests`` has every request.

The Sentry receiver also runs every event it accepts through Sentry's own normalizer
when ``sentry-relay`` is installed, and reports what Sentry's ingestion would change
(``SentryReceiver.ingest_problems``).

One module per vendor (``sentry``, ``launchdarkly``, ``split``, ``segment``) on a shared
base; every name is importable from here.
"""

from sentry_flags.testing.receivers._base import (
    DEFAULT_TIMEOUT,
    LOOPBACK,
    BaseReceiver,
    Mode,
    RecordedRequest,
    Response,
    assert_never,
    closed_port_url,
    decode_body,
    join_threads,
    wait_for,
)
from sentry_flags.testing.receivers.launchdarkly import LaunchDarklyReceiver, ld_flag
from sentry_flags.testing.receivers.segment import SegmentReceiver
from sentry_flags.testing.receivers.sentry import (
    OUR_CONTEXTS,
    Envelope,
    EnvelopeItem,
    IngestProblem,
    SentryReceiver,
    parse_envelope,
)
from sentry_flags.testing.receivers.split import DEFAULT_SPLITS, SplitReceiver, split_definition

__all__ = [
    "DEFAULT_SPLITS",
    "DEFAULT_TIMEOUT",
    "LOOPBACK",
    "OUR_CONTEXTS",
    "BaseReceiver",
    "Envelope",
    "EnvelopeItem",
    "IngestProblem",
    "LaunchDarklyReceiver",
    "Mode",
    "RecordedRequest",
    "Response",
    "SegmentReceiver",
    "SentryReceiver",
    "SplitReceiver",
    "assert_never",
    "closed_port_url",
    "decode_body",
    "join_threads",
    "ld_flag",
    "parse_envelope",
    "split_definition",
    "wait_for",
]
