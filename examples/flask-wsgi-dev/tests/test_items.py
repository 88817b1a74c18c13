"""The example resource, /api/items: every route, what it refuses, and what it stores."""

from datetime import UTC, datetime, timedelta

import pytest


def create(client, name="apples", note=None):
    body = {"name": name} if note is None else {"name": name, "note": note}
    response = client.post("/api/items", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def fields(response) -> list[str]:
    """The fields a 422 answer names."""
    assert response.status_code == 422, response.get_data(as_text=True)
    return [error["field"] for error in response.get_json()["detail"]]


def test_create_returns_the_item_and_where_it_is(client):
    before = datetime.now(UTC)
    response = client.post("/api/items", json={"name": "apples", "note": "green"})
    assert response.status_code == 201
    item = response.get_json()
    assert response.headers["Location"] == f"/api/items/{item['id']}"
    assert (item["name"], item["note"]) == ("apples", "green")
    created = datetime.fromisoformat(item["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC) + timedelta(seconds=1)


def test_the_note_defaults_to_empty(client):
    assert create(client)["note"] == ""


def test_get_returns_what_was_created(client):
    item = create(client, note="from the market")
    response = client.get(f"/api/items/{item['id']}")
    assert (response.status_code, response.get_json()) == (200, item)


def test_list_is_newest_first_with_limit_and_offset(client):
    ids = [create(client, f"item {n}")["id"] for n in range(5)]
    body = client.get("/api/items").get_json()
    assert (body["limit"], body["offset"]) == (20, 0)
    assert [item["id"] for item in body["items"]] == ids[::-1]
    page = client.get("/api/items?limit=2&offset=1").get_json()
    assert [item["id"] for item in page["items"]] == ids[3:1:-1]
    assert (page["limit"], page["offset"]) == (2, 1)


def test_an_empty_list(client):
    assert client.get("/api/items").get_json() == {"items": [], "limit": 20, "offset": 0}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("offset=99999999999999999999999", "offset"),
    ],
)
def test_list_refuses_bad_parameters_naming_them(client, query, field):
    assert fields(client.get(f"/api/items?{query}")) == [field]


def test_delete_then_404(client):
    item = create(client)
    assert client.delete(f"/api/items/{item['id']}").status_code == 204
    response = client.get(f"/api/items/{item['id']}")
    assert response.status_code == 404
    assert response.get_json() == {"detail": f"item {item['id']} not found"}
    assert client.delete(f"/api/items/{item['id']}").status_code == 404


def test_ids_are_not_reused_after_a_delete(client):
    first = create(client)
    client.delete(f"/api/items/{first['id']}")
    assert create(client)["id"] > first["id"]


@pytest.mark.parametrize("item_id", ["999999", "2147483648", "99999999999999999999999"])
def test_unknown_ids_are_404(client, item_id):
    response = client.get(f"/api/items/{item_id}")
    assert response.status_code == 404
    assert response.get_json() == {"detail": f"item {item_id} not found"}
    assert client.delete(f"/api/items/{item_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, ["name"]),
        ({"note": "no name"}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"name": "x" * 101}, ["name"]),
        ({"name": 42}, ["name"]),
        ({"name": None}, ["name"]),
        ({"name": ["a"]}, ["name"]),
        ({"name": "ok", "note": "x" * 1001}, ["note"]),
        ({"name": "ok", "note": 1}, ["note"]),
        ({"name": "nul\x00byte"}, ["name"]),
        ({"name": 1, "note": False}, ["name", "note"]),
        ([{"name": "in a list"}], ["body"]),
        ("just a string", ["body"]),
    ],
)
def test_create_refuses_bad_fields_with_422_naming_them(client, body, named):
    assert fields(client.post("/api/items", json=body)) == named
    assert client.get("/api/items").get_json()["items"] == []  # nothing written


def test_the_longest_name_and_note_are_accepted(client):
    item = create(client, "x" * 100, "y" * 1000)
    assert (len(item["name"]), len(item["note"])) == (100, 1000)


def test_an_unpaired_surrogate_is_refused(client):
    body = b'{"name": "\\ud800"}'
    response = client.post("/api/items", data=body, content_type="application/json")
    assert fields(response) == ["name"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"name": "caf\xe9"}', "application/json"),  # Latin-1, not UTF-8
        (b"", "application/json"),
        (b"[" * 100_000, "application/json"),  # nested too deeply
        (b'{"name": "form"}', "text/plain"),
        (b"name=form", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_json_in_utf8_is_400(client, data, content_type):
    response = client.post("/api/items", data=data, content_type=content_type)
    assert response.status_code == 400
    assert "detail" in response.get_json()
    assert client.get("/api/items").get_json()["items"] == []


def test_a_10_mb_body_is_refused_with_413(client):
    body = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = client.post("/api/items", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "detail" in response.get_json()


def test_sql_metacharacters_are_stored_verbatim(client):
    name = "Robert'); DROP TABLE items;--"
    note = '100% "quoted" \\ back_slash ; -- %s ? :name $1 \u00e9\u4e2d\U0001f600'
    item = create(client, name, note)
    stored = client.get(f"/api/items/{item['id']}").get_json()
    assert (stored["name"], stored["note"]) == (name, note)
    assert [i["name"] for i in client.get("/api/items").get_json()["items"]] == [name]


def test_a_database_down_is_503_not_500(make_app):
    client = make_app({"DATABASE_URL": "postgresql://app:secret@127.0.0.1:1/shop"}).test_client()
    for response in (
        client.get("/api/items"),
        client.post("/api/items", json={"name": "a"}),
        client.get("/api/items/1"),
        client.delete("/api/items/1"),
        client.get("/"),
    ):
        assert response.status_code == 503
        assert response.get_json() == {"detail": "database unavailable"}
