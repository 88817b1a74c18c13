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


def test_foreign_host_is_refused(client):
    response = client.get("/healthz", headers={"host": "evil.example"})
    assert response.status_code == 200
