"""Every route of the application, in process."""

import pytest

from example import create_app


@pytest.fixture
def client():
    app = create_app({"TESTING": True})
    return app.test_client()


def test_index_is_html_linking_the_stylesheet(client):
    response = client.get("/", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"/static/style.css" in response.data


def test_stylesheet_is_served(client):
    response = client.get("/static/style.css", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.mimetype == "text/css"


def test_hello_is_json(client):
    response = client.get("/api/hello", headers={"host": "localhost"})
    assert response.status_code == 200
    assert response.get_json() == {"message": "Hello from example"}


def test_healthz(client):
    assert client.get("/healthz", headers={"host": "localhost"}).get_json() == {"status": "ok"}


def test_security_headers_and_hsts_only_over_https(client):
    response = client.get("/", headers={"host": "localhost"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers
    secure = client.get("/api/hello", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_foreign_host_is_refused(client):
    response = client.get("/healthz", headers={"host": "evil.example"})
    assert response.status_code == 400


def test_secret_key_is_required(monkeypatch):
    monkeypatch.delenv("FLASK_SECRET_KEY", raising=False)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    with pytest.raises(RuntimeError, match="FLASK_SECRET_KEY"):
        create_app()
