"""A Flask shop whose checkout is behind a LaunchDarkly flag, monitored by Sentry.

Run it (any vendor key may be left unset):

    SENTRY_DSN=... LAUNCHDARKLY_SDK_KEY=... SPLIT_SDK_KEY=... SEGMENT_WRITE_KEY=... \
        flask --app examples/flask_app/app.py run

Requests name their user with ``?user=<id>&org=<id>`` (a stand-in for real login).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import sentry_sdk
from flask import Flask, request
from ldclient import Context
from sentry_sdk.integrations.flask import FlaskIntegration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vendors import Vendors, flags_integration, no_personal_data, vendors_from_env

from sentry_flags.flask import FlagsExtension


def context_for(req: Any) -> Optional[Context]:
    """The LaunchDarkly context of the user making ``req``: a user in an org."""
    user_id = req.args.get("user")
    if not user_id:
        return None
    user = Context.builder(user_id).kind("user").set("plan", "pro").build()
    org = Context.builder(req.args.get("org", "acme")).kind("org").build()
    return Context.create_multi(user, org)


def create_app(vendors: Optional[Vendors] = None, *, with_sentry_flags: bool = True) -> Flask:
    """The app; ``with_sentry_flags=False`` is the same app on plain sentry-sdk (for comparisons)."""
    vendors = vendors or vendors_from_env()
    integrations: list[Any] = [FlaskIntegration()]
    if with_sentry_flags:
        integrations.append(flags_integration(vendors))
    sentry_sdk.init(
        dsn=os.environ.get("SENTRY_DSN"),
        environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
        integrations=integrations,
        **no_personal_data(),
    )
    app = Flask(__name__)
    app.extensions["vendors"] = vendors
    if with_sentry_flags:
        FlagsExtension(app, context_from_request=context_for)

    @app.before_request
    def identify() -> None:
        if request.args.get("user"):
            sentry_sdk.set_user({"id": request.args["user"]})
            sentry_sdk.set_tag("org", request.args.get("org", "acme"))

    @app.route("/checkout")
    def checkout() -> str:
        ld = vendors.launchdarkly
        context = context_for(request)
        new_flow = bool(ld and context and ld.variation("new-checkout", context, False))
        if new_flow:
            raise RuntimeError("new checkout flow: payment provider timed out")
        raise ValueError("old checkout flow: cart total is negative")

    @app.route("/resize")
    def resize() -> str:
        # A browser-noise error the integration ignores (ignore_errors).
        raise RuntimeError("ResizeObserver loop limit exceeded")

    @app.route("/healthz")
    def healthz() -> str:
        return "ok"

    return app


if __name__ == "__main__":
    create_app().run()
