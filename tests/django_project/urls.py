from __future__ import annotations

from django.urls import path

from django_project import views

urlpatterns = [
    path("ok", views.ok),
    path("twice", views.report_twice),
    path("boom/<str:name>", views.boom),
    path("evaluate/<str:name>", views.evaluate_then_boom),
    path("split/<str:name>", views.treatment_then_boom),
    path("async/ok", views.async_ok),
    path("async/boom/<str:name>", views.async_boom),
    path("async/capture/<str:name>", views.async_capture),
    path("async/capture-amid-another/<str:name>", views.async_capture_amid_another),
    path("async/served-across-a-capture", views.async_served_across_a_capture),
    path("async/capture-after-auser/<str:name>", views.async_capture_after_auser),
    path("capture/<str:name>", views.capture),
    path("capture-after-user/<str:name>", views.capture_after_user),
]
