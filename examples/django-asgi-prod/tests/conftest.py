"""Django set up for the tests, as `manage.py test` would, and their database: TEST_DATABASE_URL
when set (a PostgreSQL URL), else a temporary SQLite file. Its schema comes from the migrations,
as in production; every test starts with no items."""

import os
import secrets
import tempfile

import django
import pytest
from django.core.management import call_command
from django.test.utils import setup_test_environment

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE",
    "example.settings",
)
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # made fresh for each run
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ["DJANGO_STATIC_ROOT"] = tempfile.mkdtemp(prefix="static-")
# Read by settings.py (db.py) at django.setup(): the tests' own database, never DATABASE_URL's.
os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL") or (
    f"sqlite:///{tempfile.mkdtemp(prefix='db-')}/test.sqlite3"
)
django.setup()
setup_test_environment()  # allows the test client's host, "testserver"
call_command("migrate", interactive=False, verbosity=0)

# Production serves hashed copies of the static files, as the Dockerfile collects them.
call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture(autouse=True)
def no_items():
    """Every test starts and ends with an empty items table."""
    from example.models import Item

    Item.objects.all().delete()
    yield
    Item.objects.all().delete()
