"""Django's PostgreSQL backend with its connection pool, failing fast while the database is away.

Django's pool is psycopg_pool's. When the database goes away, a request that finds no healthy
connection waits up to the pool's timeout while the pool reconnects, retrying after 1, 2, 4, 8 s:
a 3 s outage becomes requests and readiness probes that hang, and the service comes back seconds
after the database does. Here the first failed connection attempt ends the outage's pool (the
requests waiting on it fail at once: 503), requests fail at once while the database is away,
one request every RETRY seconds tries a new pool, and the first connection made ends the outage.
Settings' ENGINE names this package (db.py); a subclass, as Django's docs describe.
"""

import logging
import threading
import time

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolClosed

RETRY = 0.25  # seconds between attempts to reach the database while it is away
log = logging.getLogger(__name__)


class Outage:
    """Whether the database is away, and when a request may next try to reach it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.next_try = 0.0

    def began(self, error: Exception) -> None:
        """A connection attempt failed: close the pool (in another thread: this may be the pool's
        own), so that the requests waiting on it fail now instead of at its timeout."""
        with self.lock:
            if self.since is None:
                self.since = time.monotonic()
                log.warning(
                    "database unreachable, answering 503 until it is back: %s",
                    str(error).splitlines()[0] if str(error) else type(error).__name__,
                )
            self.next_try = time.monotonic() + RETRY
            pools = list(DatabaseWrapper._connection_pools.items())
            DatabaseWrapper._connection_pools.clear()
        for _, pool in pools:
            threading.Thread(target=close, args=(pool,), daemon=True).start()

    def ended(self) -> None:
        with self.lock:
            if self.since is not None:
                log.warning("database reachable again after %.1f s", time.monotonic() - self.since)
            self.since = None

    def admit(self) -> bool:
        """May this request use the database? While it is away, one request per RETRY seconds."""
        with self.lock:
            if self.since is None:
                return True
            if time.monotonic() < self.next_try:
                return False
            self.next_try = time.monotonic() + RETRY
            return True


outage = Outage()


def close(pool: ConnectionPool) -> None:
    """Close a pool and fail every request waiting on it. psycopg_pool (3.3) fails those waiting
    when it closes, but a request that was checking a connection at that moment then queues on
    the closed pool and waits out its timeout: such late ones are failed here too (through the
    pool's private queue, as its own close() does)."""
    pool.close()
    for pause in (0, 0.1, 0.5, 2):
        time.sleep(pause)
        with pool._lock:
            late = list(pool._waiting)
            pool._waiting.clear()
        for waiting in late:
            waiting.fail(PoolClosed(f"the pool {pool.name!r} is closed"))


class Connection(psycopg.Connection):
    """The pool's connections: each attempt to open one tells `outage` how it went."""

    @classmethod
    def connect(cls, *args, **kwargs):
        try:
            connection = super().connect(*args, **kwargs)
        except psycopg.OperationalError as error:
            outage.began(error)
            raise
        outage.ended()
        return connection


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        pool = self.settings_dict["OPTIONS"].get("pool")
        if isinstance(pool, dict):
            pool.setdefault("connection_class", Connection)

    def get_new_connection(self, conn_params):
        if self.settings_dict["OPTIONS"].get("pool") and not outage.admit():
            raise self.Database.OperationalError("database unavailable (reconnecting)")
        return super().get_new_connection(conn_params)
