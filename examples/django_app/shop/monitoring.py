"""Sentry, sentry-flags and the vendor clients, started once per process by settings.py.

Every vendor is optional and configured from environment variables by examples/vendors.py:
SENTRY_DSN, LAUNCHDARKLY_SDK_KEY, SPLIT_SDK_KEY, SEGMENT_WRITE_KEY (and their URL overrides).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # examples/, for vendors.py
from vendors import Vendors, flags_integration, no_personal_data, vendors_from_env

vendors: Optional[Vendors] = None


def start() -> Vendors:
    """Build the vendor clients and initialise Sentry (once; later calls return the same)."""
    global vendors
    if vendors is None:
        vendors = vendors_from_env()
        sentry_sdk.init(
            dsn=os.environ.get("SENTRY_DSN"),
            environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
            integrations=[DjangoIntegration(), flags_integration(vendors)],
            **no_personal_data(),
        )
    return vendors
