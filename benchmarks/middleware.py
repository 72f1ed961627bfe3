"""5. Per-request cost of our Django middleware and Flask extension, on requests that succeed.

For each framework, two apps with one view returning ``ok``: one plain, one with ours
(``sentry_flags.django.FlagsMiddleware`` / ``sentry_flags.flask.FlagsExtension``, default
lazy context: nothing is built unless an error is captured). The same Sentry client serves
both: sentry-sdk's Django and Flask integrations and FlagsIntegration are on in both, so the
difference is our per-request glue only. Requests are plain WSGI calls (no HTTP server),
which makes the app as cheap as it can be and the ratio as strict as it can be.
A framework whose glue is not in the package yet gets a "not available" row.

Two more figures say whether the ratio is above this machine's noise:

* **A/A**: the plain app is timed a second time in every round, as a third variant; its
  ratio to the first is what two identical variants differ by here (ideally 1.000), and
  the middle half of the per-round ratios shows the spread.
* **our code, measured directly**: after the interleaved rounds, our middleware's own time
  per request (Django: its ``__call__`` minus the inner ``get_response``; Flask: its
  ``before_request`` functions, none since the extension finds the request when an error is
  captured, so 0) with ``perf_counter_ns`` wrappers, as a share of the plain
  app's request. The wrappers' own cost (~0.1-0.3 µs) is included, so it is an upper
  bound of our code, not of the framework's cost of one more middleware layer.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterable, Sequence
from typing import Any, Callable

from benchmarks._harness import NOT_AVAILABLE, Row, interleave, log, paired_ratio, per_op_ns, us, verdict
from benchmarks._harness import median as med
from benchmarks._vendors import DropTransport, make_client

NAME = "middleware"
BUDGET = 1.02
OURS = {"django": "sentry_flags.django", "flask": "sentry_flags.flask"}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
    return lambda data: None


def _environ() -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    environ: dict[str, Any] = EnvironBuilder(path="/", query_string="user=u-1").get_environ()
    return environ


def requests_loop(app: WsgiApp) -> Callable[[int], None]:
    environ = _environ()

    def loop(n: int) -> None:
        for _ in range(n):
            body = app(dict(environ), _start_response)
            try:
                for _chunk in body:
                    pass
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    return loop


def timed(loop: Callable[[int], None], n: int) -> Callable[[], float]:
    return lambda: per_op_ns(loop, n)


def spread(numerator: Sequence[float], denominator: Sequence[float]) -> str:
    ratios = sorted(a / b for a, b in zip(numerator, denominator))
    quarter = len(ratios) // 4
    return f"middle half {ratios[quarter]:.3f}..{ratios[-1 - quarter]:.3f}"


def direct_django(app: WsgiApp, n: int) -> float:
    """Nanoseconds per request inside ``FlagsMiddleware.__call__``, less the inner app."""
    from sentry_flags.django import FlagsMiddleware

    clock = time.perf_counter_ns
    original = FlagsMiddleware.__call__
    spent = [0]

    def timed_call(self: Any, request: Any) -> Any:
        start = clock()
        inner = self.get_response
        inner_ns = [0]

        def get_response(req: Any) -> Any:
            t0 = clock()
            try:
                return inner(req)
            finally:
                inner_ns[0] += clock() - t0

        self.get_response = get_response
        try:
            return original(self, request)
        finally:
            self.get_response = inner
            spent[0] += clock() - start - inner_ns[0]

    FlagsMiddleware.__call__ = timed_call  # type: ignore[method-assign]
    try:
        requests_loop(app)(n)
    finally:
        FlagsMiddleware.__call__ = original  # type: ignore[method-assign]
    return spent[0] / n


def direct_flask(app: Any, n: int) -> float:
    """Nanoseconds per request inside ``before_request`` functions of our extension: 0 when it
    registers none (it finds the request when an error is captured)."""
    clock = time.perf_counter_ns
    ext = app.extensions["sentry_flags"]
    funcs = app.before_request_funcs.get(None, [])
    ours = [i for i, func in enumerate(funcs) if getattr(func, "__self__", None) is ext]
    if not ours:
        return 0.0
    originals = {i: funcs[i] for i in ours}
    spent = [0]

    def timing(original: Callable[[], Any]) -> Callable[[], Any]:
        def timed() -> Any:
            start = clock()
            try:
                return original()
            finally:
                spent[0] += clock() - start

        return timed

    for i, original in originals.items():
        funcs[i] = timing(original)
    try:
        requests_loop(app)(n)
    finally:
        for i, original in originals.items():
            funcs[i] = original
    return spent[0] / n


DIRECT = {"django": direct_django, "flask": direct_flask}


def flask_apps() -> tuple[WsgiApp, WsgiApp]:
    from flask import Flask

    from sentry_flags.flask import FlagsExtension

    def build(with_ours: bool) -> WsgiApp:
        app = Flask(f"bench_{with_ours}")
        if with_ours:
            FlagsExtension(app)
        app.add_url_rule("/", "index", lambda: "ok")
        return app

    return build(False), build(True)


def django_apps() -> tuple[WsgiApp, WsgiApp]:
    import django  # type: ignore[import-untyped, unused-ignore]
    from django.conf import settings  # type: ignore[import-untyped, unused-ignore]
    from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped, unused-ignore]

    importlib.import_module(OURS["django"])
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="benchmarks._django_urls",
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
    )
    django.setup()
    plain = WSGIHandler()  # the middleware chain is read from settings here
    settings.MIDDLEWARE = [f"{OURS['django']}.FlagsMiddleware"]
    ours = WSGIHandler()
    return plain, ours


def run(quick: bool) -> list[Row]:
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration

    from sentry_flags import FlagsIntegration

    rounds, n = (7, 300) if quick else (25, 2000)
    rows: list[Row] = []
    builders = {"django": django_apps, "flask": flask_apps}
    available = {name for name, module in OURS.items() if importlib.util.find_spec(module) is not None}
    apps = {name: builders[name]() for name in sorted(available)}
    make_client(
        "http://public@127.0.0.1:9/1",
        [DjangoIntegration(), FlaskIntegration(), FlagsIntegration()],
        transport=DropTransport,
    )
    for name in ("django", "flask"):
        title = f"5 {name} per request"
        if name not in apps:
            rows.append(Row(title, f"{OURS[name]} not available", "", "", f"<= {BUDGET:.2f}", NOT_AVAILABLE))
            continue
        plain, ours = apps[name]
        loops = {"plain": requests_loop(plain), "ours": requests_loop(ours)}
        loops["plain A/A"] = requests_loop(plain)
        for loop in loops.values():
            loop(200)  # warm-up
        log(f"{NAME}: {name}: {rounds} rounds x {n} requests per variant")
        samples = interleave({k: timed(loop, n) for k, loop in loops.items()}, rounds)
        ratio = paired_ratio(samples["ours"], samples["plain"])
        noise = paired_ratio(samples["plain A/A"], samples["plain"])
        direct = DIRECT[name](ours, n)
        share = direct / med(samples["plain"])
        rows += [
            Row(title, "app with sentry-sdk's integration", us(med(samples["plain"])) + "/request"),
            Row(title, f"same app + {OURS[name]}", us(med(samples["ours"])) + "/request", f"{ratio:.3f}",
                f"<= {BUDGET:.2f}", verdict(ratio <= BUDGET)),
            Row(title, "A/A: the plain app timed again", us(med(samples["plain A/A"])) + "/request",
                f"{noise:.3f}"),
            Row(title, "our code per request, measured directly", us(direct), f"{1 + share:.3f}"),
            Row.note(title, f"per-round ratios: ours/plain {spread(samples['ours'], samples['plain'])}; "
                     f"A/A {spread(samples['plain A/A'], samples['plain'])}; our code directly = "
                     f"{share:.1%} of the plain request"),
        ]  # fmt: skip
    return rows
