"""One rule on every sentry-sdk: a vendor never receives more than sentry-sdk itself sends Sentry.

A real Flask app (sentry-sdk's ``FlaskIntegration``, our ``FlagsExtension``) raises in a
request that carries personal data and secrets everywhere a request can: the user sentry
sees (``set_user`` with email, username, and the IP sentry-sdk reads from
``X-Forwarded-For``), URL query values, a ``Referer`` with a query, a ``User-Agent``, an
``Authorization`` header and cookies, and a LaunchDarkly context with a name and an email.
Every one of them is a unique canary. The error reaches Sentry and, through the three
forwarders, the Split, LaunchDarkly and Segment stand-ins.

For each way an app can set privacy -- ``send_default_pii`` on 2.x; ``data_collection`` on
2.7x and 3.x with ``user_info`` on or off, URL query params off / denylist with extra terms /
allowlist, request headers off / denylist / allowlist -- every canary found in what a
vendor received must be in what Sentry received. And so the test cannot pass by forwarding
nothing, each variant also says what a vendor does receive.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

import sentry_sdk  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402

from helpers import (  # noqa: E402
    Receivers,
    needs_data_collection,
    needs_send_default_pii,
)
from sentry_flags import FlagsIntegration  # noqa: E402
from sentry_flags._web import default_context  # noqa: E402
from sentry_flags.flask import FlagsExtension  # noqa: E402
from sentry_flags.forwarders import LaunchDarklyForwarder, SegmentForwarder, SplitForwarder  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")  # splitio's own

WAIT = 8.0
IP = "203.0.113.57"


def _canary(label: str) -> str:
    return f"{label}{uuid.uuid4().hex[:12]}"  # letters and digits: the same in every encoding


@dataclass(frozen=True)
class Canaries:
    email_local: str = field(default_factory=lambda: _canary("mail"))
    username: str = field(default_factory=lambda: _canary("uname"))
    full_name: str = field(default_factory=lambda: _canary("fullname"))
    query_q: str = field(default_factory=lambda: _canary("qval"))
    query_page: str = field(default_factory=lambda: _canary("pageval"))
    query_token: str = field(default_factory=lambda: _canary("tokenval"))
    referer_ref: str = field(default_factory=lambda: _canary("refval"))
    user_agent: str = field(default_factory=lambda: _canary("agentval"))
    bearer: str = field(default_factory=lambda: _canary("bearerval"))
    cookie: str = field(default_factory=lambda: _canary("cookieval"))

    @property
    def email(self) -> str:
        return f"{self.email_local}@example.com"

    def all(self) -> dict[str, str]:
        found = {k: v for k, v in vars(self).items() if isinstance(v, str)}
        return {**found, "ip": IP}

    def __repr__(self) -> str:  # the app's view closes over this; keep it out of frame vars
        return "<Canaries>"


@dataclass
class Received:
    sentry: str
    vendors: dict[str, str]

    def at(self, vendor: str, value: str) -> bool:
        return value.lower() in self.vendors[vendor]

    def anywhere(self, value: str) -> bool:
        return any(value.lower() in text for text in self.vendors.values())


def _text(payloads: Any) -> str:
    return json.dumps(payloads, default=str).lower()


@pytest.fixture
def run_app(
    sentry_init: Callable[..., Any],
    receivers: Receivers,
    ld_client: Any,
    split_client: Any,
    segment_client: Any,
) -> Callable[..., tuple[Canaries, Received]]:
    def run(**privacy: Any) -> tuple[Canaries, Received]:
        c = Canaries()
        forwarders = [
            SplitForwarder(split_client, identities={"user": "user.id", "email": "user.email"},
                           capture_culprit=False),
            LaunchDarklyForwarder(ld_client),
            SegmentForwarder(segment_client),
        ]  # fmt: skip
        sentry_init(
            integrations=[FlaskIntegration(), FlagsIntegration(forwarders=forwarders)],
            environment="production",
            **privacy,
        )
        app = flask.Flask("privacy_rule_app")
        app.logger.disabled = True
        FlagsExtension(
            app, context_from_request=lambda r: default_context("u-1", name=c.full_name, email=c.email)
        )

        @app.route("/checkout")
        def checkout() -> str:
            sentry_sdk.set_user({"id": "u-1", "email": c.email, "username": c.username})
            raise RuntimeError("checkout failed")

        query = f"q={c.query_q}&page={c.query_page}&token={c.query_token}"
        headers = {
            "Referer": f"https://shop.example/cart?ref={c.referer_ref}",
            "User-Agent": f"agent/{c.user_agent}",
            "X-Forwarded-For": IP,
            "Authorization": f"Bearer {c.bearer}",
            "Cookie": f"session={c.cookie}",
        }
        with sentry_sdk.isolation_scope():
            assert app.test_client().get(f"/checkout?{query}", headers=headers).status_code == 500
        sentry_sdk.flush(timeout=5)
        [event] = receivers.sentry.wait_for_events(1, timeout=WAIT)
        split = receivers.split.wait_for_events(1, timeout=WAIT)
        ld = receivers.launchdarkly.wait_for_events(1, kind="custom", timeout=WAIT)
        segment = receivers.segment.wait_for_messages(1, timeout=WAIT)
        return c, Received(
            sentry=_text(
                [event, [r.wire_bytes().decode("utf-8", "replace") for r in receivers.sentry.requests]]
            ),
            vendors={"split": _text(split), "launchdarkly": _text(ld), "segment": _text(segment)},
        )

    return run


def assert_vendors_get_no_more_than_sentry(c: Canaries, got: Received) -> None:
    for vendor, text in got.vendors.items():
        for name, value in c.all().items():
            if value.lower() in text:
                assert value.lower() in got.sentry, f"{name} reached {vendor} but not Sentry"
    for name in ("bearer", "cookie", "query_token"):  # secrets: never, whatever the setting
        assert not got.anywhere(c.all()[name]), name


# -- sentry-sdk 2.x: send_default_pii -----------------------------------------------------------


@needs_send_default_pii
def test_send_default_pii_off(run_app: Callable[..., tuple[Canaries, Received]]) -> None:
    c, got = run_app(send_default_pii=False)

    assert_vendors_get_no_more_than_sentry(c, got)
    # Stricter than sentry-sdk 2.x, which sends the raw query string: no query value at all.
    for value in (c.email_local, c.full_name, IP, c.query_q, c.query_page, c.referer_ref):
        assert not got.anywhere(value), value
    assert got.at("segment", c.user_agent)  # the User-Agent, as Sentry gets it
    assert got.at("segment", "shop.example/cart")  # the Referer, its query left out


@needs_send_default_pii
def test_send_default_pii_on(run_app: Callable[..., tuple[Canaries, Received]]) -> None:
    c, got = run_app(send_default_pii=True)

    assert_vendors_get_no_more_than_sentry(c, got)
    assert got.at("split", c.email_local)  # an identity mapped to user.email
    assert got.at("launchdarkly", c.full_name)  # the default context's name
    assert got.at("segment", IP)
    assert got.at("segment", c.query_q)
    assert got.at("segment", c.referer_ref)


# -- data_collection (2.7x, 3.x) -------------------------------------------------------------------


@needs_data_collection
@pytest.mark.parametrize("user_info", [True, False])
def test_data_collection_user_info(
    run_app: Callable[..., tuple[Canaries, Received]], user_info: bool
) -> None:
    c, got = run_app(data_collection={"user_info": user_info})

    assert_vendors_get_no_more_than_sentry(c, got)
    personal = [("split", c.email_local), ("launchdarkly", c.full_name), ("launchdarkly", c.email_local)]
    for vendor, value in [*personal, ("segment", IP)]:
        assert got.at(vendor, value) is user_info, (vendor, value)
    assert not got.anywhere(c.username)  # not one of the fields any forwarder sends
    # The query params and headers are denylisted by default: what is not sensitive passes.
    assert got.at("segment", c.query_q)
    assert got.at("segment", c.user_agent)


@needs_data_collection
def test_data_collection_query_params_off(run_app: Callable[..., tuple[Canaries, Received]]) -> None:
    c, got = run_app(data_collection={"url_query_params": {"mode": "off"}})

    assert_vendors_get_no_more_than_sentry(c, got)
    for value in (c.query_q, c.query_page, c.referer_ref):
        assert not got.anywhere(value), value
    assert got.at("segment", "shop.example/cart")  # the Referer still, without its query


@needs_data_collection
def test_data_collection_query_params_denylist_with_terms(
    run_app: Callable[..., tuple[Canaries, Received]],
) -> None:
    c, got = run_app(data_collection={"url_query_params": {"mode": "denylist", "terms": ["page"]}})

    assert_vendors_get_no_more_than_sentry(c, got)
    assert got.at("segment", c.query_q)
    assert got.at("segment", c.referer_ref)
    assert not got.anywhere(c.query_page)  # the app's extra term
    assert got.at("segment", "page=%5bfiltered%5d")  # as sentry-sdk filters it: the key stays


@needs_data_collection
def test_data_collection_query_params_allowlist(run_app: Callable[..., tuple[Canaries, Received]]) -> None:
    c, got = run_app(data_collection={"url_query_params": {"mode": "allowlist", "terms": ["q"]}})

    assert_vendors_get_no_more_than_sentry(c, got)
    assert got.at("segment", c.query_q)
    for value in (c.query_page, c.referer_ref):
        assert not got.anywhere(value), value


@needs_data_collection
def test_data_collection_headers_off(run_app: Callable[..., tuple[Canaries, Received]]) -> None:
    c, got = run_app(data_collection={"http_headers": {"request": {"mode": "off"}}})

    assert_vendors_get_no_more_than_sentry(c, got)
    assert not got.anywhere(c.user_agent)
    assert not got.anywhere("shop.example/cart")
    assert got.at("segment", c.query_q)  # the query is not a header


@needs_data_collection
def test_data_collection_headers_denylist_with_terms(
    run_app: Callable[..., tuple[Canaries, Received]],
) -> None:
    c, got = run_app(data_collection={"http_headers": {"request": {"mode": "denylist", "terms": ["agent"]}}})

    assert_vendors_get_no_more_than_sentry(c, got)
    assert not got.anywhere(c.user_agent)
    assert got.at("segment", c.referer_ref)


@needs_data_collection
def test_data_collection_headers_allowlist(run_app: Callable[..., tuple[Canaries, Received]]) -> None:
    c, got = run_app(
        data_collection={"http_headers": {"request": {"mode": "allowlist", "terms": ["user-agent"]}}}
    )

    assert_vendors_get_no_more_than_sentry(c, got)
    assert got.at("segment", c.user_agent)
    assert not got.anywhere("shop.example/cart")
