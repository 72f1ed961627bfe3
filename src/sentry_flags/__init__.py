"""sentry-flags: who hit each Sentry error, and which feature flags they were served.

Start with `FlagsIntegration`, a sentry-sdk integration:

    import sentry_sdk
    from sentry_flags import FlagsIntegration

    sentry_sdk.init(dsn="...", integrations=[FlagsIntegration(launchdarkly_client=ld)])

Every error event then carries the LaunchDarkly context of its request or task
(``launchdarklyContext``, private attributes redacted) and the flags that request was
served (Sentry's ``flags`` context and ``flagEvaluations``); `FlagsIntegration`'s options
add RudderStack-style filters and settings, and ``forwarders`` send each error to Split,
LaunchDarkly, Segment or OpenFeature (`sentry_flags.forwarders`).

What else is here:

- `set_launchdarkly_context` / `get_launchdarkly_context`: the context of the current
  request or task, set by hand where no flag was evaluated.
- `ErrorView` and `Privacy` (with its `KeyValueRule`s): what a forwarder of your own reads
  about an error, and what the app lets leave.
- Sources of contexts and flags: `sentry_flags.launchdarkly` (plugins),
  `sentry_flags.openfeature` (a hook), `sentry_flags.split` (an impression listener).
- Framework glue: `sentry_flags.django`, `sentry_flags.flask`, `sentry_flags.asgi`,
  `sentry_flags.celery`.
- For your tests: `sentry_flags.testing` (what would be forwarded) and
  `sentry_flags.testing.receivers` (stand-ins for Sentry and the vendors on 127.0.0.1).
"""

from sentry_flags._context import CONTEXT_KEY, get_launchdarkly_context, set_launchdarkly_context
from sentry_flags._event import ErrorView
from sentry_flags._integration import FlagsIntegration
from sentry_flags._privacy import KeyValueRule, Privacy

__version__ = "0.1.0"

__all__ = [
    "CONTEXT_KEY",
    "ErrorView",
    "FlagsIntegration",
    "KeyValueRule",
    "Privacy",
    "__version__",
    "get_launchdarkly_context",
    "set_launchdarkly_context",
]
