"""The database, in one place: which one (DATABASE_URL), the engine and its pool (one per worker
process, created at start-up after the server forked, closed at shutdown), a session per request,
and the readiness check.

DATABASE_URL unset: a SQLite file beside where the server runs (embedded, no server to install).
`postgresql://USER:PASSWORD@HOST:PORT/NAME`: PostgreSQL through psycopg 3, asynchronously.
DB_POOL_SIZE: connections each worker process may hold (default 5); no overflow, so
workers x DB_POOL_SIZE is the most this service opens, per replica.
"""

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import suppress

from fastapi import Request
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

DEFAULT_URL = "sqlite:///example.sqlite3"
DEFAULT_POOL_SIZE = 5  # connections one worker's event loop shares between its requests
# Async drivers for the app, sync ones for Alembic's migrations (psycopg 3 is both).
DRIVERS = {
    "sqlite": ("sqlite+aiosqlite", "sqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
}
log = logging.getLogger(__name__)


def database_url(sync: bool = False) -> URL:
    """DATABASE_URL (or the SQLite default) for SQLAlchemy; ValueError, one line, if it is not
    a database this service can use."""
    raw = os.environ.get("DATABASE_URL", "").strip() or DEFAULT_URL
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "DATABASE_URL is not a database URL; expected postgresql://USER:"
            "PASSWORD@HOST:PORT/NAME or sqlite:///PATH"
        ) from None
    backend = url.get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    if backend not in DRIVERS:
        raise ValueError(
            f"DATABASE_URL names {backend!r}; expected postgresql://USER:"
            "PASSWORD@HOST:PORT/NAME or sqlite:///PATH"
        )
    if backend == "postgresql" and not url.database:
        raise ValueError(
            "DATABASE_URL names no database; expected postgresql://USER:PASSWORD@HOST:PORT/NAME"
        )
    return url.set(drivername=DRIVERS[backend][1 if sync else 0])


def pool_size() -> int:
    raw = os.environ.get("DB_POOL_SIZE", "").strip()
    if not raw:
        return DEFAULT_POOL_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"DB_POOL_SIZE={raw!r}: expected a whole number of connections, 1 or more")
    return int(raw)


def check_settings() -> None:
    """Raise ValueError (one line) if DATABASE_URL or DB_POOL_SIZE cannot work."""
    database_url()
    pool_size()


def describe(url: URL) -> str:
    """The database, for a log line: never the password."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database or ':memory:'}"
    return f"postgresql {url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def create_engine() -> AsyncEngine:
    url = database_url()
    size = pool_size()
    engine = create_async_engine(
        url,
        pool_size=size,
        max_overflow=0,  # the budget is exact: workers x pool_size
        pool_pre_ping=True,  # a connection that died with the database is replaced, not failed
    )
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    # One line per worker, whatever the server's logging: which database, and its share.
    print(
        f"database: {describe(url)}, pool {size} per worker (pid {os.getpid()})",
        file=sys.stderr,
        flush=True,
    )
    return engine


def _sqlite_pragmas(connection, _record) -> None:
    """Several worker processes share one SQLite file: readers never block the writer (WAL),
    and a writer waits for another instead of failing at once."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request (a FastAPI dependency), from the worker's pool."""
    db = request.app.state.sessions()
    try:
        yield db
    finally:
        # A connection the database dropped (a restart) fails its rollback here: the pool
        # discards it, and the request's own error, if any, is what the client is told about.
        with suppress(DBAPIError):
            await db.close()


async def ready(engine: AsyncEngine) -> bool:
    """The database answers a query through the pool."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means not ready; the reason is logged, one line
        log.warning(
            "database not ready: %s",
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        return False
    return True
