"""The shop's LaunchDarkly context: a user in an org (named in settings.SENTRY_FLAGS)."""

from __future__ import annotations

from typing import Any, Optional

from django.http import HttpRequest
from ldclient import Context

from sentry_flags.django import default_request_context


def org_of(user: Any) -> str:
    """A user's organisation: their first group, or the default org."""
    group = user.groups.order_by("name").first()
    return group.name if group is not None else "acme"


def request_org(request: HttpRequest) -> str:
    """The org of the request's user, looked up once per request and kept on it."""
    org: Optional[str] = getattr(request, "shop_org", None)
    if org is None:
        org = org_of(request.user)
        request.shop_org = org  # type: ignore[attr-defined]
    return org


def context_for(request: HttpRequest) -> Optional[Context]:
    """The context flags are evaluated for, and the one Sentry errors carry.

    FlagsMiddleware also calls it when an error is captured, where it must not query the
    database: the views look the user and the org up first (``identify``). Visitors who are
    not logged in get sentry-flags' default: an anonymous context keyed by a hash of their
    session.
    """
    user = request.user
    if not user.is_authenticated:
        return default_request_context(request)
    member = Context.builder(str(user.pk)).kind("user").set("plan", "pro" if user.is_staff else "free")
    org = Context.builder(request_org(request)).kind("org").build()
    return Context.create_multi(member.build(), org)
