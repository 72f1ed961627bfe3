"""A worker script: no web framework, the LaunchDarkly context set by hand per job.

SENTRY_DSN=... LAUNCHDARKLY_SDK_KEY=... python examples/script.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sentry_sdk
from ldclient import Context

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vendors import flags_integration, no_personal_data, vendors_from_env

from sentry_flags import set_launchdarkly_context


def process_invoice(customer_id: str, amount: int) -> None:
    if amount < 0:
        raise ValueError(f"invoice amount is negative: {amount}")


def main() -> int:
    vendors = vendors_from_env()
    sentry_sdk.init(
        dsn=os.environ.get("SENTRY_DSN"),
        environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
        integrations=[flags_integration(vendors)],
        **no_personal_data(),
    )
    failed = 0
    for customer_id, amount in (("cust-1", 120), ("cust-2", -5)):
        # One isolation scope per job, so one job's context never rides on another's errors.
        with sentry_sdk.isolation_scope():
            sentry_sdk.set_user({"id": customer_id})
            set_launchdarkly_context(Context.builder(customer_id).kind("user").build())
            try:
                process_invoice(customer_id, amount)
            except ValueError:
                sentry_sdk.capture_exception()
                failed += 1
    sentry_sdk.flush()  # also drains sentry-flags' queue and flushes the vendor clients
    vendors.close()
    print(f"processed 2 invoices, {failed} failed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
