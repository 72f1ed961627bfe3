"""What a forked child must redo before sentry-flags works in it.

A child made by ``fork()`` (gunicorn ``--preload`` workers, ``multiprocessing`` with the
``fork`` start method, Celery's prefork pool) has only the thread that called fork: our
delivery worker and the vendor SDKs' threads are gone, and a lock one of them held at that
moment stays held forever. Every object registered here gets its ``_after_fork()`` called
in each child, right after fork returns there and before the child runs anything else.

One ``os.register_at_fork`` hook for the whole process, however many times
``FlagsIntegration`` is built (tests build hundreds); objects are held weakly.
Platforms without ``fork`` (Windows) never call it.

uWSGI runs these hooks only with ``--py-call-uwsgi-fork-hooks`` (sentry-sdk and the
LaunchDarkly SDK ask for it too); without it a preforked worker forwards nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

__all__ = ["ForkSafeLock", "run_after_fork"]

logger = logging.getLogger("sentry_flags")

_objects: weakref.WeakSet[Any] = weakref.WeakSet()
_registered = False
_register_lock = threading.Lock()


def run_after_fork(obj: Any) -> None:
    """Call ``obj._after_fork()`` in every child forked from now on, while ``obj`` lives."""
    global _registered
    with _register_lock:
        _objects.add(obj)
        if not _registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_in_child)
            _registered = True


def _in_child() -> None:
    # A fresh lock: the parent's may have been held by another thread at fork time.
    global _register_lock
    _register_lock = threading.Lock()
    for obj in list(_objects):
        try:
            obj._after_fork()
        except Exception:  # never raise out of os.fork() into the app
            logger.debug("sentry-flags could not reset %r after fork", obj, exc_info=True)


class ForkSafeLock:
    """A lock each forked child gets afresh: a thread the child lacks may hold the parent's."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        run_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()
