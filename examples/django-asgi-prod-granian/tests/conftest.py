"""Django set up for the tests, as `manage.py test` would."""

import os
import secrets
import tempfile

import django
from django.test.utils import setup_test_environment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # made fresh for each run
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ["DJANGO_STATIC_ROOT"] = tempfile.mkdtemp(prefix="static-")
django.setup()
setup_test_environment()  # allows the test client's host, "testserver"

from django.core.management import call_command  # noqa: E402

# Production serves hashed copies of the static files, as the Dockerfile collects them.
call_command("collectstatic", interactive=False, verbosity=0)
