"""The database, in one place: which one (DATABASE_URL), as Django's DATABASES setting, the size of
each worker's pool, the readiness check and the answer to a request that finds it unreachable.

DATABASE_URL unset: a SQLite file beside where the server runs (embedded, no server to install).
`postgresql://USER:PASSWORD@HOST:PORT/NAME`: PostgreSQL through psycopg 3, with Django's own
connection pool (psycopg_pool), which each worker process opens when it first needs it (after
the server forked it) and closes when it exits. DB_POOL_SIZE: connections each worker process
holds at most (default: 5); no overflow,
so workers x DB_POOL_SIZE is the most this service opens, per replica.

The server's master imports this module to check the settings before any worker starts: it
opens no connection and reads no Django setting at import.
"""

import functools
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, unquote, urlsplit

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.http import JsonResponse
from django.utils.deprecation import MiddlewareMixin

DEFAULT_URL = "sqlite:///example.sqlite3"
# DB_POOL_SIZE's default: the connections one worker's event loop shares between its requests
THREADS_ENV = ""
DEFAULT_POOL_SIZE = 5
POOL_TIMEOUT = 30  # seconds a request waits for a connection from a full pool
EXPECTED = "expected postgresql://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH"
log = logging.getLogger(__name__)


def database_settings() -> dict:
    """DATABASE_URL (or the SQLite default) as an entry of Django's DATABASES; ValueError, one
    line, if it is not a database this service can use."""
    raw = os.environ.get("DATABASE_URL", "").strip() or DEFAULT_URL
    url = urlsplit(raw)
    scheme = url.scheme.lower()
    if scheme == "sqlite":
        path = url.path[1:] if url.path.startswith("/") else url.path  # sqlite:///relative
        if url.netloc or not path:
            raise ValueError(f"DATABASE_URL is not a SQLite file URL; {EXPECTED}")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(path),
            "CONN_MAX_AGE": 0,
            "OPTIONS": {
                # Several worker processes share the file: readers never block the writer (WAL),
                # a writer waits up to 5 s for another instead of failing at once, and a
                # transaction takes the write lock when it begins (no deadlock on upgrading).
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000",
                "transaction_mode": "IMMEDIATE",
            },
        }
    if scheme not in ("postgresql", "postgres"):
        what = f"names {scheme!r}" if scheme else "is not a database URL"
        raise ValueError(f"DATABASE_URL {what}; {EXPECTED}")
    try:
        port = url.port
    except ValueError:
        raise ValueError(f"DATABASE_URL has a port that is not a number; {EXPECTED}") from None
    name = unquote(url.path.lstrip("/"))
    if not name:
        raise ValueError(
            "DATABASE_URL names no database; expected postgresql://USER:PASSWORD@HOST:PORT/NAME"
        )
    size = pool_size()
    return {
        # Django's PostgreSQL backend, failing fast while the database is away (postgresql/base.py)
        "ENGINE": "example.postgresql",
        "NAME": name,
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(port or ""),
        # Django's pool does not keep connections per thread: CONN_MAX_AGE must stay 0 (Django
        # refuses more, and under ASGI persistent connections are not supported at all),
        # each request takes a connection from the pool and gives it back when it ends.
        "CONN_MAX_AGE": 0,
        # With the pool: the pool checks a connection before handing it out, so those that died
        # with the database (a restart) are replaced instead of failing a request.
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # a database that does not answer is given up after 5 s, not the system's TCP timeout
            "connect_timeout": 5,
            # ?sslmode=require and the like: psycopg's connection parameters
            **dict(parse_qsl(url.query)),
            "pool": {"min_size": 1, "max_size": size, "timeout": POOL_TIMEOUT},
        },
    }


def pool_size() -> int:
    """Connections one worker process holds at most (DB_POOL_SIZE)."""
    raw = os.environ.get("DB_POOL_SIZE", "").strip()
    if not raw:
        threads = os.environ.get(THREADS_ENV, "").strip() if THREADS_ENV else ""
        return int(threads) if threads.isdigit() and int(threads) > 0 else DEFAULT_POOL_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"DB_POOL_SIZE={raw!r}: expected a whole number of connections, 1 or more")
    return int(raw)


def check_settings() -> None:
    """Raise ValueError (one line) if DATABASE_URL or DB_POOL_SIZE cannot work."""
    database_settings()
    pool_size()


def describe(settings: dict) -> str:
    """The database, for a log line: never the password."""
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite {settings['NAME']}"
    host = f"{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"
    return f"postgresql {host}/{settings['NAME']}"


def log_start() -> None:
    """One line per worker, whatever the server's logging: which database, and its share."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    pool = database["OPTIONS"].get("pool")
    share = f"pool {pool['max_size']} per worker" if pool else "a connection per request"
    print(
        f"database: {describe(database)}, {share} (pid {os.getpid()})", file=sys.stderr, flush=True
    )


def close_pools() -> None:
    """Close this process's pool (registered to run at exit: the database sees the connections
    end instead of finding them broken)."""
    from django.db import connections

    for alias in connections:
        if getattr(connections[alias], "pool", None) is not None:
            connections[alias].close_pool()


def ready() -> bool:
    """The database answers `SELECT 1`, through this worker's pool when there is one (while the
    database is away the pool fails at once: postgresql/base.py)."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure means not ready; the reason is logged, one line
        log.warning(
            "database not ready: %s",
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        return False
    return True


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """A request that finds the database down (or the pool empty for POOL_TIMEOUT seconds) is
    answered 503 in JSON: the client may retry, it is not its fault, and it is not a 500 page.
    Only process_exception: nothing runs for requests that succeed (no thread hop)."""

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            log.warning(
                "database unavailable: %s",
                str(exception).splitlines()[0] if str(exception) else type(exception).__name__,
            )
            return JsonResponse({"detail": "database unavailable"}, status=503)
        return None


THREAD_NAME = "db"  # db.run's threads are db_0, db_1, ...


@functools.cache
def threads() -> ThreadPoolExecutor:
    """This worker's database threads, made at its first query: never in the server's master."""
    return ThreadPoolExecutor(max_workers=pool_size(), thread_name_prefix=THREAD_NAME)


async def run(work, *args, **kwargs):
    """Run synchronous database work (ORM calls) on one of this worker's database threads, and
    give its connection back to the pool when it is done: `await db.run(Item.objects.create,
    name="x")`.

    Why not Django's async ORM methods (aget, acreate, ...): they run on one thread per worker
    process that every request shares, so the queries of concurrent requests take turns. These
    threads are as many as the pool has connections (DB_POOL_SIZE): one query per connection at
    once, and a request waits for a thread, never for a connection. Measured on PostgreSQL (4
    workers, 64 connections; newstack's BENCHMARKS.md): about 1.6x the requests/s of the async
    ORM methods on a one-row read, and 4x on requests that wait 10 ms on the database.
    """

    def call():
        try:
            return work(*args, **kwargs)
        finally:
            connection.close()  # this thread's connection, back to the pool (CONN_MAX_AGE is 0)

    return await sync_to_async(call, thread_sensitive=False, executor=threads())()


# Set when a connection is opened on a thread other than db.run's: the one thread that Django's
# async ORM methods, synchronous views and sync_to_async share (asgi.py's handler).
shared_thread_connected = threading.Event()


def note_connection(sender, connection, **kwargs) -> None:
    """connection_created's receiver (connected in asgi.py)."""
    if not threading.current_thread().name.startswith(f"{THREAD_NAME}_"):
        shared_thread_connected.set()


async def release_shared_connection() -> None:
    """At the end of a request: the shared thread's connection, if it opened one, back to the
    pool (nothing to do, no hop, when it opened none)."""
    if shared_thread_connected.is_set():
        shared_thread_connected.clear()
        await sync_to_async(close_old_connections)()
