"""The WSGI entry point: ``gunicorn shop.wsgi`` (from examples/django_app)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

# sentry-sdk's DjangoIntegration patches Django's WSGI handler, so every request served
# here gets its own Sentry isolation scope: its user's context never reaches another's errors.
application = get_wsgi_application()
