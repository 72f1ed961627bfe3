"""Small helpers shared by the core tests (context, filters, settings, pipeline, concurrency).

Everything here works on what the loopback Sentry receiver actually got: events are
captured with the real sentry-sdk, flushed with a bound, and read back off the wire.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

import sentry_sdk

from receivers import (
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
    split_definition,
    wait_for,
)

LD_KEY = "launchdarklyContext"
FLUSH_TIMEOUT = 5.0


class CoreTestError(Exception):
    """An exception type no library raises, so filters can name it safely."""


def raise_and_capture(message: str, exc_type: type[BaseException] = ValueError) -> Optional[str]:
    """Raise ``exc_type(message)`` here and capture it; the event id, or None when dropped."""
    try:
        raise exc_type(message)
    except exc_type:
        return sentry_sdk.capture_exception()


def capture_error(message: str, exc_type: type[BaseException] = ValueError) -> str:
    """Like :func:`raise_and_capture`, for tests where the event must not be dropped."""
    event_id = raise_and_capture(message, exc_type)
    assert event_id is not None, f"{message!r} was dropped before sending"
    return event_id


def init_forwarding(
    sentry_init: Callable[..., Any],
    *forwarders: Any,
    launchdarkly_client: Any = None,
    **options: Any,
) -> Any:
    """``sentry_init`` with a FlagsIntegration holding ``forwarders``; environment production."""
    from sentry_flags import FlagsIntegration

    options.setdefault("environment", "production")
    integration = FlagsIntegration(launchdarkly_client=launchdarkly_client, forwarders=list(forwarders))
    return sentry_init(integrations=[integration], **options)


def flush() -> None:
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)


def received(receiver: SentryReceiver, count: int) -> list[dict[str, Any]]:
    """Flush, then wait (bounded) for at least ``count`` error events and return them all."""
    flush()
    return receiver.wait_for_events(count)


def only_event(receiver: SentryReceiver) -> dict[str, Any]:
    """Flush and return the single error event the receiver got (fails if there are more)."""
    events = received(receiver, 1)
    assert len(events) == 1, [summary(e) for e in events]
    return events[0]


def exception_value(event: dict[str, Any]) -> Optional[str]:
    values = (event.get("exception") or {}).get("values") or []
    return values[-1].get("value") if values else None


def message_of(event: dict[str, Any]) -> Optional[str]:
    logentry = event.get("logentry") or {}
    return logentry.get("formatted") or logentry.get("message") or event.get("message")


def summary(event: dict[str, Any]) -> Optional[str]:
    """What identifies a test event: its exception value, else its message."""
    return exception_value(event) or message_of(event)


def summaries(receiver: SentryReceiver, count: int) -> list[Optional[str]]:
    """Flush, wait for ``count`` events, and return every received event's summary, sorted."""
    return sorted(summary(e) or "" for e in received(receiver, count))


def by_summary(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        key = summary(event)
        assert key is not None, event
        assert key not in found, key
        found[key] = event
    return found


def ld_context_of(event: dict[str, Any]) -> Any:
    return (event.get("contexts") or {}).get(LD_KEY)


def raw_bodies(receiver: SentryReceiver) -> bytes:
    """Every envelope body the receiver got (decompressed), concatenated."""
    return b"\n".join(r.body for r in receiver.requests_to("/api/"))


def wait_for_transactions(receiver: SentryReceiver, count: int = 1) -> list[dict[str, Any]]:
    flush()
    return wait_for(
        lambda: (found := receiver.transactions) and len(found) >= count and found,
        message=f"{count} transaction(s)",
    )


def ld_hooks(ld_client: Any, name: str = "sentry-flags") -> list[Any]:
    """The hooks named ``name`` registered on a real LDClient."""
    hooks = ld_client._LDClient__hooks  # the SDK keeps them private; read-only here
    return [h for h in hooks if h.metadata.name == name]


@contextmanager
def sentry_flags_logger_restored() -> Iterator[logging.Logger]:
    """``debug=True`` sets the ``sentry_flags`` logger to DEBUG with a stderr handler; undo it."""
    log = logging.getLogger("sentry_flags")
    level, handlers, propagate = log.level, list(log.handlers), log.propagate
    try:
        yield log
    finally:
        log.setLevel(level)
        log.handlers[:] = handlers
        log.propagate = propagate


def flags_debug_messages(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name == "sentry_flags" and r.levelno == logging.DEBUG]


def vendor_env(
    sentry: SentryReceiver, ld: LaunchDarklyReceiver, split: SplitReceiver, segment: SegmentReceiver,
    **extra: str,
) -> dict[str, str]:  # fmt: skip
    """This process's environment plus what examples/vendors.py reads, aimed at the stand-ins."""
    return dict(
        os.environ,
        SENTRY_DSN=sentry.dsn,
        LAUNCHDARKLY_SDK_KEY="ld-example-key",
        LAUNCHDARKLY_BASE_URI=ld.url,
        SPLIT_SDK_KEY="split-example-key",
        SPLIT_API_URL=split.api_url,
        SEGMENT_WRITE_KEY="segment-example-key",
        SEGMENT_HOST=segment.host,
        no_proxy="127.0.0.1",
        **extra,
    )


def split_whitelist_flag(name: str, off_for: list[str]) -> dict[str, Any]:
    """A Split flag ``on`` (label "default rule") for every key but ``off_for`` ("whitelisted")."""
    flag = split_definition(name, treatment="on")
    whitelist = {
        "conditionType": "WHITELIST",
        "matcherGroup": {
            "combiner": "AND",
            "matchers": [
                {
                    "keySelector": None,
                    "matcherType": "WHITELIST",
                    "negate": False,
                    "whitelistMatcherData": {"whitelist": off_for},
                }
            ],
        },
        "partitions": [{"treatment": "off", "size": 100}],
        "label": "whitelisted",
    }
    flag["conditions"] = [whitelist, *flag["conditions"]]
    return flag


def run_threads(target: Callable[[int], None], count: int, *, join_timeout: float = 30.0) -> None:
    """Run ``target(i)`` on ``count`` threads at once; re-raise their failures here."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), name=f"test-worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_timeout)
    assert not [t for t in threads if t.is_alive()], "threads did not finish"
    assert not errors, errors[:3]


def wait_child(pid: int, deadline: float) -> int:
    """A forked child's exit code; killed (-9) if it has not exited by ``deadline``."""
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


def scope_flags(scope: Any, *, sentry: bool = False) -> list[dict[str, Any]]:
    """What an error captured now would carry from ``scope``'s flag log: the
    ``flagEvaluations`` values, or (``sentry=True``) Sentry's ``flags`` values."""
    from sentry_flags._flags import FLAGS_KEY, flag_contexts

    log = scope._contexts.get(FLAGS_KEY)
    if log is None:
        return []
    evaluations, flags = flag_contexts(log, None)
    if sentry:
        return list((flags or {}).get("values", []))
    return list(evaluations["values"])
