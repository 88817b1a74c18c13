"""The tests' database: TEST_DATABASE_URL when set (a PostgreSQL URL), else a temporary SQLite
file. Its schema comes from the migrations, as in production; every test starts with no items."""

import os

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    )
    os.environ["DATABASE_URL"] = url  # read by the app and by the migrations
    command.upgrade(Config("alembic.ini"), "head")
    return url


@pytest.fixture
def client(database_url: str):
    from example.main import app

    with TestClient(app, base_url="http://localhost") as client:  # runs the lifespan: the pool
        yield client
    _empty(database_url)


def _empty(url: str) -> None:
    from sqlalchemy import create_engine, text

    from example.db import database_url

    engine = create_engine(database_url(sync=True))
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM items"))
    engine.dispose()
