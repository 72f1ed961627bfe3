from __future__ import annotations

from django.contrib import admin
from django.urls import path

from shop import views

urlpatterns = [
    path("admin/", admin.site.urls),  # log in here to shop as a user
    path("checkout", views.checkout),
    path("orders", views.orders),
    path("resize", views.resize),
    path("healthz", views.healthz),
]
