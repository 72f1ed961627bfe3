"""What the framework glue shares: the default request context and per-request isolation."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

import sentry_sdk

from sentry_flags._privacy import allows_user_info
from sentry_flags._sentry import sentry_isolates_request

if TYPE_CHECKING:
    from ldclient import Context


def require_launchdarkly(module: str) -> None:
    """Fail at set-up, not at the first error, when the LaunchDarkly SDK is missing."""
    try:
        import ldclient  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{module} builds LaunchDarkly contexts and needs the LaunchDarkly SDK: "
            "pip install 'sentry-flags[launchdarkly]'"
        ) from exc


def pii_allowed() -> bool:
    """Whether the current Sentry client lets user data (names, emails) leave the app.

    The same decision as everywhere else (`sentry_flags._privacy.allows_user_info`):
    ``data_collection``'s ``user_info`` where sentry-sdk has it, ``send_default_pii`` where not.
    """
    return allows_user_info(sentry_sdk.get_client().options)


class AnonymousKey:
    """A random key for one anonymous request, made only if asked for, then kept.

    Keeps all errors of one request on one LaunchDarkly context while costing nothing
    for requests that never fail.
    """

    __slots__ = ("_key",)

    def __init__(self) -> None:
        self._key: Optional[str] = None

    def __call__(self) -> str:
        if self._key is None:
            self._key = uuid.uuid4().hex
        return self._key


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
    visitor is keyed by ``anonymous_key`` or a fresh random key.
    """
    from ldclient import Context

    if user_key is None or user_key == "":
        key = anonymous_key or uuid.uuid4().hex
        return Context.builder(key).kind("user").anonymous(True).build()
    builder = Context.builder(str(user_key)).kind("user")
    if pii_allowed():
        if name:
            builder.name(str(name))
        if email:
            builder.set("email", str(email))
    return builder.build()


@contextlib.contextmanager
def request_isolation() -> Iterator[None]:
    """Give the request its own isolation scope unless sentry-sdk already did.

    Without one, requests served by the same thread, or by tasks of one event loop that
    share their parent's scope, would see each other's context and treatments. Forking
    only when needed matters: an error sentry-sdk captures outside our fork would not
    see what was set inside it.
    """
    if sentry_isolates_request():
        yield
        return
    with sentry_sdk.isolation_scope():
        yield
