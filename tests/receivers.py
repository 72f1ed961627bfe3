"""The loopback receivers ship in the package (the demo uses them); tests import them here."""

from sentry_flags.receivers import *  # noqa: F403
from sentry_flags.receivers import __all__  # noqa: F401
