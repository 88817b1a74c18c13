"""The database of example: all of its wiring, in this one module.

Settings, from the environment, read when create_app() runs:

- DATABASE_URL: unset or empty is the SQLite file example.sqlite3 in the current
  directory (embedded, no server); `postgresql://USER:PASSWORD@HOST:PORT/NAME` (or
  `postgres://`) is PostgreSQL through psycopg 3; `sqlite:///FILE` is another SQLite file.
- DB_POOL_SIZE: connections each worker process may hold. By default the requests a worker
  serves at once: its threads (GUNICORN_THREADS or GRANIAN_BLOCKING_THREADS), else 4. The pool
  never opens more (no overflow), so workers x DB_POOL_SIZE is the service's whole budget.

The engine and its pool belong to one process: create_app() makes them in each worker, after
the server forked it (never at import, so never in gunicorn's master), and they are disposed
when that process ends. Each request gets its own session, closed when the request ends.
The schema is Alembic's job (`alembic upgrade head`, see migrations/), never the workers'.
"""

import atexit
import multiprocessing.util
import os
import sys
from collections.abc import Mapping

from flask import Flask, Response, current_app, g, jsonify
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

DEFAULT_URL = "sqlite:///example.sqlite3"
VALID = (
    "use postgresql://USER:PASSWORD@HOST:PORT/NAME (or postgres://), sqlite:///FILE, "
    f"or leave it unset for {DEFAULT_URL}"
)
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
POOL_SIZE_FROM = ("DB_POOL_SIZE", "GUNICORN_THREADS", "GRANIAN_BLOCKING_THREADS")
DEFAULT_POOL_SIZE = 4
CONNECT_TIMEOUT = 5  # seconds to reach PostgreSQL, unless the URL sets connect_timeout
# What a request that cannot reach the database gets: 503, never a 500 traceback page.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


class Base(DeclarativeBase):
    """The models' base class. migrations/env.py compares its tables with the database."""


def database_url(value: str | None = None) -> URL:
    """DATABASE_URL (or `value`) as the URL SQLAlchemy connects to.

    Raises ValueError with a one-line message naming the problem and what is valid; the
    message never shows the URL, which may hold a password."""
    raw = (os.environ.get("DATABASE_URL", "") if value is None else value).strip() or DEFAULT_URL
    scheme, separator, _ = raw.partition("://")
    scheme = scheme.lower()
    if not separator:
        raise ValueError(f"DATABASE_URL is not a URL: {VALID}")
    if scheme not in (*POSTGRES_SCHEMES, "sqlite"):
        raise ValueError(f"DATABASE_URL names an unsupported database {scheme!r}: {VALID}")
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ValueError(f"DATABASE_URL cannot be read (is its port a number?): {VALID}") from None
    if scheme == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError(
                "DATABASE_URL names no SQLite file (an in-memory database is not "
                f"shared between connections): {VALID}"
            )
        return url
    if not url.host:
        raise ValueError(f"DATABASE_URL names no host: {VALID}")
    if "@" in url.host:
        raise ValueError(
            "DATABASE_URL has an '@' after its password: write an '@' in the "
            "user name or password as %40"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"DATABASE_URL's port {url.port} is not between 1 and 65535")
    if not url.database:
        raise ValueError(f"DATABASE_URL names no database (the /NAME at its end): {VALID}")
    return url.set(drivername="postgresql+psycopg")


def pool_size(environ: Mapping[str, str] = os.environ) -> int:
    """DB_POOL_SIZE, else the worker's threads (GUNICORN_THREADS, GRANIAN_BLOCKING_THREADS),
    else 4. Raises ValueError, one line, for a value that is not a whole number >= 1."""
    for name in POOL_SIZE_FROM:
        value = environ.get(name, "").strip()
        if value:
            if not (value.isascii() and value.isdigit() and len(value) < 7 and int(value) >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
            return int(value)
    return DEFAULT_POOL_SIZE


def check_database_url(environ: Mapping[str, str] = os.environ) -> None:
    """Return None when DATABASE_URL and DB_POOL_SIZE can be used, else raise ValueError with a
    one-line message: for the server to print before any worker starts, and exit."""
    database_url(environ.get("DATABASE_URL", ""))
    pool_size(environ)


check_settings = check_database_url  # the same check, by the name other stacks' servers call


def describe(url: URL, size: int) -> str:
    """The start-up line: where the data is, never the password."""
    if url.get_backend_name() == "sqlite":
        return f"database: sqlite {os.path.abspath(url.database or '')}"
    host = f"[{url.host}]" if ":" in (url.host or "") else url.host
    return f"database: postgresql {host}:{url.port or 5432}/{url.database}, pool {size} per worker"


def make_engine(url: URL, size: int) -> Engine:
    """An engine whose pool holds at most `size` connections, each checked before use (one
    that died with the database is replaced, not handed to a request)."""
    sqlite = url.get_backend_name() == "sqlite"
    connect_args = (
        {} if sqlite or "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT}
    )
    engine = create_engine(
        url, pool_size=size, max_overflow=0, pool_pre_ping=True, connect_args=connect_args
    )
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Several worker processes share the file: with WAL, readers do not block the writer, and
    a writer waits up to 5 s for another one (busy_timeout) instead of failing at once."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def init_app(app: Flask) -> None:
    """Make this process's engine for `app` (DATABASE_URL, or the app's DATABASE_URL setting),
    a session per request, and 503 answers while the database is unreachable."""
    url = database_url(app.config.get("DATABASE_URL"))
    size = pool_size()
    engine = make_engine(url, size)
    # Disposed when this process ends, its connections closed cleanly: at interpreter exit
    # (atexit: gunicorn's workers, the dev server) and at the end of a multiprocessing child
    # (Granian's workers end with os._exit, which skips atexit; multiprocessing runs its own
    # finalizers first). Disposing twice is harmless.
    atexit.register(engine.dispose)
    multiprocessing.util.Finalize(None, engine.dispose, exitpriority=10)
    app.extensions["db.engine"] = engine
    app.extensions["db.sessions"] = sessionmaker(engine, expire_on_commit=False)
    print(describe(url, size), file=sys.stderr, flush=True)

    @app.teardown_appcontext
    def close_session(_error: BaseException | None) -> None:
        request_session = g.pop("db_session", None)
        if request_session is not None:
            request_session.close()  # rolls back whatever was not committed

    def unavailable(error: Exception) -> tuple[Response, int]:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        app.logger.error("database unavailable: %s", reason[0] if reason else type(error).__name__)
        return jsonify(detail="database unavailable"), 503

    for error in UNAVAILABLE:
        app.register_error_handler(error, unavailable)


def current_engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["db.engine"]


def session() -> Session:
    """This request's session: opened at its first use, closed when the request ends."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db.sessions"]()
    return g.db_session


def is_ready() -> bool:
    """Whether the database answers `SELECT 1` through the pool (/readyz)."""
    try:
        with current_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def dispose(app: Flask) -> None:
    """Close `app`'s pooled connections now (its tests do, between apps)."""
    app.extensions["db.engine"].dispose()
