"""Every route of the application, in process."""

import asyncio
import os
import re
import subprocess
import sys

from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client, override_settings

client = Client()


def get(path, **headers):
    # secure: production redirects plain HTTP; the proxy in front speaks HTTPS
    return client.get(path, secure=True, headers=headers)


def test_index_is_html_linking_the_stylesheet():
    response = get("/")
    assert response.status_code == 200
    assert response["content-type"].startswith("text/html")
    assert "/static/style" in response.content.decode()


def test_stylesheet_is_served():
    href = get("/").content.decode().split('href="')[1].split('"')[0]
    response = get(href)
    assert response.status_code == 200
    assert response["content-type"].startswith("text/css")


def test_the_page_script_is_served_and_the_page_names_its_routes():
    page = get("/").content.decode()
    script = re.search(r'<script src="([^"]+/app[.\w]*\.js)" defer></script>', page).group(1)
    assert "<script>" not in page and " on" + "submit=" not in page  # nothing inline
    response = get(script)
    assert response.status_code == 200
    assert "javascript" in response["content-type"]
    for route in ("/api/hello", "/api/items", "/healthz", "/readyz", "/api/events", "/ws/echo"):
        assert f">{route}<" in page, route
    assert ('data-ws="/ws/echo"' in page) is True


def test_favicon_is_an_icon():
    response = get("/favicon.ico")
    assert response.status_code == 200
    assert response["content-type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")


def test_collectstatic_needs_no_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update(DJANGO_DEBUG="0", DJANGO_STATIC_ROOT=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "style.css").exists()


def test_hello_is_json():
    response = get("/api/hello")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello from example"}


def test_healthz():
    assert get("/healthz").json() == {"status": "ok"}


def test_the_content_security_policy_is_sent_and_the_page_keeps_to_it():
    response = get("/")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert (policy["connect-src"], policy["frame-ancestors"]) == ("'self'", "'none'")
    # nothing inline for it to block: the page's scripts and styles are files of this site
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", response.text)


def test_debug_error_pages_go_without_the_policy_that_would_blank_them():
    for debug in (True, False):  # DEBUG's 404 and 500 pages style themselves inline
        with override_settings(DEBUG=debug):
            response = get("/no-such-page")
        assert ("Content-Security-Policy" in response) is not debug


def test_foreign_host_is_refused():
    assert get("/healthz", host="evil.example").status_code == 400


def test_trace_is_not_allowed():
    for path in ("/", "/api/hello"):
        response = client.generic("TRACE", path, secure=True)
        assert response.status_code == 405, path
        assert "TRACE" not in response["Allow"]


def test_plain_http_is_redirected_to_https_but_not_health_checks():
    assert client.get("/api/hello").status_code == 301
    assert client.get("/healthz").status_code == 200


def test_security_headers():
    response = get("/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "max-age=" in response["Strict-Transport-Security"]
    assert "preload" not in response["Strict-Transport-Security"]  # opt-in: a commitment


def test_security_middleware_is_installed_on_the_event_loop():
    """What Django's deploy checks security.W001-W003 (silenced in settings) would check."""
    from django.conf import settings
    from django.middleware import clickjacking, csrf, security

    from example import middleware

    for ours, djangos in [
        (middleware.SecurityMiddleware, security.SecurityMiddleware),
        (middleware.CsrfViewMiddleware, csrf.CsrfViewMiddleware),
        (middleware.XFrameOptionsMiddleware, clickjacking.XFrameOptionsMiddleware),
    ]:
        assert issubclass(ours, djangos)
        assert f"{ours.__module__}.{ours.__name__}" in settings.MIDDLEWARE


def test_events_stream():
    async def read():
        response = await AsyncClient().get("/api/events?count=3&interval=0", secure=True)
        assert response["content-type"].startswith("text/event-stream")
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    assert asyncio.run(read()).count("event: tick") == 3


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    from channels.testing import HttpCommunicator

    from example.asgi import (
        MAX_BODY_SIZE,
        application,
    )

    async def post(body, headers):
        communicator = HttpCommunicator(
            application,
            "POST",
            "/api/items",
            body=body,
            headers=[(b"host", b"localhost"), *headers],
        )
        return await communicator.get_response()

    # announced (nothing of it is read), or sent in chunks without a length (cut off)
    for body, headers in [
        (b"", [(b"content-length", str(MAX_BODY_SIZE + 1).encode())]),
        (bytes(MAX_BODY_SIZE + 1), []),
    ]:
        response = asyncio.run(post(body, headers))
        assert response["status"] == 413
        assert (b"connection", b"close") in response["headers"]


def test_django_s_handler_is_one_asgi_py_s_copy_was_checked_against():
    """asgi.py's ASGIHandler.handle is a copy of Django's with two changes: a Django release that
    changes its own is compared with the copy before the copy runs on it."""
    import hashlib
    import inspect

    import django
    from django.core.handlers.asgi import ASGIHandler

    from example.asgi import (
        CHECKED_DJANGO_HANDLES,
    )

    source = inspect.getsource(ASGIHandler.handle)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest in CHECKED_DJANGO_HANDLES, (
        f"Django {django.__version__} changed ASGIHandler.handle: compare it with asgi.py's "
        f"copy, then add {digest} to CHECKED_DJANGO_HANDLES"
    )


def test_a_synchronous_view_s_connection_goes_back_to_the_pool_when_its_request_ends():
    """The admin's views are synchronous: they run on the one thread that sync_to_async shares
    (Django's async ORM methods too), and its connection is given back after each request
    (asgi.py's handler)."""
    from asgiref.sync import sync_to_async
    from channels.testing import ApplicationCommunicator
    from django.db import connection

    from example.asgi import (
        django_application,
    )

    async def admin_with_a_session():
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/admin/",
            "scheme": "https",
            "query_string": b"",
            # the admin looks the session up in the database
            "headers": [(b"host", b"testserver"), (b"cookie", b"sessionid=" + b"a" * 32)],
        }
        communicator = ApplicationCommunicator(django_application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        await communicator.receive_output(5)
        await communicator.wait(5)
        return start["status"], await sync_to_async(lambda: connection.connection)()

    status, left_open = asyncio.run(admin_with_a_session())
    assert status == 302  # to the login page
    assert left_open is None


def test_websocket_echo():
    from example.asgi import application

    async def echo():
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        communicator = WebsocketCommunicator(application, "/ws/echo", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(text_data="ping")
        reply = await communicator.receive_from()
        await communicator.disconnect()
        return reply

    assert asyncio.run(echo()) == "ping"


def test_websocket_from_a_foreign_origin_is_refused():
    from example.asgi import application

    async def connect():
        headers = [(b"origin", b"http://evil.example")]
        communicator = WebsocketCommunicator(application, "/ws/echo", headers=headers)
        connected, _ = await communicator.connect()
        return connected

    assert asyncio.run(connect()) is False


def test_lifespan_is_answered():
    """uvicorn logs "ASGI 'lifespan' protocol appears unsupported" when it is not."""
    from example.asgi import application

    async def start_and_stop():
        inbox = asyncio.Queue()
        sent = []
        for message in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": message})

        async def send(message):
            sent.append(message["type"])

        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
        return sent

    assert asyncio.run(start_and_stop()) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
