"""The loopback receivers ship in the package (sentry_flags.testing); tests import them here."""

from sentry_flags.testing.receivers import *  # noqa: F403
from sentry_flags.testing.receivers import __all__  # noqa: F401
