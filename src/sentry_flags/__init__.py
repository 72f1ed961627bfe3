"""sentry-flags: feature-flag context and vendor forwarding for Sentry errors."""

from sentry_flags._context import CONTEXT_KEY, get_launchdarkly_context, set_launchdarkly_context
from sentry_flags._event import ErrorView
from sentry_flags._integration import FlagsIntegration
from sentry_flags._privacy import Privacy

__version__ = "0.1.0"

__all__ = [
    "CONTEXT_KEY",
    "ErrorView",
    "FlagsIntegration",
    "Privacy",
    "__version__",
    "get_launchdarkly_context",
    "set_launchdarkly_context",
]
