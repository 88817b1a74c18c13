"""The database the tests use: TEST_DATABASE_URL when set (a PostgreSQL database, whose tables
are dropped and made again by the migrations), else a temporary SQLite file per test.

The schema is built once per session by Alembic (`alembic upgrade head`, as in production);
each test then starts with empty tables: a fresh copy of the migrated SQLite file, or the
PostgreSQL tables emptied after each test.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from example import create_app, db

PROJECT = Path(__file__).resolve().parents[1]


def alembic_config() -> Config:
    config = Config(str(PROJECT / "alembic.ini"))
    config.attributes["configure_logger"] = False  # leave pytest's logging alone
    return config


def migrate(url: str, revision: str = "head", down: bool = False) -> None:
    """Run Alembic as `alembic upgrade head` does, on the database `url` names."""
    with mock.patch.dict(os.environ, {"DATABASE_URL": url}):
        if down:
            command.downgrade(alembic_config(), revision)
        else:
            command.upgrade(alembic_config(), revision)


def drop_everything(url: str) -> None:
    """The models' tables and Alembic's own, gone: the migrations start from scratch."""
    engine = create_engine(db.database_url(url))
    try:
        with engine.begin() as connection:
            db.Base.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory) -> str:
    """The URL of a database migrated from scratch: the PostgreSQL one, or a SQLite file
    that each test copies."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'migrated.sqlite3'}"
    drop_everything(url)
    migrate(url)
    return url


@pytest.fixture(autouse=True)
def database_url(migrated, tmp_path, monkeypatch) -> Iterator[str]:
    """This test's database, empty, named by DATABASE_URL (any app a test makes uses it)."""
    url = migrated
    if url.startswith("sqlite"):
        copy = tmp_path / "test.sqlite3"
        shutil.copyfile(str(db.database_url(migrated).database), copy)
        url = f"sqlite:///{copy}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    yield url
    if not url.startswith("sqlite"):
        engine = create_engine(db.database_url(url))
        try:
            with engine.begin() as connection:
                for table in reversed(db.Base.metadata.sorted_tables):
                    connection.execute(table.delete())
        finally:
            engine.dispose()


@pytest.fixture(name="alembic_config")
def alembic_config_fixture():
    """alembic_config(): Alembic's configuration, as the `alembic` command reads it."""
    return alembic_config


@pytest.fixture(name="migrate")
def migrate_fixture():
    """migrate(url, revision="head", down=False): `alembic upgrade` (or downgrade) on `url`."""
    return migrate


@pytest.fixture
def make_app():
    """create_app(config), its pool closed after the test."""
    apps = []

    def make(config: dict | None = None):
        app = create_app({"TESTING": True, **(config or {})})
        apps.append(app)
        return app

    yield make
    for app in apps:
        db.dispose(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
