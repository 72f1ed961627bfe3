"""The LaunchDarkly SDK's private names sentry-flags reads, and why no public API serves.

- ``LDClient._config`` (and ``AsyncLDClient._config``): the client's ``Config``. Neither
  client hands its config out (``LDClient`` has ``get_sdk_key()`` and nothing for privacy;
  a plugin's ``register()`` gets ``EnvironmentMetadata``, without it), and the app may build
  the client before Sentry, so we cannot ask for the settings ourselves. Read for:

  * the private-attribute settings (``private_attributes``, ``all_attributes_private``,
    public properties of ``Config``), so ``launchdarklyContext`` leaves out what this
    client's own events would. Without them every attribute is redacted: the safe side.
  * its ``plugins``, to find a ``SentryFlagsAsyncPlugin`` an ``AsyncLDClient`` registers
    only in ``start()``. Without them our own hook is added too, and each evaluation is
    recorded by both (the later record of a flag replaces the earlier).

- ``AsyncLDClient._started`` and ``._closed``: the experimental async client's lifecycle.
  Its public ``is_initialized()`` is a coroutine about the data source, not about whether
  events are sent; before ``start()`` and after ``close()`` its ``track`` drops events
  silently. Without them the forwarder takes the client as started and open: such errors
  are counted as forwarded instead of ``client_not_started`` / ``client_closed``.

Tested on launchdarkly-server-sdk 9.12 (the declared floor, tox env ``deps-oldest``) and
the newest 9.x (9.20 when this was written, the default envs); ``AsyncLDClient`` exists from
9.20 on. A name gone in another release makes its feature step aside
(`sentry_flags._private.step_aside`): counted, one warning, never an exception.
"""

from __future__ import annotations

from typing import Any, Optional

from sentry_flags._private import PrivateName, step_aside

__all__ = [
    "CLOSED",
    "CONFIG",
    "PRIVATE_NAMES",
    "STARTED",
    "UNREADABLE",
    "async_closed",
    "async_started",
    "client_config",
    "is_ld_client",
]

CONFIG = PrivateName(
    "launchdarkly-server-sdk",
    "LDClient._config",
    "the client's private-attribute settings and plugins",
    "every launchdarklyContext attribute is redacted, and an AsyncLDClient's plugin may "
    "record each evaluation a second time",
)
STARTED = PrivateName(
    "launchdarkly-server-sdk",
    "AsyncLDClient._started",
    "telling a not yet started AsyncLDClient (which drops events) from a running one",
    "errors are handed to it as if it were started",
)
CLOSED = PrivateName(
    "launchdarkly-server-sdk",
    "AsyncLDClient._closed",
    "telling a closed AsyncLDClient (which drops events) from a running one",
    "errors are handed to it as if it were open",
)
PRIVATE_NAMES = (CONFIG, STARTED, CLOSED)


class _Unreadable:
    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Any = _Unreadable()  # what client_config gives for an LD client without one


def is_ld_client(client: Any) -> bool:
    """Whether ``client`` is one of the LaunchDarkly SDK's own classes (sync or async)."""
    return type(client).__module__.startswith("ldclient.")


def client_config(client: Any) -> Any:
    """``client``'s Config. :data:`UNREADABLE` (counted, warned once) for a LaunchDarkly
    client of a release that keeps it elsewhere; None for another object without one."""
    try:
        return client._config
    except AttributeError as exc:
        if not is_ld_client(client):
            return None
        step_aside(CONFIG, exc)
        return UNREADABLE


def async_started(client: Any) -> Optional[bool]:
    """Whether an ``AsyncLDClient`` was started; None when this release does not say (the
    caller steps aside with :data:`STARTED`)."""
    value = getattr(client, "_started", None)
    return value if isinstance(value, bool) else None


def async_closed(client: Any) -> Optional[bool]:
    """Whether an ``AsyncLDClient`` was closed; None when this release does not say (the
    caller steps aside with :data:`CLOSED`)."""
    value = getattr(client, "_closed", None)
    return value if isinstance(value, bool) else None
