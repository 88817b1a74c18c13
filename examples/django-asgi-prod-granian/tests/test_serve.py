"""serve.py: Granian's settings from the environment, and the application as Granian serves it
(behind the request limits and the proxy headers), called in process."""

import asyncio

import pytest

from example import serve

TRUSTED = ("127.0.0.1", 50000)  # a proxy in FORWARDED_ALLOW_IPS' default


@pytest.fixture
def app():
    return serve.create_app()


def call(app, path="/healthz", query="", headers=(), client=TRUSTED):
    """The status and headers `app` answers a GET with."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "client": client,
        "server": ("localhost", 8000),
        "headers": [(b"host", b"localhost")]
        + [(name.lower().encode(), value.encode()) for name, value in headers],
    }
    sent, requested = [], []

    async def receive():
        if requested:  # the client stays connected until the response is complete
            await asyncio.Future()
        requested.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}


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


def test_granian_settings_follow_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9000")
    settings = serve.defaults()
    assert (settings["GRANIAN_WORKERS"], settings["GRANIAN_PORT"]) == ("3", "9000")
