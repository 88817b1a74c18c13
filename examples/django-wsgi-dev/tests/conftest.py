"""Django set up for the tests, as `manage.py test` would."""

import os

import django
from django.test.utils import setup_test_environment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
django.setup()
setup_test_environment()  # allows the test client's host, "testserver"
