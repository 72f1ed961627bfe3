"""The default LaunchDarkly context a web request gets, shared by the framework glue."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Optional

import sentry_sdk

from sentry_flags._privacy import Privacy

if TYPE_CHECKING:
    from ldclient import Context


def pii_allowed() -> bool:
    """Whether the current Sentry client lets user data (names, emails) leave the app."""
    return Privacy.from_options(sentry_sdk.get_client().options).user_info


def default_context(
    user_key: Any,
    *,
    name: Optional[str] = None,
    email: Optional[str] = None,
    anonymous_key: Optional[str] = None,
) -> Context:
    """A ``user`` context: keyed by ``user_key``, or anonymous when there is none.

    Name and email are added only when the app allows PII: the context also reaches
    LaunchDarkly through the forwarder, where our redaction does not apply. An anonymous
    visitor is keyed by ``anonymous_key`` (e.g. the session key) or a fresh random key.
    """
    from ldclient import Context

    if user_key is None or user_key == "":
        key = anonymous_key or uuid.uuid4().hex
        return Context.builder(key).kind("user").anonymous(True).build()
    builder = Context.builder(str(user_key)).kind("user")
    if pii_allowed():
        if name:
            builder.name(name)
        if email:
            builder.set("email", email)
    return builder.build()
