"""Forwarders: each captured error, through a vendor's own Python SDK.

Vendor modules are imported on first use, so a missing extra only matters to whoever
uses that forwarder, and says which extra to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sentry_flags.forwarders._base import Forwarder, Stats, VendorCall

if TYPE_CHECKING:
    from sentry_flags.forwarders.launchdarkly import LaunchDarklyForwarder
    from sentry_flags.forwarders.openfeature import OpenFeatureForwarder
    from sentry_flags.forwarders.segment import SegmentForwarder
    from sentry_flags.forwarders.split import SplitForwarder

__all__ = [
    "Forwarder",
    "LaunchDarklyForwarder",
    "OpenFeatureForwarder",
    "SegmentForwarder",
    "SplitForwarder",
    "Stats",
    "VendorCall",
]

_LAZY = {
    "SplitForwarder": "sentry_flags.forwarders.split",
    "LaunchDarklyForwarder": "sentry_flags.forwarders.launchdarkly",
    "SegmentForwarder": "sentry_flags.forwarders.segment",
    "OpenFeatureForwarder": "sentry_flags.forwarders.openfeature",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sentry_flags.forwarders' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
