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


def context_for(request: HttpRequest) -> Optional[Context]:
    """The context flags are evaluated for, and the one Sentry errors carry.

    FlagsMiddleware calls it only when an error is captured. Visitors who are not logged
    in get sentry-flags' default: an anonymous context keyed by a hash of their session.
    """
    user = request.user
    if not user.is_authenticated:
        return default_request_context(request)
    member = Context.builder(str(user.pk)).kind("user").set("plan", "pro" if user.is_staff else "free")
    org = Context.builder(org_of(user)).kind("org").build()
    return Context.create_multi(member.build(), org)
