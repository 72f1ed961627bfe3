"""Split treatments on Sentry errors, through the Split SDK's impression listener.

    from sentry_flags.split import impression_listener
    factory = get_factory(SDK_KEY, config={"impressionListener": impression_listener()})
    # asyncio SDK (get_factory_async): {"impressionListener": async_impression_listener()}

splitio calls the listener synchronously inside ``get_treatment*``, on the caller's thread
(or task, for the asyncio client), so each treatment lands on the isolation scope of the
request or task that asked for it. Every treatment goes to the ``flagEvaluations`` context
(``{"flag", "value": treatment, "reason": label, "source": "split"}``); ``on``/``off``
treatments also go to Sentry's own ``flags`` context. The matching key and the attributes
are not recorded: they identify the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from sentry_flags._flags import MAX_FLAGS, record_flag

__all__ = [
    "MAX_TREATMENTS",
    "AsyncImpressionListener",
    "ImpressionListener",
    "async_impression_listener",
    "impression_listener",
    "record_treatment",
]

MAX_TREATMENTS = MAX_FLAGS  # the latest flags of every source together, as Sentry's buffer


def record_treatment(feature: str, treatment: str, label: Optional[str] = None) -> bool:
    """Record that ``feature`` served ``treatment`` in the current request or task.

    Never raises. The latest treatment of a feature wins and moves it to the end. False when
    it was not recorded: not a feature name and a treatment, or recording failed (logged at
    debug with its traceback).
    """
    if isinstance(feature, str) and feature and isinstance(treatment, str):
        return record_flag(
            "split", feature, treatment, reason=label if isinstance(label, str) and label else None
        )
    return False


def _record_impression(data: Any) -> bool:
    impression = data.get("impression") if isinstance(data, Mapping) else None
    if impression is None:
        return False
    return record_treatment(
        getattr(impression, "feature_name", None),  # type: ignore[arg-type]
        getattr(impression, "treatment", None),  # type: ignore[arg-type]
        getattr(impression, "label", None),
    )


class ImpressionListener:
    """splitio's ``impressionListener`` interface: ``log_impression(data)``.

    ``data`` is ``{"impression": Impression, "attributes": ..., "sdk-language-version": ...,
    "instance-id": ...}``; only the impression's feature, treatment and label are used.
    Build it with `impression_listener`. Guide: docs/frameworks.md, "Split treatments".
    """

    def log_impression(self, data: Any) -> None:
        """Record the impression's treatment for the current request or task; never raises."""
        _record_impression(data)


class AsyncImpressionListener:
    """The same for splitio's asyncio client, which awaits ``log_impression``.

    Build it with `async_impression_listener`.
    """

    async def log_impression(self, data: Any) -> None:
        """Record the impression's treatment for the current request or task; never raises."""
        _record_impression(data)


def impression_listener() -> ImpressionListener:
    """The listener to pass as ``impressionListener`` in a (threaded) Split factory's config."""
    return ImpressionListener()


def async_impression_listener() -> AsyncImpressionListener:
    """The listener to pass as ``impressionListener`` to ``get_factory_async``."""
    return AsyncImpressionListener()
