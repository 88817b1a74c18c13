"""The data layer of each prod stack against a real PostgreSQL, under wrk: the connections stay
within the budget the server prints, and a database that goes away for 3 s costs 503s while it
is away, no worker, and nothing after it is back.

PostgreSQL runs with max_connections=30 (27 for clients: 3 are reserved for superusers) and the
server with WEB_CONCURRENCY=4, so a pool sized without a budget (SQLAlchemy's 5 + 10 overflow,
asyncpg's 10) would exhaust it.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from newstack import smoke
from newstack.postgres import Cluster

from .prod import BIN, PROD_CONFIGS, ProdConfig, Running, load, params, record

MAX_CONNECTIONS = 30
CLIENT_SLOTS = MAX_CONNECTIONS - 3  # superuser_reserved_connections
WORKERS = 4
READ = ("/api/items?limit=5", "/")  # the read routes: a page of rows, the landing page
BUDGET = re.compile(r"database budget: (\d+) workers x (\d+) connections = (\d+)")

# Each server's default configuration of every stack with a data layer.
CONFIGS = [c for c in PROD_CONFIGS if c.combination.stack.database
           and (c.worker is None or c.worker == c.combination.stack.worker_classes[0])]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    with Cluster(max_connections=MAX_CONNECTIONS) as cluster:
        yield cluster


class Peak(threading.Thread):
    """Samples the client connections to one database every 20 ms, until stopped."""

    def __init__(self, cluster: Cluster, database: str):
        super().__init__(daemon=True)
        self.cluster, self.database = cluster, database
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                # autocommit: in a transaction, pg_stat_activity would stay the snapshot it took
                with psycopg.connect(self.cluster.url, connect_timeout=2,
                                     autocommit=True) as connection:
                    while not self.done.is_set():
                        row = connection.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                            "backend_type = 'client backend'", (self.database,)).fetchone()
                        self.peak = max(self.peak, row[0] if row else 0)
                        time.sleep(0.02)
            except psycopg.OperationalError:  # the database is being restarted
                time.sleep(0.1)

    def stop(self) -> int:
        self.done.set()
        self.join(5)
        return self.peak


SEED = ("INSERT INTO items (name, note, created_at) SELECT 'item ' || n, '', {now} "
        "FROM generate_series(1, 100) AS n")


def start(servers, config: ProdConfig, request, test: str,
          postgres: Cluster | None) -> tuple[Running, str]:
    """The configuration's prod server on a database of the test's own, migrated, with 100 rows:
    PostgreSQL's, or a SQLite file when `postgres` is None."""
    name = re.sub(r"\W", "_", f"{test}_{config.id}")
    project = servers.project(config)
    url = postgres.create_database(name) if postgres else f"sqlite:///{project / name}.sqlite3"
    env = {"DATABASE_URL": url, "WEB_CONCURRENCY": str(WORKERS)}
    done = smoke.run_setup(project, {**smoke.server_env(project, BIN, config.combination, 0), **env})
    assert done is None or done.returncode == 0, done.stderr[-2000:]
    if postgres:
        postgres.psql(SEED.format(now="now()"), database=name)
    else:  # SQLite has generate_series only as an extension: a recursive CTE instead
        with sqlite3.connect(project / f"{name}.sqlite3") as connection:
            connection.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
                "INSERT INTO items (name, note, created_at) "
                "SELECT 'item ' || i, '', datetime('now') FROM n")
    servers.stop_all()
    running = Running(config, "steady", project, servers.root / f"{config.id}-{test}.log", env)
    running.lock = servers.lock
    request.addfinalizer(running.kill)
    return running, name


def printed_budget(running: Running) -> int:
    found = BUDGET.search(running.log_text())
    assert found, f"the server printed no database budget:\n{running.log_text()[-2000:]}"
    workers, pool, total = map(int, found.groups())
    assert workers == WORKERS and workers * pool == total
    return total


@pytest.mark.parametrize("config", params(CONFIGS))
def test_connections_stay_within_the_printed_budget_under_load(servers, postgres, config,
                                                               request):
    running, database = start(servers, config, request, "budget", postgres)
    budget = printed_budget(running)
    assert budget <= CLIENT_SLOTS, f"the default budget {budget} exceeds {CLIENT_SLOTS} slots"
    peak = Peak(postgres, database)
    peak.start()
    seen = load(running, 8, paths=READ)
    most = peak.stop()
    assert seen.failed == 0 and seen.socket_errors == 0, seen
    assert 0 < most <= budget, f"{most} connections at the peak, the budget printed is {budget}"
    running.kill()
    # the same load on the embedded default, SQLite, for the figures
    embedded = load(start(servers, config, request, "sqlite", None)[0], 8, paths=READ)
    assert embedded.failed == 0 and embedded.socket_errors == 0, embedded
    record(request, config, db_rps=round(seen.answered / 8), db_budget=budget, db_peak=most,
           db_sqlite_rps=round(embedded.answered / 8))


@pytest.mark.parametrize("config", params(CONFIGS))
def test_a_database_away_for_3_s_costs_503s_then_nothing(servers, postgres, config, request):
    running, database = start(servers, config, request, "outage", postgres)
    budget = printed_budget(running)
    boots = running.boots()
    # /readyz: (sent, answered, status), in seconds since the load began
    ready: list[tuple[float, float, int]] = []
    gone: list[float] = []  # when PostgreSQL had stopped, was being started, answered again
    restarting: list[float] = []
    back: list[float] = []
    began = time.monotonic()
    stop = threading.Event()

    def poll_readiness() -> None:
        with running.client() as client:
            while not stop.is_set():
                sent = time.monotonic() - began
                try:
                    status = client.get("/readyz", timeout=2).status_code
                except httpx.HTTPError:
                    status = 0
                ready.append((sent, time.monotonic() - began, status))
                time.sleep(0.1)

    def stop_database() -> None:
        postgres.stop()
        gone.append(time.monotonic() - began)

    def restart() -> None:
        restarting.append(time.monotonic() - began)
        postgres.start()
        back.append(time.monotonic() - began)

    poller = threading.Thread(target=poll_readiness, daemon=True)
    poller.start()
    peak = Peak(postgres, database)
    peak.start()
    seen = load(running, 12, paths=READ, events=[(3, stop_database), (6, restart)])
    stop.set()
    poller.join(5)
    most = peak.stop()
    assert gone and back, "PostgreSQL was not stopped and started again"
    down = [status for sent, answered, status in ready
            if sent > gone[0] and answered < restarting[0]]
    after = [(sent, status) for sent, _, status in ready if sent > back[0] + 2]
    recovered = next((answered - back[0] for _, answered, status in ready
                      if answered > back[0] and status == 200), None)
    record(request, config, db_recovered_s=recovered and round(recovered, 2),
           db_outage_503=seen.non2xx)
    assert down and set(down) == {503}, f"/readyz while the database was down: {set(down)}"
    assert after and all(status == 200 for _, status in after), after
    assert seen.lost == 0 and seen.socket_errors == 0, seen  # answered (503), not dropped
    assert running.boots() == boots, "a worker was restarted"
    assert most <= budget, f"{most} connections after the restart, the budget is {budget}"
    # and every request succeeds again: the service serves the read routes without an error
    again = load(running, 2, paths=READ)
    assert again.failed == 0, again
