"""serve.py: Granian's settings from the environment, and the application as Granian serves it
(behind the request limits and the proxy headers), called in process."""

import io
import os
import sys

import pytest

from example import serve

TRUSTED = ("127.0.0.1", 50000)  # a proxy in FORWARDED_ALLOW_IPS' default


@pytest.fixture
def app():
    return serve.create_app()


def call(app, path="/healthz", query="", headers=(), client=TRUSTED, process_env=None):
    """The status line and headers `app` answers a GET with. Granian starts the environ as a
    copy of the process environment: `process_env`."""
    environ = {
        **(process_env or {}),
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client[0],
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "HTTP_HOST": "localhost",
    }
    environ.update(("HTTP_" + name.upper().replace("-", "_"), value) for name, value in headers)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer.update(status=int(status.split()[0]), headers=dict(response_headers))

    body = app(environ, start_response)
    b"".join(body)
    getattr(body, "close", lambda: None)()
    return answer["status"], {k.lower(): v for k, v in answer["headers"].items()}


def test_a_normal_request_reaches_the_application(app):
    assert call(app)[0] == 200


def test_a_request_target_over_the_limit_is_refused_with_414(app):
    assert call(app, query="q=" + "a" * serve.LIMIT_REQUEST_LINE)[0] == 414


def test_a_header_field_over_the_limit_is_refused_with_431(app):
    big = ("X-Big", "b" * serve.LIMIT_REQUEST_FIELD_SIZE)
    assert call(app, headers=[big])[0] == 431


def test_the_forwarded_scheme_is_believed_from_a_trusted_proxy_only(app):
    https = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]
    assert "strict-transport-security" in call(app, headers=https)[1]
    assert "strict-transport-security" not in call(app, headers=https, client=("203.0.113.7", 1))[1]


def test_the_process_environment_stays_out_of_the_request(monkeypatch):
    monkeypatch.setenv("SOME_API_TOKEN", "not-for-requests")
    seen = {}

    def inner(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    assert call(serve.limited(inner), process_env=dict(os.environ))[0] == 200
    assert "SOME_API_TOKEN" not in seen and "PATH" not in seen
    assert seen["PATH_INFO"] == "/healthz" and seen["HTTP_HOST"] == "localhost"


def test_granian_settings_follow_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9000")
    settings = serve.defaults()
    assert (settings["GRANIAN_WORKERS"], settings["GRANIAN_PORT"]) == ("3", "9000")
