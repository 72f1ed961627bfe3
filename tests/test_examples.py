"""The examples run against loopback stand-ins, so they never rot.

Each example runs in a child process with the environment examples/vendors.py reads
(``helpers.vendor_env``), exactly as a user would start it; the tests assert on what the
stand-ins for Sentry, LaunchDarkly, Split and Segment received. (The Flask example is
exercised by the offline demo: tests/test_demo.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import vendor_env
from receivers import LaunchDarklyReceiver, SegmentReceiver, SentryReceiver, SplitReceiver, ld_flag, wait_for

pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 10

StandIns = tuple[SentryReceiver, LaunchDarklyReceiver, SplitReceiver, SegmentReceiver]


@pytest.fixture
def stand_ins() -> Iterator[StandIns]:
    with SentryReceiver() as sentry, LaunchDarklyReceiver() as ld, SplitReceiver() as split, \
            SegmentReceiver() as segment:  # fmt: skip
        yield sentry, ld, split, segment


def test_script_example(stand_ins: StandIns) -> None:
    sentry, ld, split, segment = stand_ins
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "script.py")],
        env=vendor_env(*stand_ins), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "processed 2 invoices, 1 failed" in done.stdout

    (event,) = wait_for(lambda: sentry.events)
    assert event["exception"]["values"][-1]["value"] == "invoice amount is negative: -5"
    assert event["contexts"]["launchdarklyContext"] == {"kind": "user", "key": "cust-2"}
    (message,) = wait_for(lambda: segment.messages)
    assert message["userId"] == "cust-2"
    assert message["messageId"] == event["event_id"]
    (custom,) = wait_for(lambda: ld.custom_events)
    assert custom["key"] == "sentry-errors"
    assert custom["context"] == {"kind": "user", "key": "cust-2"}
    tracked = wait_for(lambda: split.events)
    assert {(e["trafficTypeName"], e["key"]) for e in tracked} == {("user", "cust-2")}


# -- the Django example ------------------------------------------------------------------------------
#
# Django's settings are process-wide and configured once: tests/test_django.py configures its
# own project (tests/django_project) in this process with settings.configure(), while the
# example is a real project started from DJANGO_SETTINGS_MODULE, whose settings.py also calls
# sentry_sdk.init. The two cannot share a process, and override_settings could not swap
# INSTALLED_APPS, the URLconf, the database and Sentry's client back and forth safely. So the
# example runs in a child process, the way it runs in production: its own wsgi.py served by
# wsgiref on 127.0.0.1 (through the WSGI handler sentry-sdk's DjangoIntegration patches),
# with a fresh SQLite database in tmp_path. Django's test client only logs the user in.

DJANGO_DRIVER = textwrap.dedent(
    """
    import json, sys, threading, urllib.error, urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    sys.path.insert(0, sys.argv[1])
    from shop.wsgi import application  # settings.py starts Sentry and the vendor clients

    import sentry_sdk
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0, interactive=False)
    ann = User.objects.create_user("ann", password="pw")
    ann.groups.add(Group.objects.create(name="globex"))
    browser = Client()
    browser.force_login(ann)
    session = browser.cookies["sessionid"].value


    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass


    server = make_server("127.0.0.1", 0, application, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


    def get(path, cookie=None):
        headers = {"Cookie": "sessionid=" + cookie} if cookie else {}
        request = urllib.request.Request(f"http://127.0.0.1:{server.server_port}{path}", headers=headers)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


    statuses = {
        "ann /checkout": get("/checkout", session),
        "ann /orders": get("/orders", session),
        "anonymous /checkout": get("/checkout"),
        "ann /resize": get("/resize", session),
        "/healthz": get("/healthz"),
    }
    server.shutdown()
    sentry_sdk.flush(timeout=5)  # also drains sentry-flags' queue and flushes the vendor clients
    print(json.dumps({"user": str(ann.pk), "statuses": statuses}))
    """
)


def checkout_flag() -> dict[str, Any]:
    """``new-checkout``: on for the org ``globex``, off for everyone else."""
    flag = ld_flag("new-checkout", fallthrough_variation=1)
    flag["contextTargets"] = [{"contextKind": "org", "values": ["globex"], "variation": 0}]
    return flag


def by_value(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["exception"]["values"][-1]["value"]: e for e in events}


def test_django_example(stand_ins: StandIns, tmp_path: Path) -> None:
    pytest.importorskip("django")
    sentry, ld, split, segment = stand_ins
    ld.set_flags(checkout_flag())
    env = vendor_env(*stand_ins, DJANGO_DATABASE=str(tmp_path / "db.sqlite3"))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", DJANGO_DRIVER, str(EXAMPLES / "django_app")],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["statuses"] == {
        "ann /checkout": 500,
        "ann /orders": 500,
        "anonymous /checkout": 500,
        "ann /resize": 500,  # raised, but dropped by ignore_errors: sent nowhere
        "/healthz": 200,
    }
    ann = report["user"]
    ann_context = {"kind": "multi", "user": {"key": ann, "plan": "free"}, "org": {"key": "globex"}}

    # Sentry: three errors; the ignored one never arrives.
    events = by_value(wait_for(lambda: len(sentry.events) >= 3 and sentry.events, timeout=TIMEOUT))
    assert set(events) == {
        "new checkout flow: payment provider timed out",  # globex is on the new flow
        "order history: no orders table for this region",
        "old checkout flow: cart total is negative",  # the anonymous visitor is not
    }
    new_flow = events["new checkout flow: payment provider timed out"]
    orders = events["order history: no orders table for this region"]
    anonymous = events["old checkout flow: cart total is negative"]
    # From the flag evaluation in the view, and from FlagsMiddleware's builder (no evaluation).
    assert new_flow["contexts"]["launchdarklyContext"] == ann_context
    assert orders["contexts"]["launchdarklyContext"] == ann_context
    assert new_flow["user"] == {"id": ann}
    anonymous_context = anonymous["contexts"]["launchdarklyContext"]
    assert anonymous_context["kind"] == "user"
    assert anonymous_context["anonymous"] is True
    assert anonymous_context["key"] not in (ann, "globex")
    assert "user" not in anonymous or "id" not in anonymous["user"]

    # LaunchDarkly: a sentry-errors event per error, for the context of each.
    customs = wait_for(lambda: len(ld.custom_events) >= 3 and ld.custom_events, timeout=TIMEOUT)
    assert sorted(c["key"] for c in customs) == ["sentry-errors"] * 3
    contexts = [c["context"] for c in customs]
    assert sum(c.get("org") == {"key": "globex"} for c in contexts) == 2
    assert sum(c.get("anonymous") is True for c in contexts) == 1

    # Split (keyed by user.id and the org tag) and Segment (needs user.id): ann's two errors.
    # With capture_culprit, Split gets each error twice: once per culprit ("sentry_exception:…").
    tracked = wait_for(lambda: len(split.events) >= 8 and split.events, timeout=TIMEOUT)
    assert len(tracked) == 8
    assert {(e["trafficTypeName"], e["key"]) for e in tracked} == {("user", ann), ("org", "globex")}
    by_type: dict[str, set[str]] = {}
    for e in tracked:
        by_type.setdefault(e["eventTypeId"].split("-")[0], set()).add(e["properties"]["eventId"])
    assert by_type == {
        "sentry_exception": {new_flow["event_id"], orders["event_id"]},
        "sentry_exception:checkout": {new_flow["event_id"]},
        "sentry_exception:orders": {orders["event_id"]},
    }
    messages = wait_for(lambda: len(segment.messages) >= 2 and segment.messages, timeout=TIMEOUT)
    assert {m["messageId"] for m in messages} == {new_flow["event_id"], orders["event_id"]}
    assert {m["userId"] for m in messages} == {ann}
    assert {m["event"] for m in messages} == {"Error Captured"}
