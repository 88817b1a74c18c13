"""Every route of the application, in process."""

import re

from fastapi.testclient import TestClient

from example.main import (
    DOCS,
    MAX_BODY_SIZE,
    app,
)


def test_index_is_html_linking_the_stylesheet(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/static/style.css" in response.text


def test_stylesheet_is_served(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_the_page_script_is_served_and_drives_the_form_and_live_parts(client):
    page = client.get("/").text
    assert '<script src="/static/app.js" defer></script>' in page
    assert 'data-api="/api/items"' in page and 'data-ws="/ws/echo"' in page
    assert "<script>" not in page and " on" + "submit=" not in page  # nothing inline
    response = client.get("/static/app.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]


def test_index_answers_head_without_a_body(client):
    response = client.head("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_favicon_is_an_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")


def test_hello_is_json(client):
    response = client.get("/api/hello")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello from example"}


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_websocket_echo(client):
    with client.websocket_connect("ws://localhost/ws/echo") as websocket:
        websocket.send_text("ping")
        assert websocket.receive_text() == "ping"


def test_events_stream(client):
    with client.stream("GET", "/api/events?count=3&interval=0") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert body.count("event: tick") == 3


def test_security_headers_and_hsts_only_over_https(client):
    response = client.get("/")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in response.headers
    secure = TestClient(app, base_url="https://localhost").get("/api/hello")
    assert secure.headers["strict-transport-security"].startswith("max-age=31536000")


def test_the_content_security_policy_is_sent_and_the_page_keeps_to_it(client):
    response = client.get("/")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert (policy["connect-src"], policy["frame-ancestors"]) == ("'self'", "'none'")
    # nothing inline for it to block: the page's scripts and styles are files of this site
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", response.text)


def test_the_api_docs_go_without_the_policy_that_would_blank_them(client):
    response = client.get("/docs")
    assert response.status_code == (200 if DOCS else 404)
    assert ("content-security-policy" in response.headers) is not DOCS


def test_a_body_over_the_limit_is_refused_and_one_left_unread_closes_the_connection(client):
    too_large = client.post(
        "/api/items", content=bytes(MAX_BODY_SIZE + 1), headers={"content-type": "application/json"}
    )
    assert (too_large.status_code, too_large.headers["connection"]) == (413, "close")
    # answered without reading it: uvicorn would read the rest, whatever its size
    not_allowed = client.post("/healthz", content=b"{}")
    assert (not_allowed.status_code, not_allowed.headers["connection"]) == (405, "close")
    assert "connection" not in client.get("/healthz").headers


def test_foreign_host_is_refused(client):
    response = client.get("/healthz", headers={"host": "evil.example"})
    assert response.status_code == 200
