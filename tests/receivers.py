"""The loopback receivers ship in the package (sentry_flags.testing); tests import them here.

One difference: the tests' ``SentryReceiver`` runs every event it accepts through Sentry's
own normalizer (sentry-relay, in the test extra) and fails the test that built it when
Relay would not keep a context sentry-flags writes as it was sent: an error, a trim, or a
silent change (what Relay drops past its budget or depth without a mark). The ``sentry_receiver``
fixture and every ``with SentryReceiver() as ...`` in the tests are this one.
"""

from typing import Any

from sentry_flags.testing import receivers as _shipped
from sentry_flags.testing.receivers import *  # noqa: F403
from sentry_flags.testing.receivers import __all__  # noqa: F401


class SentryReceiver(_shipped.SentryReceiver):
    """The shipped receiver with ``normalize=True, strict=True, errors_only=False`` unless a
    test says otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("normalize", True)
        kwargs.setdefault("strict", True)
        kwargs.setdefault("errors_only", False)
        super().__init__(*args, **kwargs)
