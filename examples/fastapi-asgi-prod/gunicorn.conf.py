"""gunicorn settings for example. Start with: gunicorn example.main:app -c gunicorn.conf.py

gunicorn loads this file only when named with -c (it auto-loads ./gunicorn.conf.py only from the
current directory). Every value can be set from the environment, as most platforms expect.
"""

import os

from dotenv import load_dotenv

# Settings from a .env file in the working directory, if there is one, for every way in: the
# servers, manage.py or the migrations, the tests. A variable already in the environment wins
# over the file.
load_dotenv(".env")


def _cores() -> int:
    """CPUs this process may run on: a container's CPU set, not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# uvicorn's event loop and HTTP parser under gunicorn's process manager (the uvicorn-worker
# package; uvicorn.workers.UvicornWorker is deprecated).
# example.workers.UvicornWorker is uvicorn_worker.UvicornWorker, changed so that a stopping
# worker loses no request and the request limits below hold: see example/workers.py.
worker_class = "example.workers.UvicornWorker"
# An async worker serves many connections from one event loop: about one per core.
workers = int(os.environ.get("WEB_CONCURRENCY") or _cores())

# All interfaces by default: inside a container that is how traffic arrives.
host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104  # nosec B104
bind = f"{host}:{os.environ.get('PORT', '8000')}"
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))

# A worker silent for `timeout` seconds is killed and replaced. On SIGTERM workers get
# `graceful_timeout` seconds to finish: keep it below the orchestrator's stop grace period.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# Idle keep-alive connections are kept this long: above a load balancer's idle timeout.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# Requests with a longer request line are refused with 414, with more header fields or a longer
# one with 431, before the application sees them.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "4094"))
limit_request_fields = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELDS", "100"))
limit_request_field_size = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", "8190"))

# Recycle workers now and then so a slow leak cannot grow without bound; the jitter keeps
# them from restarting all at once. Not every 1,000 requests, as guides often show: a worker
# boots in about a second of CPU, and at thousands of requests a second that recycling cost
# FastAPI 65% of its throughput and Django 25-40% (`newstack bench`, BENCHMARKS.md).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "10000"))

# The heartbeat file lives in memory where it can: a disk-backed /tmp can stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108

# X-Forwarded-* headers are trusted only from these proxy addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs go to stdout/stderr for the platform to collect.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

# gunicorn 25.1+ opens a control socket in ~/.gunicorn shared by every instance of one user,
# and a second instance takes it over. This service does not use it.
control_socket_disable = True

# The database settings are checked here, in the master, so that a wrong DATABASE_URL is one
# line and an exit, not a traceback in every worker. Each worker opens its own pool when it
# starts (after the fork: never preload_app, pooled connections must not cross it).
from example.db import (  # noqa: E402
    check_settings,
    pool_size,
)

try:
    check_settings()
except ValueError as error:
    raise SystemExit(str(error)) from None


def when_ready(server) -> None:
    """The most connections this server opens to the database, logged once at start."""
    pool = pool_size()
    server.log.info(
        "database budget: %d workers x %d connections = %d per replica; keep "
        "workers x pool x replicas below PostgreSQL's max_connections minus a reserve",
        workers,
        pool,
        workers * pool,
    )
