"""Django settings for example, read from the environment.

Production defaults: DEBUG off, DJANGO_SECRET_KEY required, HTTPS behind a proxy.
`python manage.py check --deploy` lists what to review.
"""

import importlib.util
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

from example import db


def env_flag(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_flag("DJANGO_DEBUG", False)
# In debug mode a missing key is replaced by a random one (sessions end at each restart).
# Otherwise it may be empty for the commands that sign nothing (collectstatic, migrate): Django
# raises ImproperlyConfigured when anything reads it, and the servers refuse to start without it.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (get_random_secret_key() if DEBUG else "")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",  # /admin/: `python manage.py createsuperuser` makes its first user
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "example",  # the example model, Item (models.py), and its migrations
]
# Under ASGI, Django hops to another thread for each hook of a sync-capable middleware:
# middleware.py runs these on the event loop instead (the session's only when a view used it).
MIDDLEWARE = [
    "example.methods.TraceNotAllowedMiddleware",  # TRACE: 405
    "example.headers.ContentSecurityPolicyMiddleware",
    "example.middleware.SecurityMiddleware",
    "example.middleware.SessionMiddleware",
    "example.middleware.CommonMiddleware",
    "example.middleware.CsrfViewMiddleware",
    "example.middleware.AuthenticationMiddleware",
    "example.middleware.MessageMiddleware",
    "example.middleware.XFrameOptionsMiddleware",
    "example.db.DatabaseUnavailableMiddleware",
]
# Messages (the admin's "saved" notes) in a signed cookie: no database query per request.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
# Django's deploy checks security.W001-W003 look for its own middleware by dotted path and do not
# see these subclasses of it; tests/test_app.py checks that they are installed instead.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "example.urls"
# `python manage.py test` runs pytest, which runs the tests (testing.py).
TEST_RUNNER = "example.testing.PytestRunner"
ASGI_APPLICATION = "example.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DATABASE_URL: unset, a SQLite file in the working directory; postgresql://... with a pool per
# worker process (db.py, DB_POOL_SIZE). Applied by `python manage.py migrate`, never at start.
try:
    DATABASES = {"default": db.database_settings()}
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
# A request body larger than this is refused with 400 before a view reads it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # Django's default, 2.5 MB
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
# Hashed, compressed copies made by `collectstatic`, served with far-future cache headers,
# right after the security middleware.
MIDDLEWARE.insert(1, "servestatic.middleware.ServeStaticMiddleware")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage",
    },
}

# HTTPS is terminated by a proxy that sets X-Forwarded-Proto. The server takes the scheme from it
# only for requests from FORWARDED_ALLOW_IPS (gunicorn.conf.py); SECURE_PROXY_SSL_HEADER is left
# unset, as it would make Django believe the header from any client.
SECURE_SSL_REDIRECT = env_flag("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # health checks arrive over plain HTTP
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))  # a year
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading is a commitment (every subdomain HTTPS-only for good, hard to undo): opt in with
# DJANGO_SECURE_HSTS_PRELOAD=1 once that holds, then submit the domain to hstspreload.org.
SECURE_HSTS_PRELOAD = env_flag("DJANGO_SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:  # check --deploy's security.W021 asks for it: off on purpose
    SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "security.W021"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
X_FRAME_OPTIONS = "DENY"

# Channels' layer carries messages between consumers (groups, broadcasts). In memory it reaches
# the consumers of one process only: with more than one worker or replica, set REDIS_URL to a
# Redis server all of them share (and install the redis extra: pip install ".[redis]").
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    if importlib.util.find_spec("channels_redis") is None:
        raise ImproperlyConfigured(
            'REDIS_URL is set but channels_redis is not installed: pip install ".[redis]"'
        )
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
