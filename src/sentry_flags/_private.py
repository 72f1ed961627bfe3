"""Private names of the vendor SDKs and frameworks: declared, counted, stepped around when gone.

A private name is what a vendor's patch release may rename without notice. Each one we
use lives in that SDK's module (``_ldclient``, ``_splitio``, ``_segment``; sentry-sdk's in
``_sentry``; Django's in ``_django``, Flask-Login's in ``_flask_login``), declared there as
a `PrivateName` that says what it serves and what happens without it
(``tests/test_private_names.py`` compares those declarations with what the source touches).
When the installed release lacks one, the feature it serves steps aside: `step_aside`
counts it and logs one warning per name per process; nothing raises and nothing else is lost.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

from sentry_flags._fork import ForkSafeLock

__all__ = ["PrivateName", "step_aside", "stepped_aside"]

logger = logging.getLogger("sentry_flags")


@dataclass(frozen=True)
class PrivateName:
    """One private name of a vendor SDK or framework that a feature of ours relies on.

    ``path`` is how the SDK spells it (``LDClient._config``, ``session["_user_id"]`` for a
    key); ``serves`` is the feature, ``instead`` what happens while the name is missing.
    """

    distribution: str
    path: str
    serves: str
    instead: str

    @property
    def names(self) -> tuple[str, ...]:
        """The private parts of ``path``: what the source touches."""
        return tuple(part for part in re.split(r"[.\[\]\"']+", self.path) if part.startswith("_"))


_lock = ForkSafeLock()
_counts: Counter[str] = Counter()
_warned: set[str] = set()


def step_aside(name: PrivateName, exc: Optional[BaseException] = None) -> None:
    """Count that ``name`` was missing; warn the first time. Never raises."""
    try:
        with _lock:
            _counts[name.path] += 1
            first = name.path not in _warned
            _warned.add(name.path)
        if first:  # after it, only counted: the hot paths (every evaluation) call this per use
            logger.warning(
                "%s %s has no %s (%s), which sentry-flags uses for %s; %s. Please report this "
                "with the release numbers.",
                name.distribution, _installed(name.distribution), name.path,
                "changed" if exc is None else type(exc).__name__, name.serves, name.instead,
            )  # fmt: skip
    except Exception:  # a log handler that raises must not reach the caller
        logger.debug("could not report a missing private name", exc_info=True)


def stepped_aside() -> dict[str, int]:
    """How often each missing private name made a feature step aside, by ``path``."""
    with _lock:
        return dict(_counts)


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except (PackageNotFoundError, ValueError):
        return "(version unknown)"
