"""The application's own routes, in process (the items' are in test_items.py, the database's
wiring in test_db.py). The fixtures, and the database each test gets, are in conftest.py."""

import re


def test_index_is_html_linking_the_stylesheet(client):
    response = client.get("/", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"/static/style.css" in response.data


def test_stylesheet_is_served(client):
    response = client.get("/static/style.css", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.mimetype == "text/css"


def test_the_page_script_is_served_and_drives_the_form(client):
    page = client.get("/", headers={"host": "localhost"}).get_data(as_text=True)
    assert '<script src="/static/app.js" defer></script>' in page
    assert 'data-api="/api/items"' in page
    assert "<script>" not in page and " on" + "submit=" not in page  # nothing inline
    response = client.get("/static/app.js", headers={"host": "localhost"})
    assert response.status_code == 200
    assert "javascript" in response.mimetype


def test_favicon_is_an_icon(client):
    response = client.get("/favicon.ico", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.data.startswith(b"<svg")


def test_hello_is_json(client):
    response = client.get("/api/hello", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.get_json() == {"message": "Hello from example"}


def test_healthz(client):
    assert client.get("/healthz", headers={"host": "localhost"}).get_json() == {"status": "ok"}


def test_index_lists_the_ten_newest_item_names_escaped(client):
    for number in range(12):
        client.post("/api/items", json={"name": f"item {number:02}"})
    client.post("/api/items", json={"name": "<script>alert(1)</script>"})
    page = client.get("/").get_data(as_text=True)
    assert "<li>&lt;script&gt;alert(1)&lt;/script&gt;</li>" in page
    assert "<script>" not in page
    assert [f"<li>item {n:02}</li>" in page for n in range(12)] == [False] * 3 + [True] * 9


def test_readyz_is_ready_when_the_database_answers(client):
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ready"})


def test_readyz_is_503_and_healthz_200_while_the_database_is_unreachable(make_app):
    # nothing listens on port 1
    client = make_app({"DATABASE_URL": "postgresql://app:secret@127.0.0.1:1/shop"}).test_client()
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (503, {"status": "unavailable"})
    assert client.get("/healthz").status_code == 200


def test_security_headers_and_hsts_only_over_https(client):
    response = client.get("/", headers={"host": "localhost"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers
    secure = client.get("/api/hello", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_the_content_security_policy_is_sent_and_the_page_keeps_to_it(client):
    response = client.get("/", headers={"host": "localhost"})
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert (policy["connect-src"], policy["frame-ancestors"]) == ("'self'", "'none'")
    # nothing inline for it to block: the page's scripts and styles are files of this site
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", response.text)


def test_foreign_host_is_refused(client):
    response = client.get("/healthz", headers={"host": "evil.example"})
    assert response.status_code == 200
