"""ROOT_URLCONF of scenario 5's Django app: one view answering ``ok``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped, unused-ignore]
from django.urls import path  # type: ignore[import-untyped, unused-ignore]


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("", ok)]
