"""Forked workers: gunicorn ``--preload`` and ``multiprocessing`` with the ``fork`` start method.

Each scenario runs this file as a script in a fresh Python process (the "app"): it builds
real LaunchDarkly, Split and Segment clients aimed at loopback receivers owned by the test,
initialises sentry-sdk with ``FlagsIntegration`` and all three forwarders, forks, and raises
errors in the children *and* in the parent after the fork. The test then asserts on what the
receivers got. A fresh process keeps pytest's own threads out of the fork and lets each
scenario start from a process that has never forked.

What a child needs, per vendor (docs/forwarders-*.md, "Forking servers"):

- sentry-sdk restarts its transport thread itself; sentry-flags restarts its delivery
  worker itself (``_fork.py``).
- LaunchDarkly: ``ld_client.postfork()`` in the child (LaunchDarkly's rule; we never call it
  for you: it blocks up to ``start_wait``, opens connections, and a second call leaks them).
- Split: build the factory with ``preforkedInitialization: True`` and call
  ``factory.resume()`` in the child. A factory that was running at fork time cannot be
  restarted: sentry-flags then skips it there as ``skipped["client_stopped"]``.
- Segment: nothing; Segment has no post-fork call, so sentry-flags restarts the client's
  consumer thread (on a fresh queue) at the child's first forwarded error.

On Python 3.12+ ``os.fork()`` in a process with threads emits a DeprecationWarning; every
preloaded app with vendor SDKs forks with threads running. The script records it instead of
hiding it, and the tests assert it is there exactly where Python emits it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import sentry_sdk

from helpers import capture_error, init_forwarding, wait_child
from receivers import (
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
    join_threads,
    ld_flag,
    wait_for,
)
from sentry_flags.forwarders import SegmentForwarder

for _sdk in ("ldclient", "splitio", "segment.analytics"):
    pytest.importorskip(_sdk)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FLAG = "fork-flag"
WORKERS = 2
HAND = 3  # errors per worker whose LD context is set by hand
EVAL_HOOK = 2  # ... captured by the launchdarkly_client= hook, from a flag evaluation
EVAL_PLUGIN = 2  # ... captured by SentryFlagsPlugin on a second LDClient
PARENT_AFTER = 3  # errors the parent raises while its children run
SCRIPT_TIMEOUT = 90  # the whole app process, every child included
CHILD_TIMEOUT = 45
WAIT = 15.0
FORK_WARNING = "use of fork() may lead to deadlocks"

LD_SDK_KEY = "sdk-fork-test-key"
SPLIT_SDK_KEY = "split-fork-test-sdk-key"
SEGMENT_WRITE_KEY = "segment-fork-test-write-key"


# ======================================================================================
# The app process (this file run as a script)


def _error_text(role: str, i: int, how: str) -> tuple[str, str, str]:
    """(message, LD context key, user id) for error ``i`` of ``role``."""
    ctx, user = f"{role}-ctx{i}", f"{role}-user{i}"
    return f"fork-test {role} err{i} how={how} ctx={ctx} user={user}", ctx, user


class App:
    """What a preloaded web app builds at import time, before the server forks."""

    def __init__(self, cfg: dict[str, Any], *, preforked_split: bool) -> None:
        from ldclient import Context
        from ldclient.client import LDClient
        from ldclient.config import Config, HTTPConfig
        from segment.analytics import Client as SegmentClient
        from splitio import get_factory

        from sentry_flags import FlagsIntegration
        from sentry_flags.forwarders import LaunchDarklyForwarder, SegmentForwarder, SplitForwarder
        from sentry_flags.launchdarkly import SentryFlagsPlugin

        self.Context = Context
        self.report_dir = Path(cfg["report_dir"])
        ld_settings: dict[str, Any] = {
            **cfg["ld"],
            "stream": False,
            "flush_interval": 0.1,
            "diagnostic_opt_out": True,
            "http": HTTPConfig(connect_timeout=2, read_timeout=2),
        }
        # The quickstart's way: FlagsIntegration(launchdarkly_client=ld) adds our hook.
        self.ld = LDClient(Config(LD_SDK_KEY, **ld_settings), start_wait=5)
        # The plugin way, on a second client that only evaluates.
        self.ld_plugin = LDClient(
            Config(LD_SDK_KEY, **ld_settings, send_events=False, plugins=[SentryFlagsPlugin()]),
            start_wait=5,
        )
        self.split_factory = get_factory(
            SPLIT_SDK_KEY,
            config={
                "streamingEnabled": False,
                "featuresRefreshRate": 1,
                "segmentsRefreshRate": 1,
                "eventsPushRate": 0.2,
                "impressionsRefreshRate": 1,
                "connectionTimeout": 2000,
                "machineIp": "127.0.0.1",
                "machineName": "fork-test",
                # Split's own pre-fork mode: synced now, started by resume() in each child.
                "preforkedInitialization": preforked_split,
            },
            **cfg["split"],
        )
        if not preforked_split:
            self.split_factory.block_until_ready(5)
        self.segment = SegmentClient(
            SEGMENT_WRITE_KEY,
            host=cfg["segment_host"],
            sync_mode=False,
            upload_interval=0.05,
            max_retries=1,
            timeout=2,
        )
        self.forwarders = {
            "split": SplitForwarder(self.split_factory.client(), identities={"user": "user.id"}),
            "launchdarkly": LaunchDarklyForwarder(self.ld),
            "segment": SegmentForwarder(self.segment),
        }
        sentry_sdk.init(
            dsn=cfg["dsn"],
            environment="production",
            shutdown_timeout=5,
            integrations=[
                FlagsIntegration(launchdarkly_client=self.ld, forwarders=list(self.forwarders.values()))
            ],
        )

    # -- gunicorn's post_fork(server, worker) hook: the documented recipe ----------------

    def post_fork(self) -> None:
        self.ld.postfork()
        self.ld_plugin.postfork()
        self.split_factory.resume()
        self.split_factory.block_until_ready(5)
        # Segment: nothing to call; sentry-flags restarts its consumer when needed.

    # -- requests --------------------------------------------------------------------------

    def request(self, role: str, i: int, how: str) -> None:
        """One request in its own isolation scope (as a web framework integration gives)."""
        from sentry_flags import set_launchdarkly_context

        message, ctx, user = _error_text(role, i, how)
        with sentry_sdk.isolation_scope():
            sentry_sdk.set_user({"id": user})
            context = self.Context.create(ctx)
            if how == "hand":
                set_launchdarkly_context(context)
            elif how == "hook":
                self.ld.variation(FLAG, context, False)
            elif how == "plugin":
                self.ld_plugin.variation(FLAG, context, False)
            try:
                raise RuntimeError(message)
            except RuntimeError:
                sentry_sdk.capture_exception()

    def requests(self, role: str, plan: list[str]) -> None:
        for i, how in enumerate(plan):
            self.request(role, i, how)

    # -- shutdown and reporting ------------------------------------------------------------

    def flush(self) -> None:
        sentry_sdk.flush(timeout=10)  # drains sentry-flags' queue and flushes the vendors

    def report(self, role: str, **extra: Any) -> None:
        stats = {
            name: {
                "errors": s.errors,
                "accounted": s.accounted,
                "forwarded": s.forwarded,
                "failed": s.failed,
                "dropped": s.dropped,
                "rate_limited": s.rate_limited,
                "skipped": dict(s.skipped),
            }
            for name, s in ((n, f.stats) for n, f in self.forwarders.items())
        }
        data = {"role": role, "pid": os.getpid(), "stats": stats, **extra}
        (self.report_dir / f"{role}.json").write_text(json.dumps(data))

    def close(self, *, ld: bool = True, split: bool = True) -> None:
        """Send what the vendor clients buffered (sentry-flags never closes your clients)."""
        sentry_sdk.get_client().close(timeout=5)
        if ld:
            self.ld.close()  # posts LD's buffered events; it would hang on a dead client
            self.ld_plugin.close()
        if split and not self.split_factory.destroyed:
            # splitio reports ready before its initializer thread starts the periodic tasks,
            # and a destroy() in between stops (and flushes) nothing: see conftest.py.
            join_threads("SDKInitializer", timeout=5)
            destroyed = threading.Event()
            self.split_factory.destroy(destroyed)  # posts Split's queued events
            destroyed.wait(10)


def _worker_plan() -> list[str]:
    return ["hand"] * HAND + ["hook"] * EVAL_HOOK + ["plugin"] * EVAL_PLUGIN


def _fork_recording_warnings(fork: Callable[[], Any]) -> tuple[Any, list[str]]:
    # Python 3.12+ warns when a process with threads forks. A preloaded app forks with
    # the vendor SDKs' threads running (and ours): record the warning, don't hide it.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        result = fork()
    return result, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def run_preload(cfg: dict[str, Any]) -> None:
    """gunicorn --preload: the master builds the app, forks workers, each runs post_fork."""
    app = App(cfg, preforked_split=True)
    app.requests("master-before", ["hand"])
    app.flush()  # the master's threads are all running when it forks

    pids, fork_warnings = [], []
    for n in range(1, WORKERS + 1):
        pid, caught = _fork_recording_warnings(os.fork)
        fork_warnings += caught
        if pid == 0:  # the worker: never return into the master's code
            code = 1
            try:
                app.post_fork()
                app.requests(f"w{n}", _worker_plan())
                app.flush()
                app.report(f"w{n}")
                app.close()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)

    # The master keeps working while its workers run.
    app.requests("master-after", ["hand"] * PARENT_AFTER)
    deadline = time.monotonic() + CHILD_TIMEOUT
    codes = [wait_child(pid, deadline) for pid in pids]
    app.flush()
    app.report("master", child_codes=codes, fork_warnings=fork_warnings)
    app.close()


def _mp_child(cfg: dict[str, Any], app: App, role: str) -> None:
    # A multiprocessing child that follows no recipe at all.
    app.requests(role, ["hand"] * HAND)
    app.flush()
    app.report(role)
    # Only sentry-sdk's client is closed: without postfork() LDClient.close() would wait
    # forever for its dead event thread, and destroying the stopped Split factory posts
    # nothing. What they buffered here is lost: that is what the recipe is for.
    app.close(ld=False, split=False)


def run_multiprocessing(cfg: dict[str, Any]) -> None:
    """multiprocessing 'fork' children that do nothing about the fork; the parent goes on."""
    import multiprocessing

    app = App(cfg, preforked_split=False)
    app.requests("parent-before", ["hand"])
    app.flush()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_mp_child, args=(cfg, app, f"p{n}")) for n in range(1, WORKERS + 1)]
    fork_warnings: list[str] = []
    for proc in procs:
        _, caught = _fork_recording_warnings(proc.start)
        fork_warnings += caught
    app.requests("parent-after", ["hand"] * PARENT_AFTER)
    for proc in procs:
        proc.join(CHILD_TIMEOUT)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    app.flush()
    codes = [proc.exitcode for proc in procs]
    app.report("parent", child_codes=codes, fork_warnings=fork_warnings)
    app.close()


def main() -> None:
    mode, cfg = sys.argv[1], json.loads(sys.argv[2])
    {"preload": run_preload, "multiprocessing": run_multiprocessing}[mode](cfg)


# ======================================================================================
# The tests


@dataclass
class Run:
    reports: dict[str, dict[str, Any]]
    sentry: list[dict[str, Any]]
    launchdarkly: list[dict[str, Any]]
    split: list[dict[str, Any]]
    segment: list[dict[str, Any]]


def _expected(roles_plans: dict[str, list[str]], hows: Optional[set[str]] = None) -> set[str]:
    return {
        _error_text(role, i, how)[0]
        for role, plan in roles_plans.items()
        for i, how in enumerate(plan)
        if hows is None or how in hows
    }


def _sentry_by_message(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        message = event["exception"]["values"][-1]["value"]
        assert message not in found, f"delivered twice: {message}"
        found[message] = event
    return found


def _field(message: str, name: str) -> str:
    return next(part.split("=", 1)[1] for part in message.split() if part.startswith(f"{name}="))


def _run_app(mode: str, tmp_path: Path, expect: Callable[[Run], bool]) -> Run:
    with (
        SentryReceiver() as sentry,
        LaunchDarklyReceiver() as ld,
        SplitReceiver() as split,
        SegmentReceiver() as segment,
    ):
        ld.set_flags(ld_flag(FLAG))
        cfg = {
            "dsn": sentry.dsn,
            "ld": ld.config_kwargs,
            "split": split.factory_kwargs,
            "segment_host": segment.host,
            "report_dir": str(tmp_path),
        }
        proc = subprocess.run(
            [sys.executable, __file__, mode, json.dumps(cfg)],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-5000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-5000:]

        def snapshot() -> Run:
            return Run(
                reports={p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")},
                sentry=sentry.events,
                launchdarkly=ld.custom_events,
                split=[e for e in split.events if e["eventTypeId"] == "sentry_exception"],
                segment=segment.messages,
            )

        # Every process flushed and closed its clients before exiting; allow the
        # receivers a moment to record the last requests.
        try:
            return wait_for(lambda: (run := snapshot()) and expect(run) and run, timeout=WAIT, interval=0.1)
        except AssertionError:
            return snapshot()  # the tests below say what is missing


# -- gunicorn --preload -----------------------------------------------------------------

WORKER_ROLES = [f"w{n}" for n in range(1, WORKERS + 1)]
PRELOAD_PLANS = {
    "master-before": ["hand"],
    **{role: _worker_plan() for role in WORKER_ROLES},
    "master-after": ["hand"] * PARENT_AFTER,
}


@pytest.fixture(scope="module")
def preload(tmp_path_factory: pytest.TempPathFactory) -> Run:
    every = _expected(PRELOAD_PLANS)
    return _run_app(
        "preload",
        tmp_path_factory.mktemp("preload"),
        lambda run: len(run.sentry) >= len(every) and len(run.segment) >= len(every),
    )


def test_preload_every_process_finished(preload: Run) -> None:
    assert set(preload.reports) == {"master", *WORKER_ROLES}
    assert preload.reports["master"]["child_codes"] == [0] * WORKERS
    pids = {report["pid"] for report in preload.reports.values()}
    assert len(pids) == WORKERS + 1


def test_preload_every_error_reaches_sentry_once_with_its_own_context(preload: Run) -> None:
    events = _sentry_by_message(preload.sentry)
    assert set(events) == _expected(PRELOAD_PLANS)
    for message, event in events.items():
        assert event["user"]["id"] == _field(message, "user")
        if _field(message, "how") in ("hand", "plugin"):
            assert event["contexts"]["launchdarklyContext"]["key"] == _field(message, "ctx"), message


def test_preload_evaluations_after_postfork_still_record_the_context(preload: Run) -> None:
    events = _sentry_by_message(preload.sentry)
    hooked = _expected({role: _worker_plan() for role in WORKER_ROLES}, {"hook"})
    for message in hooked:
        assert (events[message].get("contexts") or {}).get("launchdarklyContext", {}).get("key") == _field(
            message, "ctx"
        ), message


def test_preload_workers_forward_to_all_three_vendors(preload: Run) -> None:
    workers = {role: _worker_plan() for role in WORKER_ROLES}
    with_user = _expected(workers)
    with_context = _expected(workers, {"hand", "plugin"})

    split = Counter(e["properties"]["exceptionValue"] for e in preload.split)
    assert {m for m in split if m in with_user} == with_user
    for event in preload.split:
        assert event["key"] == _field(event["properties"]["exceptionValue"], "user")

    segment = Counter(m["properties"]["exceptionValue"] for m in preload.segment)
    assert {m for m in segment if m in with_user} == with_user
    for message in preload.segment:
        assert message["userId"] == _field(message["properties"]["exceptionValue"], "user")

    ld = Counter(e["data"]["exceptionValue"] for e in preload.launchdarkly)
    assert with_context <= set(ld)
    for event in preload.launchdarkly:
        assert event["context"]["key"] == _field(event["data"]["exceptionValue"], "ctx")

    for counts in (split, segment, ld):
        assert max(counts.values()) == 1, counts.most_common(3)  # nothing sent twice
    for role in WORKER_ROLES:
        stats = preload.reports[role]["stats"]
        for vendor in ("split", "launchdarkly", "segment"):
            assert stats[vendor]["failed"] == stats[vendor]["dropped"] == 0, (role, vendor, stats)
        assert "client_stopped" not in stats["segment"]["skipped"], stats
        # The master's error before the fork was counted not_ready in the master only.
        assert "not_ready" not in stats["split"]["skipped"], (role, stats)


def test_preload_master_keeps_working_after_forking(preload: Run) -> None:
    master = _expected({k: v for k, v in PRELOAD_PLANS.items() if k.startswith("master")})
    assert master <= set(_sentry_by_message(preload.sentry))
    assert master <= {m["properties"]["exceptionValue"] for m in preload.segment}
    assert master <= {e["data"]["exceptionValue"] for e in preload.launchdarkly}
    # A preforkedInitialization factory is never started in the master (resume() there
    # would start threads the next fork loses): its errors are skipped, and counted.
    assert not master & {e["properties"]["exceptionValue"] for e in preload.split}
    stats = preload.reports["master"]["stats"]
    assert stats["split"]["skipped"].get("not_ready") == len(master), stats


def _assert_every_error_accounted_for(run: Run, plans: dict[str, list[str]]) -> None:
    """Each process's forwarders count exactly the errors that process captured (a child
    starts at zero: nothing of the parent's is counted twice), each with one outcome."""
    for role, report in run.reports.items():
        captured = sum(len(plan) for name, plan in plans.items() if name.split("-")[0] == role)
        for vendor, stats in report["stats"].items():
            assert stats["errors"] == stats["accounted"], (role, vendor, stats)
            own = stats["errors"] - stats["skipped"].get("vendor_sdk_log", 0)
            assert own == captured, (role, vendor, stats)


def test_preload_every_error_is_accounted_for_in_its_own_process(preload: Run) -> None:
    _assert_every_error_accounted_for(preload, PRELOAD_PLANS)


# -- multiprocessing 'fork', no recipe followed --------------------------------------

MP_ROLES = [f"p{n}" for n in range(1, WORKERS + 1)]
MP_PLANS = {
    "parent-before": ["hand"],
    **{role: ["hand"] * HAND for role in MP_ROLES},
    "parent-after": ["hand"] * PARENT_AFTER,
}
MP_PARENT = {k: v for k, v in MP_PLANS.items() if k.startswith("parent")}


@pytest.fixture(scope="module")
def plain_fork(tmp_path_factory: pytest.TempPathFactory) -> Run:
    every, parent = _expected(MP_PLANS), _expected(MP_PARENT)
    return _run_app(
        "multiprocessing",
        tmp_path_factory.mktemp("mp"),
        lambda run: (
            len(run.sentry) >= len(every) and len(run.segment) >= len(every) and len(run.split) >= len(parent)
        ),
    )


def test_plain_fork_children_reach_sentry_and_segment_without_any_recipe(plain_fork: Run) -> None:
    assert plain_fork.reports["parent"]["child_codes"] == [0] * WORKERS
    events = _sentry_by_message(plain_fork.sentry)
    assert set(events) == _expected(MP_PLANS)
    for message, event in events.items():
        assert event["contexts"]["launchdarklyContext"]["key"] == _field(message, "ctx")
    segment = [m["properties"]["exceptionValue"] for m in plain_fork.segment]
    assert sorted(segment) == sorted(_expected(MP_PLANS))  # children's too: consumer restarted


def test_plain_fork_children_skip_a_split_factory_that_was_running(plain_fork: Run) -> None:
    children = _expected({role: MP_PLANS[role] for role in MP_ROLES})
    assert not children & {e["properties"]["exceptionValue"] for e in plain_fork.split}
    for role in MP_ROLES:
        stats = plain_fork.reports[role]["stats"]["split"]
        # Only the children's own errors: the parent's count stays the parent's.
        assert stats["skipped"].get("client_stopped") == HAND, stats


def test_plain_fork_children_without_postfork_lose_launchdarkly_events(plain_fork: Run) -> None:
    # LaunchDarkly's rule: without ld_client.postfork() its event thread does not exist
    # in the child, and LDClient.track cannot tell (it returns nothing).
    children = _expected({role: MP_PLANS[role] for role in MP_ROLES})
    assert not children & {e["data"]["exceptionValue"] for e in plain_fork.launchdarkly}


def test_plain_fork_parent_keeps_forwarding_to_all_three(plain_fork: Run) -> None:
    parent = _expected(MP_PARENT)
    assert parent <= {e["properties"]["exceptionValue"] for e in plain_fork.split}
    assert parent <= {e["data"]["exceptionValue"] for e in plain_fork.launchdarkly}
    assert parent <= {m["properties"]["exceptionValue"] for m in plain_fork.segment}
    stats = plain_fork.reports["parent"]["stats"]
    for vendor in ("split", "launchdarkly", "segment"):
        assert stats[vendor]["failed"] == stats[vendor]["dropped"] == 0, (vendor, stats)
    assert "client_stopped" not in stats["split"]["skipped"], stats


# -- both -----------------------------------------------------------------------------


@pytest.mark.parametrize(("scenario", "role"), [("preload", "master"), ("plain_fork", "parent")])
def test_python_warns_about_forking_with_threads_from_3_12(
    request: pytest.FixtureRequest, scenario: str, role: str
) -> None:
    # The DeprecationWarning is Python's, about the vendor SDKs' threads (and sentry-sdk's
    # and ours) running at fork time; the post-fork steps above are the answer to it.
    # sentry-flags adds no warning of its own.
    caught = request.getfixturevalue(scenario).reports[role]["fork_warnings"]
    assert len(caught) == (WORKERS if sys.version_info >= (3, 12) else 0), caught
    assert all(FORK_WARNING in warning for warning in caught), caught


# -- in this process: what sentry-flags restarts, and what it leaves alone --------------


def _in_child(work: Callable[[], Any]) -> Any:
    """Run ``work()`` in a child forked from this process; its JSON result."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # pytest's process runs the receivers' and SDKs' threads: 3.12+ warns on fork.
        warnings.filterwarnings("ignore", ".*use of fork\\(\\) may lead to deadlocks", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps(work()).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, deadline = [], time.monotonic() + CHILD_TIMEOUT
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([read_fd], [], [], left)[0]:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        assert wait_child(pid, deadline) == 0
    return json.loads(b"".join(chunks))


@pytest.mark.usefixtures("own_isolation_scope")
def test_segment_consumers_restart_in_a_child_only_when_they_ran_at_fork_time(
    sentry_init: Callable[..., Any],
    make_segment_client: Callable[..., Any],
    segment_receiver: SegmentReceiver,
) -> None:
    running, stopped = make_segment_client(), make_segment_client()
    stopped.join()  # the app stopped this one before forking: it stays stopped
    parent_queue, parent_consumers = running.queue, list(running.consumers)
    forwarders = [SegmentForwarder(running), SegmentForwarder(stopped)]
    init_forwarding(sentry_init, *forwarders)
    sentry_sdk.set_user({"id": "child-user"})

    def child() -> Any:
        capture_error("raised in the child")
        sentry_sdk.flush(timeout=10)
        return {
            "stats": [(f.stats.forwarded, dict(f.stats.skipped)) for f in forwarders],
            "running": [c.is_alive() for c in running.consumers],
            "stopped": [c.is_alive() for c in stopped.consumers],
            "fresh_queue": running.queue is not parent_queue,
        }

    report = _in_child(child)

    assert report == {
        "stats": [[1, {}], [0, {"client_stopped": 1}]],
        "running": [True],
        "stopped": [False],
        "fresh_queue": True,
    }
    [message] = segment_receiver.wait_for_messages(1)
    assert message["properties"]["exceptionValue"] == "raised in the child"
    assert message["userId"] == "child-user"
    # The parent's client is untouched and keeps delivering.
    assert running.queue is parent_queue
    assert running.consumers == parent_consumers
    assert all(c.is_alive() for c in running.consumers)
    capture_error("raised in the parent")
    sentry_sdk.flush(timeout=10)
    messages = segment_receiver.wait_for_messages(2)
    assert sorted(m["properties"]["exceptionValue"] for m in messages) == [
        "raised in the child",
        "raised in the parent",
    ]


@pytest.mark.usefixtures("own_isolation_scope")
def test_segment_consumers_that_cannot_be_rebuilt_stay_stopped_and_say_so(
    sentry_init: Callable[..., Any],
    make_segment_client: Callable[..., Any],
    segment_receiver: SegmentReceiver,
) -> None:
    from sentry_flags._segment import CONSUMERS

    client = make_segment_client()
    forwarder = SegmentForwarder(client)
    init_forwarding(sentry_init, forwarder)
    sentry_sdk.set_user({"id": "child-user"})

    def child() -> Any:
        for consumer in client.consumers:  # the child's copies, dead since the fork
            del consumer.upload_size  # a release that keeps it under another name
        capture_error("raised in the child")
        sentry_sdk.flush(timeout=10)
        stats = forwarder.stats
        return {
            "skipped": dict(stats.skipped),
            "stepped_aside": dict(stats.stepped_aside),
            "alive": [c.is_alive() for c in client.consumers],
        }

    assert _in_child(child) == {
        "skipped": {"client_stopped": 1},
        "stepped_aside": {CONSUMERS.path: 1},
        "alive": [False],
    }
    capture_error("raised in the parent")  # the parent's consumers are its own, untouched
    sentry_sdk.flush(timeout=10)
    [message] = segment_receiver.wait_for_messages(1)
    assert message["properties"]["exceptionValue"] == "raised in the parent"


if __name__ == "__main__":
    main()


def _celery_state_lock() -> Any:
    pytest.importorskip("celery")
    import sentry_flags.celery

    return sentry_flags.celery._state_lock


def _client_redactions_lock() -> Any:
    from sentry_flags import _context

    return _context._client_redactions_lock  # taken as each error is captured


def _openfeature_hook_lock() -> Any:
    pytest.importorskip("openfeature")
    from sentry_flags.openfeature import SentryFlagsHook

    return SentryFlagsHook()._lock  # taken on evaluations


def _ld_hooked_lock() -> Any:
    pytest.importorskip("ldclient")
    from sentry_flags import launchdarkly

    return launchdarkly._hooked_lock


def _plugin_lock() -> Any:
    pytest.importorskip("ldclient")
    from sentry_flags.launchdarkly import _PluginHooks

    return _PluginHooks()._lock  # taken as a client starts with the plugin


def _processor_lock() -> Any:
    from sentry_flags import _sentry

    return _sentry._processor_lock


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize(
    "lock_of",
    [
        _celery_state_lock, _client_redactions_lock, _openfeature_hook_lock, _ld_hooked_lock,
        _plugin_lock, _processor_lock,
    ],
)  # fmt: skip
def test_locks_held_at_fork_time_are_fresh_in_the_child(lock_of: Callable[[], Any]) -> None:
    """A lock another thread held when the process forked must not deadlock the child."""
    lock = lock_of()
    with lock, warnings.catch_warnings():  # held, as by a thread caught mid-update
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
        if pid == 0:  # the child: the lock must be free here
            code = 1
            try:
                with lock:
                    code = 0
            finally:
                os._exit(code)
    code = wait_child(pid, time.monotonic() + 10)
    assert code != -9, "the child deadlocked on a lock held at fork time"
    assert code == 0


def test_plain_fork_every_error_is_accounted_for_in_its_own_process(plain_fork: Run) -> None:
    _assert_every_error_accounted_for(plain_fork, MP_PLANS)
