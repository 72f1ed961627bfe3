"""The shop's views: a flagged checkout that fails, and the usual noise."""

from __future__ import annotations

import sentry_sdk
from django.http import HttpRequest, HttpResponse

from shop import monitoring
from shop.flags import context_for, request_org


def identify(request: HttpRequest) -> None:
    """Name the user on Sentry's scope: the Split and Segment forwarders key events by it."""
    if request.user.is_authenticated:
        sentry_sdk.set_user({"id": str(request.user.pk)})
        sentry_sdk.set_tag("org", request_org(request))


def checkout(request: HttpRequest) -> HttpResponse:
    identify(request)
    ld = monitoring.start().launchdarkly
    context = context_for(request)
    # The evaluation makes this context the one the request's errors carry (latest wins).
    new_flow = bool(ld and context and ld.variation("new-checkout", context, False))
    if new_flow:
        raise RuntimeError("new checkout flow: payment provider timed out")
    raise ValueError("old checkout flow: cart total is negative")


def orders(request: HttpRequest) -> HttpResponse:
    # No flag evaluated here: the error carries what FlagsMiddleware's builder makes of the user.
    identify(request)
    raise LookupError("order history: no orders table for this region")


def resize(request: HttpRequest) -> HttpResponse:
    # A browser-noise error the integration ignores (ignore_errors).
    raise RuntimeError("ResizeObserver loop limit exceeded")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
