"""WSGI entry point: `example.wsgi:application`, what the server serves."""

import atexit
import os

from django.core.wsgi import get_wsgi_application

from . import db

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE",
    "example.settings",
)

application = get_wsgi_application()

# This worker's database pool opens at its first query and closes when the process exits.
db.log_start()
atexit.register(db.close_pools)
