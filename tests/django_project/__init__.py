"""A minimal Django project for tests/test_django.py (configured by its fixture)."""
