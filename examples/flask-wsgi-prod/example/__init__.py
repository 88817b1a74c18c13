"""example: a Flask service. `create_app()` builds the application."""

import os
import secrets

from flask import Flask, jsonify, render_template

PROJECT = "example"


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    # FLASK_* environment variables become settings: FLASK_SECRET_KEY sets SECRET_KEY.
    app.config.from_prefixed_env()
    hosts = os.environ.get("FLASK_TRUSTED_HOSTS", "localhost,127.0.0.1")
    # A request whose Host header names another site is answered 400.
    app.config["TRUSTED_HOSTS"] = [h.strip() for h in hosts.split(",") if h.strip()] or None
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        if not (app.debug or app.testing):
            raise RuntimeError("FLASK_SECRET_KEY is not set: set it to a long random value")
        app.config["SECRET_KEY"] = secrets.token_hex(32)  # debug only: changes every start

    @app.get("/")
    def index() -> str:
        return render_template("index.html", project=PROJECT)

    @app.get("/api/hello")
    def hello():
        return jsonify(message=f"Hello from {PROJECT}")

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
