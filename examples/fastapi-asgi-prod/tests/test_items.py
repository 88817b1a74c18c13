"""The example resource through the API and the page, against the tests' database."""

from datetime import datetime, timedelta

import pytest


def create(client, **fields):
    response = client.post("/api/items", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_get_list_delete(client):
    item = create(client, name="first", note="a note")
    assert item["name"] == "first" and item["note"] == "a note"
    assert datetime.fromisoformat(item["created_at"]).utcoffset() == timedelta(0)
    assert client.get(f"/api/items/{item['id']}").json() == item
    create(client, name="second")
    page = client.get("/api/items").json()
    assert [i["name"] for i in page["items"]] == ["second", "first"]  # newest first
    assert client.delete(f"/api/items/{item['id']}").status_code == 204
    assert client.get(f"/api/items/{item['id']}").status_code == 404
    assert client.delete(f"/api/items/{item['id']}").status_code == 404


def test_pagination(client):
    for n in range(5):
        create(client, name=f"item {n}")
    page = client.get("/api/items?limit=2&offset=1").json()
    assert [i["name"] for i in page["items"]] == ["item 3", "item 2"]
    assert (page["limit"], page["offset"]) == (2, 1)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=x"])
def test_bad_pagination_is_a_422_naming_the_parameter(client, query):
    response = client.get(f"/api/items?{query}")
    assert response.status_code == 422
    assert query.split("=")[0] in response.text


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "note": ["x"]}, "note"),
        ({"name": "ok", "note": "x" * 1001}, "note"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_invalid_items_are_a_422_naming_the_field_and_write_nothing(client, body, field):
    response = client.post("/api/items", json=body)
    assert response.status_code == 422
    assert field in response.text
    assert client.get("/api/items").json()["items"] == []


@pytest.mark.parametrize("content", [b"not json", b'{"name": "caf\xe9"}', b"[1, 2]"])
def test_bodies_that_are_not_an_item_object_are_a_4xx(client, content):
    response = client.post(
        "/api/items", content=content, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert client.get("/api/items").json()["items"] == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_what_a_form_on_another_site_can_send_adds_nothing(client, content_type):
    """A cross-site form sends no JSON content type: the page's form needs no CSRF token."""
    response = client.post(
        "/api/items", content=b'{"name": "forged"}', headers={"content-type": content_type}
    )
    assert 400 <= response.status_code < 500
    assert client.get("/api/items").json()["items"] == []


def test_sql_metacharacters_are_stored_verbatim(client):
    name = "Robert'); DROP TABLE items;--"
    item = create(client, name=name)
    assert client.get(f"/api/items/{item['id']}").json()["name"] == name


@pytest.mark.parametrize("item_id", ["0", "-1", "x", "99999999999999999999"])
def test_ids_out_of_range_are_a_4xx(client, item_id):
    assert client.get(f"/api/items/{item_id}").status_code in (404, 422)


def test_the_page_lists_the_newest_items_escaped(client):
    create(client, name="<script>alert(1)</script>")
    page = client.get("/").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page


def test_readyz_checks_the_database(client):
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_while_the_database_is_unreachable(monkeypatch, database_url):
    from fastapi.testclient import TestClient

    from example.main import app

    # a PostgreSQL server that is not there: port 1 refuses at once
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with TestClient(app, base_url="http://localhost") as down:
        assert down.get("/readyz").status_code == 503
        assert down.get("/healthz").status_code == 200  # liveness does not need the database
        response = down.get("/api/items")
        assert response.status_code == 503
        assert response.json() == {"detail": "database unavailable"}


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "postgresql://u@h:5432/"])
def test_a_database_url_it_cannot_use_is_one_clear_line(monkeypatch, url):
    from example import db

    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ValueError, match="DATABASE_URL") as refused:
        db.check_settings()
    assert "\n" not in str(refused.value)


def test_pool_size_from_the_environment(monkeypatch):
    from example import db

    monkeypatch.setenv("DB_POOL_SIZE", "3")
    assert db.pool_size() == 3
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="DB_POOL_SIZE"):
        db.pool_size()


def test_a_10_mb_body_is_a_4xx_and_writes_nothing(client):
    response = client.post("/api/items", json={"name": "x" * 10_000_000})
    assert 400 <= response.status_code < 500
    assert client.get("/api/items").json()["items"] == []
