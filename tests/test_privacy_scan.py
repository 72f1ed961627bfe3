"""Privacy, end to end: scan every byte that reached the vendors for personal data and secrets.

A real Flask app with sentry-sdk's ``FlaskIntegration`` and our ``FlagsExtension``, a real
``LDClient`` (hook, config-level private attributes), a real Split factory (impression
listener) and a real Segment client, all three forwarders, all against the loopback
receivers. Requests carry an email, client IPs (``X-Forwarded-For`` and ``REMOTE_ADDR``),
cookies, an ``Authorization`` header, query values, a ``Referer`` with a query and a request
body; the LaunchDarkly contexts carry private attributes of every kind (on the context, on
the client's config, a nested reference ``/address/street``). Every one of them is a unique
canary string. The errors' own messages are innocuous.

Then every byte each vendor receiver got (request line, header lines, raw and decoded body)
is scanned for every canary, in every encoding it could travel in.

What is scanned at LaunchDarkly: everything, LaunchDarkly's own analytics events included
(index, feature, summary events the LD SDK makes for the app's evaluations). Those are LD's
SDK, which applies private-attribute rules itself; they must be clean too, and a canary
there would mean either LD leaked or we handed LD something the app had not allowed, so the
scan does not try to tell them apart. The apps here never put personal data on a context
they evaluate without marking it private, as LaunchDarkly's own guidance says.

The Sentry side: sentry-sdk's own request data with PII off is sentry-sdk's business (it
scrubs cookies and auth headers itself), so what is checked there is what this package adds
(``launchdarklyContext``, ``flagEvaluations``, ``flags``, tags, extra), and that LaunchDarkly
private attributes appear nowhere in any envelope.

The PII-allowed run proves the scan can see: the canaries the docs say are forwarded when
the app allows PII (email as a Split identity, the IP and query values at Segment, the
default context's email at LaunchDarkly) are found, while secrets (tokens, cookies, auth
headers) and LaunchDarkly private attributes are still nowhere.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote, quote_plus

import pytest

flask = pytest.importorskip("flask")
pytest.importorskip("ldclient")
pytest.importorskip("splitio")
pytest.importorskip("segment.analytics")

import sentry_sdk  # noqa: E402
from ldclient import Context  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402

from helpers import Receivers, needs_data_collection, pii_options, started_split_factory  # noqa: E402
from receivers import (  # noqa: E402
    BaseReceiver,
    LaunchDarklyReceiver,
    SegmentReceiver,
    SentryReceiver,
    SplitReceiver,
)
from sentry_flags import FlagsIntegration  # noqa: E402
from sentry_flags._web import default_context  # noqa: E402
from sentry_flags.flask import FlagsExtension  # noqa: E402
from sentry_flags.forwarders import (  # noqa: E402
    LaunchDarklyForwarder,
    SegmentForwarder,
    SplitForwarder,
)
from sentry_flags.split import impression_listener  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")  # splitio's own

LD_FLAG = "new-checkout"
SPLIT_FLAG = "sentry_flags_user_flag"  # served by the SplitReceiver by default
OUR_CONTEXTS = ("launchdarklyContext", "flagEvaluations", "flags")
WAIT = 8.0
ERRORS = 3  # /checkout, /orders, /profile


def _token(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:16]}"


def _octet(used: set[int]) -> int:
    while True:
        value = uuid.uuid4().int % 200 + 20
        if value not in used:
            used.add(value)
            return value


@dataclass(frozen=True, repr=False)
class Canaries:
    """One unique value per secret; every run gets fresh ones.

    Its repr shows none of them: the app's views close over it, and sentry-sdk sends the
    raising frame's variables (closures included) to Sentry.
    """

    user_id: str  # an id, not personal data: forwarded on purpose (the scan's anchor)
    org_key: str
    # personal data of the request
    email: str
    username: str
    full_name: str
    forwarded_ip: str
    remote_ip: str
    # secrets of the request
    cookie_session: str
    cookie_other: str
    bearer: str
    query_token: str
    query_plain: str
    referer_query: str
    body_password: str
    # LaunchDarkly private attributes
    ld_context_private: str  # Context.builder().private("ssn")
    ld_config_private: str  # Config(private_attributes=["phone"])
    ld_nested_private: str  # Config(private_attributes=["/address/street"])
    ld_org_private: str  # a private attribute of the org in a multi-context
    ld_city: str = field(default="Springfield")  # next to the nested one: must stay

    @classmethod
    def fresh(cls) -> Canaries:
        used: set[int] = set()
        return cls(
            user_id=_token("uid"),
            org_key=_token("org"),
            email=f"{_token('mail')}@example.com",
            username=_token("uname"),
            full_name=_token("fullname"),
            forwarded_ip=f"203.0.113.{_octet(used)}",
            remote_ip=f"198.51.100.{_octet(used)}",
            cookie_session=_token("cookiesess"),
            cookie_other=_token("cookietheme"),
            bearer=_token("bearer"),
            query_token=_token("qtoken"),
            query_plain=_token("qplain"),
            referer_query=_token("refq"),
            body_password=_token("bodypw"),
            ld_context_private=_token("ssn"),
            ld_config_private=_token("phone"),
            ld_nested_private=_token("street"),
            ld_org_private=_token("orgsecret"),
        )

    def __repr__(self) -> str:
        return "<Canaries>"

    def ld_private(self) -> dict[str, str]:
        return {
            "ld_context_private": self.ld_context_private,
            "ld_config_private": self.ld_config_private,
            "ld_nested_private": self.ld_nested_private,
            "ld_org_private": self.ld_org_private,
        }

    def secrets(self) -> dict[str, str]:
        """Never forwarded, whatever the app allows."""
        return {
            "cookie_session": self.cookie_session,
            "cookie_other": self.cookie_other,
            "bearer": self.bearer,
            "query_token": self.query_token,
            "body_password": self.body_password,
            "username": self.username,
            "remote_ip": self.remote_ip,  # sentry-sdk takes the X-Forwarded-For one
        }

    def personal(self) -> dict[str, str]:
        """Forwarded only when the app allows PII (and only where documented)."""
        return {
            "email": self.email,
            "full_name": self.full_name,
            "forwarded_ip": self.forwarded_ip,
            "query_plain": self.query_plain,
            "referer_query": self.referer_query,
        }

    def everything(self) -> dict[str, str]:
        return {**self.secrets(), **self.personal(), **self.ld_private()}


def forms(value: str) -> set[bytes]:
    """Every way ``value`` can travel: as is, URL-quoted, JSON-escaped, its unique part."""
    found = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    if "-" in value and "@" not in value.split("-", 1)[1]:
        found.add(value.split("-", 1)[1])  # the random part alone, in case a prefix was cut
    elif "@" in value:
        found.add(value.split("@", 1)[0].split("-", 1)[1])
    return {f.lower().encode() for f in found}


def _inflated(data: bytes) -> list[bytes]:
    """``data`` and, if it is gzip/zlib though no header said so, its decompressed form."""
    out = [data]
    for decompress in (gzip.decompress, zlib.decompress):
        try:
            out.append(decompress(data))
        except Exception:
            continue
    return out


def wire(receiver: BaseReceiver) -> list[tuple[str, bytes]]:
    """Every request the receiver got, as (``METHOD path``, every byte of it lowercased).

    The bytes: request line, header lines, the body as received and as the receiver decoded
    it (``Content-Encoding``), and inflated if it is compressed without saying so.
    """
    return [
        (f"{r.method} {r.path}", b"\n".join([r.wire_bytes(), *_inflated(r.raw_body)[1:]]).lower())
        for r in receiver.requests
    ]


def leaks(requests: Iterable[tuple[str, bytes]], canaries: Mapping[str, str]) -> list[str]:
    found = []
    for where, data in requests:
        for name, value in canaries.items():
            if any(form in data for form in forms(value)):
                found.append(f"{name} ({value}) in {where}")
    return found


def contains(requests: Iterable[tuple[str, bytes]], value: str) -> bool:
    return any(value.lower().encode() in data for _, data in requests)


# -- the app ---------------------------------------------------------------------------------


def checkout_context(c: Canaries) -> Context:
    """A user in an org, as the app evaluates flags with; every private kind of attribute."""
    user = (
        Context.builder(c.user_id)
        .kind("user")
        .set("plan", "pro")
        .set("ssn", c.ld_context_private)
        .private("ssn")  # private on the context
        .set("phone", c.ld_config_private)  # private by the client's config
        .set("address", {"street": c.ld_nested_private, "city": c.ld_city})  # /address/street
        .build()
    )
    org = (
        Context.builder(c.org_key)
        .kind("org")
        .set("tier", "gold")
        .set("billingSecret", c.ld_org_private)
        .private("billingSecret")
        .build()
    )
    return Context.create_multi(user, org)


def make_app(c: Canaries, ld: Any, split_client: Any) -> Any:
    app = flask.Flask("privacy_scan_app")
    app.logger.disabled = True  # FlaskIntegration captures the error; no second, logged one

    def context_for(request: Any) -> Optional[Context]:
        if request.path == "/profile":
            # An app's own context, never evaluated, with personal attributes on it that
            # are not marked private: only the LaunchDarkly forwarder would send it to LD.
            return Context.builder(c.user_id).kind("user").name(c.full_name).set("email", c.email).build()
        # What FlagsExtension builds for a logged-in (Flask-Login) user: name and email
        # only when the app allows PII.
        return default_context(c.user_id, name=c.full_name, email=c.email)

    FlagsExtension(app, context_from_request=context_for)

    @app.before_request
    def identify() -> None:
        # A typical app identifies its user to Sentry with everything it has.
        sentry_sdk.set_user({"id": c.user_id, "email": c.email, "username": c.username})
        sentry_sdk.set_tag("org", c.org_key)

    @app.route("/checkout")
    def checkout() -> str:
        # Split gets the user's attributes for targeting; they must go no further.
        split_client.get_treatment(c.user_id, SPLIT_FLAG, {"email": c.email, "ip": c.forwarded_ip})
        # The context is built in the call: a Context in a local variable of a raising frame
        # would reach Sentry through sentry-sdk's frame variables (see the xfail below).
        if ld.variation(LD_FLAG, checkout_context(c), False):
            raise ValueError("checkout failed: cart total is negative")
        return "ok"

    @app.route("/orders", methods=["POST"])
    def orders() -> str:
        flask.request.get_json(silent=True)
        raise RuntimeError("order failed: inventory unavailable")

    @app.route("/profile")
    def profile() -> str:
        raise LookupError("profile failed: no such address book")

    return app


def send_requests(app: Any, c: Canaries) -> None:
    client = app.test_client()
    headers = {
        "X-Forwarded-For": c.forwarded_ip,
        "Authorization": f"Bearer {c.bearer}",
        "Cookie": f"session={c.cookie_session}; theme={c.cookie_other}",
        "Referer": f"https://shop.example/cart?ref={c.referer_query}",
        "User-Agent": "privacy-scan/1.0",
    }
    environ = {"REMOTE_ADDR": c.remote_ip}
    query = f"user={c.user_id}&token={c.query_token}&email={quote(c.email)}&q={c.query_plain}"
    response = client.get(f"/checkout?{query}", headers=headers, environ_base=environ)
    assert response.status_code == 500
    response = client.post(
        f"/orders?{query}",
        headers=headers,
        environ_base=environ,
        json={"password": c.body_password, "email": c.email},
    )
    assert response.status_code == 500
    response = client.get(f"/profile?{query}", headers=headers, environ_base=environ)
    assert response.status_code == 500


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    canaries: Canaries
    sentry: SentryReceiver
    ld: LaunchDarklyReceiver
    split: SplitReceiver
    segment: SegmentReceiver
    forwarders: tuple[Any, ...]

    def vendor_wire(self) -> dict[str, list[tuple[str, bytes]]]:
        return {"launchdarkly": wire(self.ld), "split": wire(self.split), "segment": wire(self.segment)}

    @property
    def sentry_events(self) -> list[dict[str, Any]]:
        return self.sentry.events


PII_OFF = pii_options(False)
# The data_collection equivalent of send_default_pii=False.
DATA_COLLECTION_OFF = {
    "data_collection": {
        "user_info": False,
        "cookies": {"mode": "off"},
        "url_query_params": {"mode": "off"},
        "http_headers": {"request": {"mode": "denylist"}},
    }
}
PII_ON = pii_options(True)


@pytest.fixture
def full_run(
    sentry_init: Callable[..., Any],
    receivers: Receivers,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
    make_split_factory: Callable[..., Any],
    segment_client: Any,
) -> Callable[..., Run]:
    def run(**privacy: Any) -> Run:
        c = Canaries.fresh()
        ld_test_data.update(ld_test_data.flag(LD_FLAG).variation_for_all(True))
        ld = make_ld_client(
            update_processor_class=ld_test_data, private_attributes=["phone", "/address/street"]
        )
        factory = started_split_factory(make_split_factory(impressionListener=impression_listener()))
        split_client = factory.client()
        forwarders = (
            SplitForwarder(
                split_client,
                identities={
                    "user": "user.id",
                    "org": "tags.org",
                    # Allowed only with PII: proves the scan can see an email at Split.
                    "email": "user.email",
                    # Redacted before forwarders see it: never a key.
                    "street": "contexts.launchdarklyContext.user.address.street",
                },
                capture_culprit=True,
            ),
            LaunchDarklyForwarder(ld),
            SegmentForwarder(segment_client),
        )
        integration = FlagsIntegration(launchdarkly_client=ld, forwarders=list(forwarders))
        sentry_init(
            integrations=[FlaskIntegration(), integration],
            environment="production",
            **privacy,
        )
        with sentry_sdk.isolation_scope():
            send_requests(make_app(c, ld, split_client), c)
        sentry_sdk.flush(timeout=5)
        # Three errors: each reaches Sentry, Segment (one message), LaunchDarkly (one custom
        # event) and Split (user and org identities, each with a culprit event).
        receivers.sentry.wait_for_events(ERRORS, timeout=WAIT)
        receivers.segment.wait_for_messages(ERRORS, timeout=WAIT)
        receivers.launchdarkly.wait_for_events(ERRORS, kind="custom", timeout=WAIT)
        receivers.split.wait_for_events(4 * ERRORS, timeout=WAIT)
        # LD's own analytics (index/summary) and Split's impressions ride their own timers.
        receivers.launchdarkly.wait_for_events(1, kind="summary", timeout=WAIT)
        receivers.split.wait_for_impressions(1, timeout=WAIT)
        return Run(
            c, receivers.sentry, receivers.launchdarkly, receivers.split, receivers.segment, forwarders
        )

    return run


def view_name(transaction: str) -> str:
    """The view of a transaction: Flask names it "checkout" on sentry-sdk 2.x, "/checkout" on 3.x."""
    return transaction.lstrip("/")


def _privacy_off_params() -> list[Any]:
    return [
        pytest.param(PII_OFF, id="send_default_pii=False"),  # pii_options: its 3.x equivalent there
        pytest.param(DATA_COLLECTION_OFF, id="data_collection-off", marks=needs_data_collection),
    ]


# -- PII not allowed -------------------------------------------------------------------------


@pytest.mark.parametrize("privacy", _privacy_off_params())
def test_nothing_personal_or_secret_reaches_any_vendor(
    full_run: Callable[..., Run], privacy: dict[str, Any]
) -> None:
    run = full_run(**privacy)
    c = run.canaries
    vendors = run.vendor_wire()

    # The scan is not vacuous: each vendor got the errors, keyed by the (non-personal) id.
    for name in ("launchdarkly", "split", "segment"):
        assert contains(vendors[name], c.user_id), f"{name} never got the user id"
    assert contains(vendors["split"], "sentry_exception")
    assert contains(vendors["segment"], "Error Captured")

    for name, requests in vendors.items():
        assert leaks(requests, c.everything()) == [], name

    # The identities that resolve to personal or redacted data were skipped, not sent.
    split_stats = run.forwarders[0].stats
    assert split_stats.calls.get("no_identity:email") == ERRORS
    assert split_stats.calls.get("no_identity:street") == ERRORS


@pytest.mark.parametrize("privacy", _privacy_off_params())
def test_our_sentry_data_carries_no_personal_data_and_no_ld_private_attributes(
    full_run: Callable[..., Run], privacy: dict[str, Any]
) -> None:
    run = full_run(**privacy)
    c = run.canaries
    events = {view_name(e["transaction"]): e for e in run.sentry_events}
    assert set(events) == {"checkout", "orders", "profile"}, list(events)

    for event in events.values():
        ours = {
            "contexts": {k: v for k, v in event.get("contexts", {}).items() if k in OUR_CONTEXTS},
            "tags": event.get("tags", {}),
            "extra": event.get("extra", {}),
        }
        data = json.dumps(ours).lower().encode()
        assert leaks([(event["transaction"], data)], c.everything()) == []

    checkout = events["checkout"]["contexts"]["launchdarklyContext"]
    assert checkout["kind"] == "multi"
    assert checkout["user"] == {
        "key": c.user_id,
        "plan": "pro",
        "address": {"city": c.ld_city},
        "_meta": {"redactedAttributes": checkout["user"]["_meta"]["redactedAttributes"]},
    }
    assert sorted(checkout["user"]["_meta"]["redactedAttributes"]) == ["/address/street", "phone", "ssn"]
    assert checkout["org"] == {
        "key": c.org_key, "tier": "gold", "_meta": {"redactedAttributes": ["billingSecret"]},
    }  # fmt: skip
    evaluations = events["checkout"]["contexts"]["flagEvaluations"]["values"]
    split = [e for e in evaluations if e["source"] == "split"]
    assert split == [{"flag": SPLIT_FLAG, "value": "on", "reason": "default rule", "source": "split"}]

    # The default context without PII: the user's key, no name, no email.
    orders = events["orders"]["contexts"]["launchdarklyContext"]
    assert orders == {"kind": "user", "key": c.user_id}
    # The app's own context: its personal attributes redacted.
    profile = events["profile"]["contexts"]["launchdarklyContext"]
    assert profile == {"kind": "user", "key": c.user_id, "_meta": {"redactedAttributes": ["name", "email"]}}

    # LaunchDarkly private attributes appear nowhere in anything sent to Sentry.
    assert leaks(wire(run.sentry), c.ld_private()) == []


# -- PII allowed ------------------------------------------------------------------------------


def test_with_pii_allowed_the_scan_finds_what_is_documented_and_still_no_secrets(
    full_run: Callable[..., Run],
) -> None:
    run = full_run(**PII_ON)
    c = run.canaries
    vendors = run.vendor_wire()

    # What the docs say is forwarded when the app allows PII -- the scan sees it:
    # Split: an identity mapped to user.email.
    split_keys = {(e["trafficTypeName"], e["key"]) for e in run.split.events}
    assert ("email", c.email) in split_keys
    # Segment: the client IP (sentry-sdk takes X-Forwarded-For) and query values.
    messages = {view_name(m["properties"]["transaction"]): m for m in run.segment.messages}
    assert messages["checkout"]["context"]["ip"] == c.forwarded_ip
    assert c.query_plain in messages["checkout"]["properties"]["page"]["search"]
    assert "token=%5BFiltered%5D" in messages["checkout"]["properties"]["page"]["search"]
    # LaunchDarkly: the default context's name and email, allowed now.
    assert contains(vendors["launchdarkly"], c.email)
    assert contains(vendors["launchdarkly"], c.full_name)
    assert leaks(vendors["segment"], {"email": c.email}) != []  # in the query, allowed now

    # Never, whatever the app allows: tokens, cookies, auth headers, bodies, usernames, and
    # LaunchDarkly private attributes.
    for name, requests in vendors.items():
        assert leaks(requests, {**c.secrets(), **c.ld_private()}) == [], name

    events = {view_name(e["transaction"]): e for e in run.sentry_events}
    assert events["orders"]["contexts"]["launchdarklyContext"] == {
        "kind": "user", "key": c.user_id, "name": c.full_name, "email": c.email,
    }  # fmt: skip
    assert leaks(wire(run.sentry), c.ld_private()) == []


# -- known gap: frame variables ----------------------------------------------------------------


def test_a_context_in_a_local_variable_does_not_reach_sentry(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    # The canary lives only in the Context (and in Canaries, whose repr hides it): sentry-sdk
    # 3.x no longer scrubs frame variables, so a local named "secret" would reach Sentry.
    c = Canaries.fresh()
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False))
    with sentry_sdk.isolation_scope():
        try:
            context = Context.builder("u").set("ssn", c.ld_context_private).private("ssn").build()
            raise ValueError(f"innocuous {context.key}")
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=5)
    sentry_receiver.wait_for_events(1)
    assert leaks(wire(sentry_receiver), {"ssn": c.ld_context_private}) == []


def test_context_locals_show_redacted_and_the_apps_custom_repr_still_runs(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    class Cart:
        pass

    c = Canaries.fresh()
    sentry_init(
        integrations=[FlagsIntegration()],
        **pii_options(False),
        custom_repr=lambda value: "<the app's cart>" if isinstance(value, Cart) else None,
    )
    with sentry_sdk.isolation_scope():
        try:
            cart = Cart()
            context = Context.builder("user-7").set("ssn", c.ld_context_private).private("ssn").build()
            raise ValueError(f"innocuous {context.key} {cart!r}")
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=5)
    [event] = sentry_receiver.wait_for_events(1)
    frame = event["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["vars"]["cart"] == "<the app's cart>"
    shown = frame["vars"]["context"]
    assert "user-7" in shown
    assert "ssn" in shown  # named under _meta.redactedAttributes, its value gone
    assert c.ld_context_private not in shown
    assert leaks(wire(sentry_receiver), {"ssn": c.ld_context_private}) == []


def _raising_frame_vars(event: dict[str, Any]) -> dict[str, Any]:
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    return dict(frames[-1]["vars"])


def test_an_evaluation_series_context_in_a_hook_does_not_reach_sentry(
    sentry_init: Callable[..., Any],
    sentry_receiver: SentryReceiver,
    make_ld_client: Callable[..., Any],
    ld_test_data: Any,
) -> None:
    from ldclient.hook import EvaluationSeriesContext, Hook, Metadata

    from sentry_flags.launchdarkly import SentryFlagsPlugin

    class AppHook(Hook):
        """An app's own hook that reports its failure: ``series_context`` is a local."""

        @property
        def metadata(self) -> Metadata:
            return Metadata(name="app")

        def before_evaluation(self, series_context: EvaluationSeriesContext, data: Any) -> Any:
            return data

        def after_evaluation(self, series_context: EvaluationSeriesContext, data: Any, detail: Any) -> Any:
            try:
                raise RuntimeError("the app's hook failed")
            except RuntimeError:
                sentry_sdk.capture_exception()
            return data

    secret = _token("series")
    # The plugin way, without launchdarkly_client=: the integration knows no client of its own.
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False))
    ld = make_ld_client(
        update_processor_class=ld_test_data, plugins=[SentryFlagsPlugin()], hooks=[AppHook()],
        private_attributes=["ssn"],
    )  # fmt: skip
    with sentry_sdk.isolation_scope():
        ld.variation(LD_FLAG, Context.builder("user-8").set("ssn", secret).build(), False)
    sentry_sdk.flush(timeout=5)

    [event] = sentry_receiver.wait_for_events(1)
    shown = _raising_frame_vars(event)["series_context"]
    assert shown.startswith("EvaluationSeriesContext(key='new-checkout', context=<Context {")
    assert '"key": "user-8"' in shown
    assert '"redactedAttributes": ["ssn"]' in shown
    assert leaks(wire(sentry_receiver), {"ssn": secret}) == []


@dataclass
class _AppRequest:
    """An app's dataclass holding the request's LD context: its repr shows the context."""

    path: str
    ld_context: Context
    more: list[Any] = field(default_factory=list)


def test_values_holding_a_context_show_it_redacted(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    pytest.importorskip("openfeature")
    from ldclient import ContextBuilder
    from ldclient.hook import EvaluationSeriesContext
    from ldclient.impl.events.types import EventInputEvaluation  # what LD's event pipeline holds
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagType
    from openfeature.hook import HookContext

    from sentry_flags._context import ContextSlot
    from sentry_flags.openfeature import Conversion, SentryFlagsHook

    secret = _token("holder")
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False))
    context = Context.builder("user-9").set("ssn", secret).private("ssn").build()
    series = EvaluationSeriesContext("flag-a", context, False, "variation")
    attributes = {"ssn": secret, "privateAttributes": ["ssn"], "plan": "pro"}
    evaluation_context = EvaluationContext("user-9", attributes)

    def capture(  # each argument is a local variable to show
        context: Any, series: Any, event_input: Any, evaluation_context: Any, hook_context: Any,
        request: Any, builder: Any, slot: Any, conversion: Any,
    ) -> None:  # fmt: skip
        try:
            raise ValueError("innocuous")
        except ValueError:
            sentry_sdk.capture_exception()

    with sentry_sdk.isolation_scope():
        capture(
            context,
            series,
            EventInputEvaluation(0, context, "flag-a", None, 1, True, None, False),
            evaluation_context,
            HookContext("flag-a", FlagType.BOOLEAN, False, evaluation_context),
            _AppRequest("/checkout", context, more=[(series, {"input": series})]),
            ContextBuilder("user-9").set("ssn", secret),
            ContextSlot(context, None),
            Conversion("user-9", attributes, SentryFlagsHook()),
        )
    sentry_sdk.flush(timeout=5)

    [event] = sentry_receiver.wait_for_events(1)
    shown = _raising_frame_vars(event)
    assert leaks(wire(sentry_receiver), {"ssn": secret}) == []
    # Redacted as a launchdarklyContext is (what else is private depends on the LD clients
    # other tests left alive: the private attributes of every hooked client apply).
    for name in ("context", "series", "event_input", "request", "evaluation_context"):
        assert '{"_meta": {"redactedAttributes": ["ssn"' in shown[name], name
        assert '"key": "user-9", "kind": "user"' in shown[name], name
    assert shown["request"].startswith("_AppRequest(path='/checkout', ld_context=<Context {")
    assert shown["slot"] == {}  # a dict with no items, whatever it holds


class _AppOrder:
    """An app's object whose own repr embeds the context's (an attrs or pydantic class does too)."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def __repr__(self) -> str:
        return f"<Order for {self.context!r}>"


class _CutRepr:
    """An app's object whose repr cuts the context's JSON short: nothing to parse, not shown."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def __repr__(self) -> str:
        return repr(self.context)[:60]


def test_any_value_whose_repr_embeds_a_context_shows_it_redacted_or_not_at_all(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    import functools
    import types

    pytest.importorskip("openfeature")
    from openfeature.evaluation_context import EvaluationContext

    secret = _token("embedded")
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False))
    context = Context.builder("user-10").set("ssn", secret).private("ssn").build()
    multi = Context.create_multi(context, Context.builder("org-1").kind("org").build())

    def capture(  # each argument is a local variable to show
        namespace: Any, partial: Any, exception: Any, values: Any, order: Any, orders: Any,
        multi_order: Any, cut: Any, evaluation_order: Any, plain: Any,
    ) -> None:  # fmt: skip
        try:
            raise ValueError("innocuous")
        except ValueError:
            sentry_sdk.capture_exception()

    with sentry_sdk.isolation_scope():
        capture(
            types.SimpleNamespace(ctx=context),
            functools.partial(print, context, sep=context),
            ValueError(context),
            {"a": context}.values(),
            _AppOrder(context),
            _AppOrder([context, "next"]),
            _AppOrder(multi),
            _CutRepr(context),
            _AppOrder(EvaluationContext("user-10", {"ssn": secret})),
            "plain",
        )
    sentry_sdk.flush(timeout=5)

    [event] = sentry_receiver.wait_for_events(1)
    shown = _raising_frame_vars(event)
    assert leaks(wire(sentry_receiver), {"ssn": secret}) == []
    redacted = '<Context {"_meta": {"redactedAttributes": ["ssn"]}, "key": "user-10", "kind": "user"}>'
    # Looked into, part by part:
    assert shown["namespace"] == f"namespace(ctx={redacted})"
    assert shown["partial"] == f"functools.partial(<built-in function print>, {redacted}, sep={redacted})"
    assert shown["exception"] == f"ValueError({redacted})"
    assert shown["values"] == f"dict_values([{redacted}])"
    # Screened by their own repr: each context's JSON in it redacted...
    assert shown["order"] == f"<Order for {redacted}>"
    assert shown["orders"] == f"<Order for [{redacted}, 'next']>"
    assert shown["multi_order"].startswith('<Order for <Context {"kind": "multi", "org": {"key": "org-1"}, ')
    # ...or, where that cannot be done, not shown at all.
    assert shown["cut"] == "<_CutRepr: holds a LaunchDarkly context; not shown>"
    assert shown["evaluation_order"] == "<_AppOrder: holds a LaunchDarkly context; not shown>"
    assert shown["plain"] == "'plain'"  # sentry-sdk's own repr


def test_an_attrs_class_holding_a_context_shows_it_redacted(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    attr = pytest.importorskip("attr")

    @attr.s(auto_attribs=True)
    class Visit:
        path: str
        context: Context

    def capture(visit: Any) -> None:  # the raising frame: its one local is shown
        try:
            raise ValueError("innocuous")
        except ValueError:
            sentry_sdk.capture_exception()

    secret = _token("attrs")
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False))
    with sentry_sdk.isolation_scope():
        capture(Visit("/checkout", Context.builder("user-11").set("ssn", secret).private("ssn").build()))
    sentry_sdk.flush(timeout=5)

    [event] = sentry_receiver.wait_for_events(1)
    assert leaks(wire(sentry_receiver), {"ssn": secret}) == []
    shown = _raising_frame_vars(event)["visit"]
    redacted = '<Context {"_meta": {"redactedAttributes": ["ssn"]}, "key": "user-11", "kind": "user"}>'
    assert shown.endswith(f"Visit(path='/checkout', context={redacted})")  # attrs' repr, screened


def test_the_apps_custom_repr_is_screened_too_and_may_fail(
    sentry_init: Callable[..., Any], sentry_receiver: SentryReceiver
) -> None:
    class Session:
        def __init__(self, context: Context) -> None:
            self.context = context

    class Broken:
        pass

    def app_repr(value: Any) -> Optional[str]:
        if isinstance(value, Session):
            return f"<Session of {value.context!r}>"  # the app's own choice, but a context
        if isinstance(value, Broken):
            raise RuntimeError("the app's custom_repr failed")  # sentry-sdk: plain repr
        return None

    def capture(visit: Any, broken: Any) -> None:  # the raising frame: its locals are shown
        try:
            raise ValueError("innocuous")
        except ValueError:
            sentry_sdk.capture_exception()

    secret = _token("custom")
    sentry_init(integrations=[FlagsIntegration()], **pii_options(False), custom_repr=app_repr)
    with sentry_sdk.isolation_scope():
        capture(Session(Context.builder("user-12").set("ssn", secret).private("ssn").build()), Broken())
    sentry_sdk.flush(timeout=5)

    [event] = sentry_receiver.wait_for_events(1)
    assert leaks(wire(sentry_receiver), {"ssn": secret}) == []
    shown = _raising_frame_vars(event)
    redacted = '<Context {"_meta": {"redactedAttributes": ["ssn"]}, "key": "user-12", "kind": "user"}>'
    assert shown["visit"] == f"<Session of {redacted}>"
    assert shown["broken"].startswith(
        "<test_privacy_scan.test_the_apps_custom_repr_is_screened_too_and_may_fail"
    )


def test_scanner_sees_every_encoding() -> None:
    # The scan must find a canary however a client encoded it.
    value = f"{_token('probe')}@example.com"
    for data in (
        value.encode(),
        quote(value).encode(),
        quote_plus(value).encode(),
        json.dumps({"v": value}).encode(),
        gzip.compress(value.encode()),
        value.split("@", maxsplit=1)[0].split("-", 1)[1].encode(),
    ):
        assert leaks([("x", b"\n".join(_inflated(data)).lower())], {"v": value}) != [], data


# -- the LaunchDarkly forwarder hands LD what the Sentry event lost, marked private ----------------


class _RecordingLD:
    def __init__(self) -> None:
        self.tracked: list[dict[str, Any]] = []

    def track(self, event_name: str, context: Any, data: Any = None) -> None:
        self.tracked.append({"event_name": event_name, "context": context, "data": data})


def _forwarded_context(context: Context, contexts: Mapping[str, Any]) -> Context:
    from datetime import datetime, timezone

    from sentry_flags._event import ErrorView

    view = ErrorView(
        event_id="e" * 32, timestamp=datetime.now(timezone.utc), level="error",
        contexts=contexts, ld_context=context,
    )  # fmt: skip
    [call] = LaunchDarklyForwarder(_RecordingLD()).calls(view, 0.0)
    forwarded = call.kwargs["context"]
    assert isinstance(forwarded, Context)
    return forwarded


def _private(context: Context) -> dict[str, list[str]]:
    singles = [context.get_individual_context(i) for i in range(context.individual_context_count)]
    return {s.kind: sorted(s.private_attributes) for s in singles if s is not None}


def test_ld_forwarder_marks_what_launchdarkly_context_lost_private() -> None:
    from sentry_flags._context import Redaction, redact

    c = Canaries.fresh()
    user = Context.builder(c.user_id).name(c.full_name).set("email", c.email).set("plan", "pro").build()
    org = Context.builder(c.org_key).kind("org").set("billing", {"iban": "x", "city": "y"}).build()
    context = Context.create_multi(user, org)
    sent = redact(context, Redaction.from_refs(False, ["/billing/iban"]), pii=False)

    forwarded = _forwarded_context(context, {"launchdarklyContext": sent})

    assert _private(forwarded) == {"user": ["email", "name"], "org": ["/billing/iban"]}
    assert forwarded.fully_qualified_key == context.fully_qualified_key
    assert forwarded.get_individual_context("user").get("plan") == "pro"  # kept, not private


def test_ld_forwarder_without_launchdarkly_context_marks_every_attribute_private() -> None:
    # The app's before_send removed launchdarklyContext: nothing tells what reached Sentry, so
    # no attribute is known to be allowed (the evaluating client's private ones included,
    # which the forwarding client may not have): LaunchDarkly gets kind and key only.
    context = Context.builder("k").name("n").set("email", "e@example.com").set("plan", "pro").build()
    assert _private(_forwarded_context(context, {})) == {"user": ["email", "name", "plan"]}
    org = Context.builder("o").kind("org").set("tier", "gold").build()
    forwarded = _forwarded_context(Context.create_multi(context, org), {})
    assert _private(forwarded) == {"user": ["email", "name", "plan"], "org": ["tier"]}
    assert forwarded.fully_qualified_key == Context.create_multi(context, org).fully_qualified_key


def test_ld_forwarder_leaves_a_context_with_nothing_redacted_alone() -> None:
    context = Context.builder("k").set("plan", "pro").build()
    sent = {"launchdarklyContext": {"kind": "user", "key": "k", "plan": "pro"}}
    assert _forwarded_context(context, sent) is context
