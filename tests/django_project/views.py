"""Views that fail, evaluate a flag, or report an error themselves."""

from __future__ import annotations

import asyncio
from typing import Any

import sentry_sdk
from django.http import HttpRequest, HttpResponse

# Set by a test that needs a flag evaluation inside the request.
ld_client: Any = None
split_client: Any = None
SPLIT_FLAG = "new_checkout"


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def boom(request: HttpRequest, name: str) -> HttpResponse:
    raise RuntimeError(f"boom {name}")


def evaluate_then_boom(request: HttpRequest, name: str) -> HttpResponse:
    from ldclient import Context

    ld_client.variation("some-flag", Context.create(f"evaluated-{name}"), False)
    raise RuntimeError(f"boom {name}")


def treatment_then_boom(request: HttpRequest, name: str) -> HttpResponse:
    # Keyed by the logged-in user; the email attribute must not reach the event.
    split_client.get_treatment(str(request.user.pk), SPLIT_FLAG, {"email": f"{name}@example.com"})
    raise RuntimeError(f"boom {name}")


async def async_ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def async_boom(request: HttpRequest, name: str) -> HttpResponse:
    await asyncio.sleep(0.005)  # lets concurrent requests interleave
    raise RuntimeError(f"boom {name}")


async def async_capture(request: HttpRequest, name: str) -> HttpResponse:
    # Captured on the event loop's thread, where Django refuses database access.
    try:
        raise RuntimeError(f"boom {name}")
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    return HttpResponse("reported")


def capture(request: HttpRequest, name: str) -> HttpResponse:
    # Reported by the view itself, before anything loaded the request's user.
    try:
        raise RuntimeError(f"boom {name}")
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    return HttpResponse("reported")


def capture_after_user(request: HttpRequest, name: str) -> HttpResponse:
    request.user.is_authenticated  # noqa: B018 - the view used its user, as views that need it do
    return capture(request, name)


class Rendezvous:
    """Two requests on one event loop, each waiting for the other: made by a test, in its loop."""

    def __init__(self) -> None:
        self.other_waiting = asyncio.Event()
        self.captured = asyncio.Event()
        self.other_served = asyncio.Event()
        self.log: list[str] = []


rendezvous: Any = None


async def async_capture_amid_another(request: HttpRequest, name: str) -> HttpResponse:
    # Captures only once the other request is in flight on the loop, and finishes only once
    # that one was served: it cannot finish if capturing held the loop.
    await rendezvous.other_waiting.wait()
    response = await async_capture(request, name)
    rendezvous.log.append("error captured")
    rendezvous.captured.set()
    await rendezvous.other_served.wait()
    return response


async def async_served_across_a_capture(request: HttpRequest) -> HttpResponse:
    rendezvous.log.append("other request waiting")
    rendezvous.other_waiting.set()
    await rendezvous.captured.wait()
    rendezvous.log.append("other request served")
    rendezvous.other_served.set()
    return HttpResponse("ok")


async def async_capture_after_auser(request: HttpRequest, name: str) -> HttpResponse:
    await request.auser()  # the view loaded its user (Django 5.0+), as views that use it do
    return await async_capture(request, name)


def report_twice(request: HttpRequest) -> HttpResponse:
    sentry_sdk.capture_message("first")
    sentry_sdk.capture_message("second")
    return HttpResponse("reported twice")
