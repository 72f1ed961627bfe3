"""Split treatments on Sentry errors, through the Split SDK's impression listener.

    from sentry_flags.split import impression_listener
    factory = get_factory(SDK_KEY, config={"impressionListener": impression_listener()})
    # asyncio SDK (get_factory_async): {"impressionListener": async_impression_listener()}

splitio calls the listener synchronously inside ``get_treatment*``, on the caller's thread
(or task, for the asyncio client), so each treatment lands on the isolation scope of the
request or task that asked for it. Every treatment goes under the ``splitTreatments``
context; ``on``/``off`` treatments also go to Sentry's own ``flags`` context. The matching
key and the attributes are not recorded: they identify the user.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional

import sentry_sdk

from sentry_flags._fork import ForkSafeLock

AddFeatureFlag = Callable[[str, bool], None]

_add_feature_flag: Optional[AddFeatureFlag]
try:
    from sentry_sdk.feature_flags import add_feature_flag as _add_feature_flag
except ImportError:  # pragma: no cover - sentry-sdk releases before feature flags
    _add_feature_flag = None

__all__ = [
    "CONTEXT_KEY",
    "MAX_TREATMENTS",
    "AsyncImpressionListener",
    "ImpressionListener",
    "async_impression_listener",
    "impression_listener",
    "record_treatment",
]

logger = logging.getLogger("sentry_flags")

CONTEXT_KEY = "splitTreatments"
MAX_TREATMENTS = 100  # the most recent features; Sentry's flags buffer keeps 100 as well
BOOLEAN_TREATMENTS = {"on": True, "off": False}

_lock = ForkSafeLock()


def record_treatment(feature: str, treatment: str, label: Optional[str] = None) -> None:
    """Record ``feature`` -> ``treatment`` on the current isolation scope. Never raises.

    The latest treatment of a feature wins and moves it to the end; past
    :data:`MAX_TREATMENTS` features the oldest is dropped. The context dict is replaced,
    never changed in place, because scopes forked earlier share it.
    """
    try:
        if not isinstance(feature, str) or not isinstance(treatment, str):
            return
        if _add_feature_flag is not None and treatment in BOOLEAN_TREATMENTS:
            _add_feature_flag(feature, BOOLEAN_TREATMENTS[treatment])
        entry = {"treatment": treatment}
        if isinstance(label, str) and label:
            entry["label"] = label
        scope = sentry_sdk.get_isolation_scope()
        with _lock:
            current = getattr(scope, "_contexts", {}).get(CONTEXT_KEY)
            treatments = dict(current) if isinstance(current, Mapping) else {}
            treatments.pop(feature, None)
            treatments[feature] = entry
            for oldest in list(treatments)[: max(0, len(treatments) - MAX_TREATMENTS)]:
                del treatments[oldest]
            scope.set_context(CONTEXT_KEY, treatments)
    except Exception:
        logger.debug("could not record a Split treatment", exc_info=True)


def _record_impression(data: Any) -> None:
    impression = data.get("impression") if isinstance(data, Mapping) else None
    if impression is None:
        return
    record_treatment(
        getattr(impression, "feature_name", None),  # type: ignore[arg-type]
        getattr(impression, "treatment", None),  # type: ignore[arg-type]
        getattr(impression, "label", None),
    )


class ImpressionListener:
    """splitio's ``impressionListener`` interface: ``log_impression(data)``.

    ``data`` is ``{"impression": Impression, "attributes": ..., "sdk-language-version": ...,
    "instance-id": ...}``; only the impression's feature, treatment and label are used.
    """

    def log_impression(self, data: Any) -> None:
        _record_impression(data)


class AsyncImpressionListener:
    """The same for splitio's asyncio client, which awaits ``log_impression``."""

    async def log_impression(self, data: Any) -> None:
        _record_impression(data)


def impression_listener() -> ImpressionListener:
    """The listener to pass as ``impressionListener`` in a (threaded) Split factory's config."""
    return ImpressionListener()


def async_impression_listener() -> AsyncImpressionListener:
    """The listener to pass as ``impressionListener`` to ``get_factory_async``."""
    return AsyncImpressionListener()
