"""Every route of the application, in process."""

import os
import re
import subprocess
import sys

from django.test import Client, override_settings

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
    for route in ("/api/hello", "/api/items", "/healthz", "/readyz"):
        assert f">{route}<" in page, route
    assert ('data-ws="/ws/echo"' in page) is False


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
