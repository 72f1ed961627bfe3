"""The Split SDK's private names sentry-flags reads, and why no public API serves.

- ``SplitClient._factory._sync_manager._synchronizer._split_tasks.events_task``: the
  factory's events task. splitio has no public flush short of ``factory.destroy()``, which
  we must never call on the app's factory; the task's own ``flush()`` (what the SDK calls
  when its queue is full) posts the queued events now. Its presence also tells an
  in-memory factory, whose threads a fork kills, from a redis or localhost one. Without it
  our flush leaves the events to Split's own timer (``eventsPushRate``), and a forked child
  of a running factory is not recognised: its errors are handed to the factory, whose
  threads no longer run, instead of being skipped as ``client_stopped``.

- ``SplitClient._factory._sdk_key``: tells a client of splitio's localhost mode (SDK key
  ``"localhost"``), whose ``track`` stores nothing and returns None. splitio decides the
  mode by that same key; no public API says which mode a client runs in. Without it such
  errors are handed to ``track`` and counted as forwarded although nothing is sent.

Public and used as such: ``client.ready`` and ``client.destroyed`` (a factory that is
ready in a forked child was running in the parent; one built with
``preforkedInitialization`` is not ready until ``factory.resume()``).

Only splitio's own clients are read; a duck-typed client (anything with a ``track``) has
none of this and is left alone. The module never imports splitio.

Tested on splitio-client 10.5 (the declared floor, tox env ``deps-oldest``) and the newest
10.x (10.7 when this was written, the default envs). A name gone in another release makes
its feature step aside (``Forwarder._step_aside``): counted, one warning, no exception.
"""

from __future__ import annotations

from typing import Any

from sentry_flags._private import PrivateName

__all__ = ["EVENTS_TASK", "PRIVATE_NAMES", "SDK_KEY", "events_task", "in_localhost_mode", "is_splitio_client"]

EVENTS_TASK = PrivateName(
    "splitio-client",
    "SplitClient._factory._sync_manager._synchronizer._split_tasks.events_task",
    "flushing Split's queued events, and telling a forked child's stopped factory",
    "Split posts its events on its own timer, and a forked child's errors go to a factory "
    "whose threads are gone",
)
SDK_KEY = PrivateName(
    "splitio-client",
    "SplitClient._factory._sdk_key",
    "telling a client of splitio's localhost mode, whose track sends nothing",
    "errors to a localhost-mode client are counted as forwarded although nothing is sent",
)
PRIVATE_NAMES = (EVENTS_TASK, SDK_KEY)


def is_splitio_client(client: Any) -> bool:
    """Whether ``client`` is one of splitio's own clients (sync or asyncio)."""
    return type(client).__module__.startswith("splitio.")


def events_task(client: Any) -> Any:
    """The factory's events task; None in modes without one (redis, localhost); raises
    AttributeError when this splitio release keeps it elsewhere."""
    return client._factory._sync_manager._synchronizer._split_tasks.events_task


def in_localhost_mode(client: Any) -> bool:
    """Whether ``client`` belongs to a factory in splitio's localhost mode (where ``track``
    stores nothing and returns None); False for anything that is not splitio's. Raises
    AttributeError when this splitio release keeps the key elsewhere: the forwarder steps
    aside, counting it in its own stats."""
    if not is_splitio_client(client):
        return False
    return bool(client._factory._sdk_key == "localhost")
