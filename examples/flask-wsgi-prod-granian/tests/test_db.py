"""db.py: DATABASE_URL read and checked, the pool's size, the start-up line, SQLite's settings
and a session per request."""

import subprocess
import sys
from pathlib import Path

import pytest
from flask import g
from sqlalchemy import text

from example import create_app, db

PROJECT = Path(__file__).resolve().parents[1]
# DATABASE_URL unset or blank
DEFAULT = "sqlite:///example.sqlite3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", DEFAULT),
        ("  ", DEFAULT),
        ("sqlite:///data/app.sqlite3", "sqlite:///data/app.sqlite3"),
        ("postgresql://app:pw@db:5432/shop", "postgresql+psycopg://app:***@db:5432/shop"),
        ("postgres://app:pw@db/shop", "postgresql+psycopg://app:***@db/shop"),
        (
            "postgresql+psycopg://db:6432/shop?sslmode=require",
            "postgresql+psycopg://db:6432/shop?sslmode=require",
        ),
        ("postgresql://app:p%40ss@[::1]:5432/shop", "postgresql+psycopg://app:***@[::1]:5432/shop"),
    ],
)
def test_valid_urls(value, expected):
    assert db.database_url(value).render_as_string(hide_password=True) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("mysql://app:pw@db/shop", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://db/shop", "unsupported database 'postgresql+psycopg2'"),
        ("db.example.com:5432", "not a URL"),
        ("postgresql://app:pw@db:port/shop", "cannot be read"),
        ("postgresql://app:pw@db:70000/shop", "port 70000"),
        ("postgresql:///shop", "no host"),
        ("postgresql://db:5432", "no database"),
        ("postgresql://db:5432/", "no database"),
        ("postgresql://app:p@ss@db/shop", "%40"),
        ("sqlite://", "no SQLite file"),
        ("sqlite:///:memory:", "no SQLite file"),
    ],
)
def test_unusable_urls_are_one_line_naming_the_problem_never_the_password(value, says):
    with pytest.raises(ValueError, match="DATABASE_URL") as caught:
        db.database_url(value)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message
    assert "pw" not in message and "p@ss" not in message


def test_check_database_url_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db/shop")
    assert db.check_database_url() is None
    monkeypatch.setenv("DATABASE_URL", "redis://cache")
    with pytest.raises(ValueError, match="unsupported database 'redis'"):
        db.check_database_url()
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DB_POOL_SIZE", "many")
    with pytest.raises(ValueError, match="DB_POOL_SIZE must be a whole number >= 1, not 'many'"):
        db.check_database_url()


def test_create_app_refuses_an_unusable_url_in_one_line(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mongodb://db/shop")
    with pytest.raises(ValueError, match="unsupported database 'mongodb'") as caught:
        create_app({"TESTING": True})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "size"),
    [
        ({}, 4),
        ({"GUNICORN_THREADS": "8"}, 8),
        ({"GRANIAN_BLOCKING_THREADS": "6"}, 6),
        ({"DB_POOL_SIZE": "3", "GUNICORN_THREADS": "8"}, 3),
        ({"DB_POOL_SIZE": " ", "GUNICORN_THREADS": "2"}, 2),
    ],
)
def test_pool_size(environ, size):
    assert db.pool_size(environ) == size


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "x", "99999999"])
def test_an_unusable_pool_size_is_refused(value):
    with pytest.raises(ValueError, match=f"DB_POOL_SIZE must be .* not '{value}'"):
        db.pool_size({"DB_POOL_SIZE": value})


def test_the_pool_holds_db_pool_size_connections_and_no_more(make_app, monkeypatch):
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    engine = make_app().extensions["db.engine"]
    assert (engine.pool.size(), engine.pool._max_overflow) == (3, 0)
    assert engine.pool._pre_ping


def test_the_start_line_names_the_database_without_its_password(make_app, capsys):
    make_app({"DATABASE_URL": "postgresql://app:secret@db.internal:6432/shop"})
    assert capsys.readouterr().err == (
        "database: postgresql db.internal:6432/shop, pool 4 per worker\n"
    )
    make_app({"DATABASE_URL": "sqlite:///relative.sqlite3"})
    err = capsys.readouterr().err
    assert err.startswith("database: sqlite /") and err.endswith("/relative.sqlite3\n")


def test_importing_the_app_makes_no_engine():
    """Engines are made by create_app() in each worker, never at import (gunicorn's master
    imports nothing of the app, but a --preload would share one pool between processes)."""
    code = (
        "import gc, sqlalchemy, example, example.items; "
        "print(sum(isinstance(o, sqlalchemy.Engine) for o in gc.get_objects()))"
    )
    result = subprocess.run(  # noqa: S603 (this code, this Python)
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT,
    )
    assert result.stdout.strip() == "0"


def test_sqlite_connections_use_wal_and_wait_when_busy(app, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    with app.extensions["db.engine"].connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_a_request_gets_one_session_closed_at_its_end(app):
    with app.test_request_context("/"):
        first = db.session()
        assert db.session() is first
        first.execute(text("SELECT 1"))
        assert first.in_transaction()
    assert not first.in_transaction()  # closed: its connection went back to the pool
    with app.test_request_context("/"):
        assert db.session() is not first
        assert "db_session" in g
