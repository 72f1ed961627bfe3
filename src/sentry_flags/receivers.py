"""Deprecated alias of :mod:`sentry_flags.testing.receivers`, kept for one release.

Import the loopback receivers from ``sentry_flags.testing.receivers`` instead.
"""

import warnings

from sentry_flags.testing.receivers import *  # noqa: F403
from sentry_flags.testing.receivers import __all__  # noqa: F401

# stacklevel 2: the warning names the module that imported this one (warnings skips
# importlib's own frames).
warnings.warn(
    "sentry_flags.receivers is deprecated and will be removed in the next release: "
    "import from sentry_flags.testing.receivers instead",
    DeprecationWarning,
    stacklevel=2,
)
