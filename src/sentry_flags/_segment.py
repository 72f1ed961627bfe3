"""What sentry-flags relies on in Segment's SDKs beyond their documented API, and why.

No private name of Segment's is used: both clients (segment-analytics-python 2.x, the legacy
analytics-python 1.4) keep their settings in public attributes. Two undocumented behaviours
are relied on instead, each checked where it is used, stepping aside when it changes:

- :data:`LIBRARY`: both clients write ``context["library"]`` item by item into the context
  dict they are given (then copy the message), overwriting whatever the caller put there.
  Sentry's forwarder names itself in ``context.library`` and destinations read it; no
  option keeps it, so `LibraryKept` ignores that one write. Checked on every message
  a client returns (``track`` returns ``(queued, message)``); when it holds Segment's own
  library, the write went another way: Segment's name stays, nothing else changes.
- :data:`CONSUMERS`: a ``Consumer`` keeps each constructor argument in an attribute of the
  same name. Segment has no post-fork call (LaunchDarkly has ``postfork()``, Split
  ``resume()``), so a forked child's consumers are rebuilt with their class's constructor
  from those attributes; a parameter without its attribute means a release that keeps it
  elsewhere: the consumers stay stopped and the child's errors are skipped as
  ``client_stopped``, as they were before this restart existed.

Tested on segment-analytics-python 2.3.1 (the declared floor, tox env ``deps-oldest``), the
newest 2.x (2.4 when this was written, the default envs) and analytics-python 1.4.post1
(tox env ``segment-legacy``).
"""

from __future__ import annotations

import inspect
import queue
from collections.abc import Mapping
from typing import Any, Optional

from sentry_flags._private import PrivateName

__all__ = ["CONSUMERS", "LIBRARY", "PRIVATE_NAMES", "LibraryKept", "library_lost", "rebuilt_consumer"]

LIBRARY = PrivateName(
    "segment-analytics-python",
    "Client.track, writing context['library'] into the given dict",
    "naming sentry-flags in each message's context.library, as Sentry's forwarder does",
    "messages carry Segment's own library name",
)
CONSUMERS = PrivateName(
    "segment-analytics-python",
    "Consumer, keeping each constructor argument as an attribute",
    "restarting Segment's consumer threads in a forked child",
    "a forked child's errors are skipped as client_stopped",
)
PRIVATE_NAMES = (LIBRARY, CONSUMERS)


class LibraryKept(dict[str, Any]):
    """A ``context`` whose ``library`` Segment's client cannot replace (see :data:`LIBRARY`).

    Every other key is set as usual, and the client copies the dict into a plain one
    before it is queued.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        if key == "library" and "library" in self:
            return
        super().__setitem__(key, value)


def library_lost(result: Any, library: Mapping[str, Any]) -> bool:
    """Whether the message a ``track`` returned names another library than ``library``.

    False when the client returned no message to look at (the legacy module API).
    """
    message = result[1] if isinstance(result, tuple) and len(result) == 2 else None
    context = message.get("context") if isinstance(message, Mapping) else None
    if not isinstance(context, Mapping) or "library" not in context:
        return False
    return bool(context["library"] != library)


def rebuilt_consumer(old: Any, on_queue: queue.Queue[Any]) -> Optional[Any]:
    """A new, unstarted consumer like ``old``, taking from ``on_queue``: built by its class's
    constructor from ``old``'s attributes. None when a parameter has no attribute of the same
    name (see :data:`CONSUMERS`)."""
    kwargs: dict[str, Any] = {}
    parameters = list(inspect.signature(type(old).__init__).parameters.values())[1:]
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name == "queue":
            kwargs["queue"] = on_queue
        elif hasattr(old, parameter.name):
            kwargs[parameter.name] = getattr(old, parameter.name)
        else:
            return None
    if "queue" not in kwargs:
        return None
    new = type(old)(**kwargs)
    new.name, new.daemon = old.name, True
    return new
