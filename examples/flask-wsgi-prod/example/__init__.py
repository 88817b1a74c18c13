"""example: a Flask service. `create_app()` builds the application.

The database is set up in db.py (DATABASE_URL), the example resource in items.py.
"""

import os
import secrets

from dotenv import load_dotenv
from flask import Flask, Response, jsonify, render_template, request

from . import db, items

# Settings from a .env file in the working directory, if there is one, for every way in: the
# servers, manage.py or the migrations, the tests. A variable already in the environment wins
# over the file.
load_dotenv(".env")

PROJECT = "example"
# The headers browsers expect on every response: no MIME sniffing, no framing by other sites, no
# full URLs in Referer to other origins, scripts, styles and connections from this site only (no
# inline ones: the README says how to widen it); and HSTS over HTTPS (see security_headers below).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}
HSTS = "max-age=31536000; includeSubDomains"
MAX_CONTENT_LENGTH = 1024 * 1024  # larger request bodies are refused with 413


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    # FLASK_* environment variables become settings: FLASK_SECRET_KEY sets SECRET_KEY,
    # FLASK_MAX_CONTENT_LENGTH the limit above.
    app.config.from_prefixed_env()
    hosts = os.environ.get("FLASK_TRUSTED_HOSTS", "localhost,127.0.0.1")
    # A request whose Host header names another site is answered 400. Flask reads an empty list
    # as "any host": set but naming none (FLASK_TRUSTED_HOSTS=''), it refuses to start instead.
    trusted = [h.strip() for h in hosts.split(",") if h.strip()]
    if not trusted and "FLASK_TRUSTED_HOSTS" in os.environ:
        raise RuntimeError(
            "FLASK_TRUSTED_HOSTS names no host: set it to the host names this "
            "service answers to, comma-separated (e.g. example.com,localhost)"
        )
    app.config["TRUSTED_HOSTS"] = trusted or None
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        if not (app.debug or app.testing):
            raise RuntimeError("FLASK_SECRET_KEY is not set: set it to a long random value")
        app.config["SECRET_KEY"] = secrets.token_hex(32)  # debug only: changes every start
    # This process's engine and pool; ValueError (one line) for an unusable DATABASE_URL.
    db.init_app(app)
    app.register_blueprint(items.blueprint)

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # https when the request came over TLS, or from a proxy in FORWARDED_ALLOW_IPS that says
        # so in X-Forwarded-Proto (the server checks that)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    @app.get("/")
    def index() -> str:
        return render_template("index.html", project=PROJECT, items=items.newest(10))

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """Browsers ask for it on their first visit: the icon, not a 404 in the log."""
        return app.send_static_file("favicon.svg")

    @app.get("/api/hello")
    def hello():
        return jsonify(message=f"Hello from {PROJECT}")

    @app.get("/healthz")
    def healthz():
        """Liveness: the process answers (the database is not asked)."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        """Readiness: the database answers through the pool."""
        if db.is_ready():
            return jsonify(status="ready")
        return jsonify(status="unavailable"), 503

    return app
