"""Settings of the test project; ``configure`` applies them once per process."""

from __future__ import annotations

from typing import Any

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "sentry_flags.django.FlagsMiddleware",
]


def settings_for(db_path: str) -> dict[str, Any]:
    return {
        "DEBUG": False,
        "SECRET_KEY": "sentry-flags-tests",
        "ALLOWED_HOSTS": ["*"],
        "ROOT_URLCONF": "django_project.urls",
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        "MIDDLEWARE": MIDDLEWARE,
        # A file, not ":memory:": requests on other threads need to see the same tables.
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
        "USE_TZ": True,
        "LOGGING_CONFIG": None,  # keep Django's "Internal Server Error" lines out of the output
    }


def configure(db_path: str) -> None:
    """Configure Django for this process (a no-op if it already is) and create the tables."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    if settings.configured:
        if getattr(settings, "ROOT_URLCONF", None) != "django_project.urls":
            raise RuntimeError("Django was configured for another project in this process")
        return
    settings.configure(**settings_for(db_path))
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
