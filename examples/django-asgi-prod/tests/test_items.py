"""The example resource through the API and the page, against the tests' database."""

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.test import AsyncClient

PROJECT = Path(__file__).resolve().parents[1]


class Client:
    """Django's AsyncClient, each request run to its end: through the async handler, middleware
    and views, as under the server."""

    def __init__(self, **options) -> None:
        self.client = AsyncClient(**options)

    def __getattr__(self, method):
        def request(*args, **kwargs):
            return asyncio.run(getattr(self.client, method)(*args, **kwargs))

        return request


@pytest.fixture
def client():
    return Client()


def call(client, method, path, body=None, content=None, **headers):
    """A request over HTTPS (production redirects plain HTTP); `body` sent as JSON."""
    if body is not None:
        content = json.dumps(body)
    kwargs = {"content_type": "application/json"} if content is not None else {}
    return getattr(client, method)(
        path, *([content] if content is not None else []), secure=True, headers=headers, **kwargs
    )


def create(client, **fields):
    response = call(client, "post", "/api/items", fields)
    assert response.status_code == 201, response.content
    return response.json()


def names(client, query=""):
    return [item["name"] for item in call(client, "get", f"/api/items{query}").json()["items"]]


def test_create_get_list_delete(client):
    item = create(client, name="first", note="a note")
    assert item["name"] == "first" and item["note"] == "a note"
    assert datetime.fromisoformat(item["created_at"]).utcoffset() == timedelta(0)
    assert call(client, "get", f"/api/items/{item['id']}").json() == item
    create(client, name="second")
    page = call(client, "get", "/api/items").json()
    assert [i["name"] for i in page["items"]] == ["second", "first"]  # newest first
    assert (page["limit"], page["offset"]) == (20, 0)
    assert call(client, "delete", f"/api/items/{item['id']}").status_code == 204
    assert call(client, "get", f"/api/items/{item['id']}").status_code == 404
    assert call(client, "delete", f"/api/items/{item['id']}").json() == {
        "detail": f"item {item['id']} not found"
    }


def test_create_answers_with_the_location(client):
    response = call(client, "post", "/api/items", {"name": "here"})
    assert response["Location"] == f"/api/items/{response.json()['id']}"
    assert response.json()["note"] == ""


def test_pagination(client):
    for n in range(5):
        create(client, name=f"item {n}")
    page = call(client, "get", "/api/items?limit=2&offset=1").json()
    assert [i["name"] for i in page["items"]] == ["item 3", "item 2"]
    assert (page["limit"], page["offset"]) == (2, 1)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=x", "offset=1.5"])
def test_bad_pagination_is_a_422_naming_the_parameter(client, query):
    response = call(client, "get", f"/api/items?{query}")
    assert response.status_code == 422
    assert query.split("=")[0] in response.json()["detail"][0]["loc"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": "ok", "note": ["x"]}, "note"),
        ({"name": "ok", "note": "x" * 1001}, "note"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_invalid_items_are_a_422_naming_the_field_and_write_nothing(client, body, field):
    response = call(client, "post", "/api/items", body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == [field]
    assert names(client) == []


def test_the_longest_fields_are_accepted(client):
    item = create(client, name="x" * 100, note="y" * 1000)
    assert len(item["name"]) == 100 and len(item["note"]) == 1000


@pytest.mark.parametrize(
    "content, status",
    [
        (b"not json", 400),
        (b'{"name": "caf\xe9"}', 400),
        (b"", 400),
        (b"[1, 2]", 422),
        (b'"name"', 422),
    ],
)
def test_bodies_that_are_not_an_item_object_are_a_4xx(client, content, status):
    response = call(client, "post", "/api/items", content=content)
    assert response.status_code == status
    assert names(client) == []


def test_a_10_mb_body_is_a_4xx_and_writes_nothing(client):
    response = call(client, "post", "/api/items", {"name": "x" * 10_000_000})
    assert 400 <= response.status_code < 500
    assert names(client) == []


def test_the_api_needs_no_csrf_token():
    """Exempt on purpose (items.py): no cookie authenticates these requests."""
    response = call(Client(enforce_csrf_checks=True), "post", "/api/items", {"name": "no token"})
    assert response.status_code == 201


def test_other_methods_are_a_405(client):
    assert call(client, "put", "/api/items", {"name": "x"}).status_code == 405
    item = create(client, name="x")
    assert call(client, "post", f"/api/items/{item['id']}", {"name": "y"}).status_code == 405


def test_sql_metacharacters_are_stored_verbatim(client):
    name = "Robert'); DROP TABLE items;--"
    item = create(client, name=name)
    assert call(client, "get", f"/api/items/{item['id']}").json()["name"] == name


def test_unicode_is_stored_verbatim(client):
    item = create(client, name="café ☕ 日本", note="ü" * 1000)
    assert call(client, "get", f"/api/items/{item['id']}").json() == item


@pytest.mark.parametrize("item_id", ["0", "-1", "x", "99999999999999999999", "1.5"])
def test_ids_out_of_range_are_a_404(client, item_id):
    assert call(client, "get", f"/api/items/{item_id}").status_code == 404
    assert call(client, "delete", f"/api/items/{item_id}").status_code == 404


def test_the_page_lists_the_ten_newest_items_escaped(client):
    for n in range(11):
        create(client, name=f"item {n}")
    create(client, name="<script>alert(1)</script>")
    page = call(client, "get", "/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "item 10" in page and "item 2" in page and "item 1<" not in page


def form_post(client, fields, token=True):
    """The page's form as a browser sends it: over HTTPS, from the page's origin, with the CSRF
    token the page carries (unless `token` is false)."""
    if token:
        page = call(client, "get", "/").content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        fields = {**fields, "csrfmiddlewaretoken": token}
    return client.post("/", fields, secure=True, headers={"origin": "https://testserver"})


def test_the_page_form_adds_an_item():
    client = Client(enforce_csrf_checks=True)
    response = form_post(client, {"name": "<i>from the form</i>"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert names(client) == ["<i>from the form</i>"]
    assert "<li>&lt;i&gt;from the form&lt;/i&gt;</li>" in call(client, "get", "/").content.decode()


def test_the_page_form_needs_its_csrf_token():
    client = Client(enforce_csrf_checks=True)
    assert form_post(client, {"name": "forged"}, token=False).status_code == 403
    assert names(client) == []


def test_the_page_form_refuses_a_bad_name_saying_why():
    client = Client(enforce_csrf_checks=True)
    response = form_post(client, {"name": "x" * 101})
    assert response.status_code == 422
    assert "name must be 1 to 100 characters" in response.content.decode()
    assert names(client) == []


def test_readyz_checks_the_database(client):
    assert call(client, "get", "/readyz").json() == {"status": "ready"}


def test_admin_login_page(client):
    response = call(client, "get", "/admin/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_admin_lists_items_to_a_superuser(client):
    from django.contrib.auth.models import User

    User.objects.filter(username="admin").delete()
    User.objects.create_superuser("admin", "admin@example.com", "a long password 1")
    create(client, name="<b>in the admin</b>")
    try:
        client.client.force_login(User.objects.get(username="admin"))
        response = call(
            client,
            "get",
            "/admin/example/item/",
        )
        assert response.status_code == 200
        assert "&lt;b&gt;in the admin&lt;/b&gt;" in response.content.decode()
    finally:
        User.objects.filter(username="admin").delete()


def python(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """This Python, in the project, with `env` on top of the tests' environment."""
    return subprocess.run(  # noqa: S603  # nosec B603: this Python, the project's own code
        [sys.executable, *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


UNREACHABLE = """
import asyncio, json, django
from django.test.utils import setup_test_environment
django.setup()
setup_test_environment()  # allows the test client's host
from django.test import AsyncClient, Client
async def get(path):
    return await AsyncClient().get(path, secure=True)
answers = {}
for path in ("/healthz", "/readyz", "/api/items", "/"):
    response = asyncio.run(get(path))
    answers[path] = [response.status_code, response.content.decode()]
print(json.dumps(answers))
"""


def test_while_the_database_is_unreachable_readyz_and_its_routes_are_503():
    # a PostgreSQL server that is not there: port 1 refuses at once. The requests fail at once
    # too, not after the pool's 30 s timeout each (postgresql/base.py): 20 s is plenty for all.
    result = python(
        "-c", UNREACHABLE, timeout=20, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.splitlines()[-1])
    assert answers["/healthz"][0] == 200  # liveness does not need the database
    assert answers["/readyz"] == [503, '{"status": "unavailable"}']
    for path in ("/api/items", "/"):
        assert answers[path] == [503, '{"detail": "database unavailable"}'], path


def test_migrations_from_scratch_and_in_step_with_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    for command in (["migrate"], ["makemigrations", "--check", "--dry-run"]):
        result = python("manage.py", *command, DATABASE_URL=url)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "fresh.sqlite3").exists()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "not a url",
        "postgresql://u@h:5432/",
        "postgresql://u@h:port/db",
        "sqlite://",
    ],
)
def test_a_database_url_it_cannot_use_is_one_clear_line(monkeypatch, url):
    from example import db

    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ValueError, match="DATABASE_URL") as refused:
        db.check_settings()
    assert "\n" not in str(refused.value)


def test_database_urls(monkeypatch):
    from example import db

    monkeypatch.delenv("DATABASE_URL", raising=False)
    name = db.database_settings()["NAME"]  # a file in the working directory
    assert name == "example.sqlite3"
    monkeypatch.setenv("DATABASE_URL", "sqlite:////var/data/x.sqlite3")
    assert db.database_settings()["NAME"] == "/var/data/x.sqlite3"
    monkeypatch.setenv("DATABASE_URL", "postgres://me:p%40ss@db.example:6432/shop?sslmode=require")
    settings = db.database_settings()
    engine = settings["ENGINE"]  # Django's, failing fast
    assert engine == "example.postgresql"
    assert (
        settings["USER"],
        settings["PASSWORD"],
        settings["HOST"],
        settings["PORT"],
        settings["NAME"],
    ) == ("me", "p@ss", "db.example", "6432", "shop")
    assert settings["OPTIONS"]["sslmode"] == "require"
    assert settings["CONN_MAX_AGE"] == 0  # Django's pool keeps the connections instead
    assert "p@ss" not in db.describe(settings)


def test_pool_size_from_the_environment(monkeypatch):
    from example import db

    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    if db.THREADS_ENV:
        monkeypatch.setenv(db.THREADS_ENV, "6")
        assert db.pool_size() == 6  # the worker's threads
        monkeypatch.delenv(db.THREADS_ENV)
    assert db.pool_size() == db.DEFAULT_POOL_SIZE
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    assert db.pool_size() == 3
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert db.database_settings()["OPTIONS"]["pool"]["max_size"] == 3
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="DB_POOL_SIZE"):
        db.pool_size()
