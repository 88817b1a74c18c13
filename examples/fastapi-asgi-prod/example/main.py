"""The FastAPI application: HTML, JSON, an example resource in a database, health and readiness
checks, a WebSocket echo and Server-Sent Events."""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.middleware.trustedhost import TrustedHostMiddleware

from . import db, items

HERE = Path(__file__).parent
PROJECT = "example"
# API docs are served only when asked for: they describe the whole API to anyone.
DOCS = os.environ.get("ENABLE_DOCS", "0") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
# Scripts, styles and connections (fetch, EventSource, WebSocket) from this site only, none
# inline: the README says how to widen it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# Swagger UI and ReDoc load from a CDN and start with an inline script: under the policy they
# would stay blank, so these pages go without it.
DOCS_PAGES = {"/docs", "/docs/oauth2-redirect", "/redoc"} if DOCS else set()
MAX_BODY_SIZE = 1024 * 1024  # larger request bodies are refused with 413 (BodyLimit)


class SecurityHeaders:
    """Adds the headers browsers expect to every HTTP response, unless the route set them:
    no MIME sniffing, no framing by other sites, no full URLs in Referer to other origins, the
    Content-Security-Policy (not on DOCS_PAGES), and HSTS over HTTPS. The scheme is https when
    the request came over TLS, or from a proxy in FORWARDED_ALLOW_IPS that says so in
    X-Forwarded-Proto (the server checks that)."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )
    CSP = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())
    HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.HEADERS if scope["path"] in DOCS_PAGES else (*self.HEADERS, self.CSP)
        extra = (*extra, self.HSTS) if scope["scheme"] == "https" else extra

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in extra if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """A request body announced larger than MAX_BODY_SIZE is answered 413 before any of it is
    read, one sent in chunks is cut off at that size; and a response sent before its request's
    body was read (a 405, a 400) closes the connection. The servers do not bound bodies: uvicorn
    read a whole 1 GiB body after answering 405 to reach the next request on the connection, and
    Starlette reads a body into memory whatever its size."""

    REFUSED = (413, b'{"detail":"request body too large"}')

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY_SIZE:
            await self.refuse(send)
            return
        unread = length != b"0" or b"transfer-encoding" in headers
        received = 0
        started = False

        async def limited_receive():
            nonlocal unread, received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_SIZE:
                raise BodyTooLarge
            unread = unread and message.get("more_body", False)
            return message

        async def closing_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, limited_receive, closing_send)
        except BodyTooLarge:
            if started:
                raise
            await self.refuse(send)

    @classmethod
    async def refuse(cls, send) -> None:
        status, body = cls.REFUSED
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """Raised while reading a body past MAX_BODY_SIZE. An HTTPException, so that FastAPI answers
    it 413 rather than 400 ("error parsing the body"); BodyLimit answers it elsewhere."""

    def __init__(self) -> None:
        super().__init__(413)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Each worker process opens its own pool when it starts serving (after the server forked
    it: pooled connections never cross a fork) and closes it when it stops."""
    app.state.engine = db.create_engine()
    app.state.sessions = db.sessionmaker(app.state.engine)
    yield
    await app.state.engine.dispose()


app = FastAPI(
    lifespan=lifespan,
    title=PROJECT,
    docs_url="/docs" if DOCS else None,
    redoc_url="/redoc" if DOCS else None,
    openapi_url="/openapi.json" if DOCS else None,
)
# A request whose Host header names another site is answered 400.
app.add_middleware(TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS)
app.add_middleware(BodyLimit)  # before anything reads a body
app.add_middleware(SecurityHeaders)  # added last: runs first, so even a 400 or 413 carries them
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
templates = Jinja2Templates(directory=HERE / "templates")
app.include_router(items.router)


@app.exception_handler(DBAPIError)
@app.exception_handler(PoolTimeout)
async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    """The database is down or saturated: the client may retry; this is not its fault."""
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


# HEAD as well: uptime monitors and link checkers ask with it (FastAPI adds it to no route).
@app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def index(request: Request, session: items.Session) -> HTMLResponse:
    latest = await items.newest(session, 10)
    return templates.TemplateResponse(request, "index.html", {"project": PROJECT, "items": latest})


@app.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """Browsers ask for it on their first visit: the icon, not a 404 in the log."""
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


@app.get("/api/hello")
async def hello() -> dict[str, str]:
    return {"message": f"Hello from {PROJECT}"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. It does not touch the database."""
    return {"status": "ok"}


@app.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers through this worker's pool (503 while it does not)."""
    if await db.ready(request.app.state.engine):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unavailable"}, status_code=503)


def same_site(origin: str | None) -> bool:
    """Whether a WebSocket handshake may proceed. Browsers send the page's Origin and the site's
    cookies with it, and no CSRF check covers a handshake: an Origin whose host is not in
    ALLOWED_HOSTS is refused, as Channels does. Clients other than browsers send none."""
    if origin is None or "*" in ALLOWED_HOSTS:
        return True
    host = urlsplit(origin).hostname or ""
    return any(
        host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
        for allowed in ALLOWED_HOSTS
    )


@app.websocket("/ws/echo")
async def echo(websocket: WebSocket) -> None:
    if not same_site(websocket.headers.get("origin")):
        await websocket.close(code=1008)  # before accept: the handshake is answered 403
        return
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


@app.get("/api/events")
async def events(
    count: Annotated[int, Query(ge=1, le=1000)] = 5,
    interval: Annotated[float, Query(ge=0, le=10)] = 0.5,
) -> StreamingResponse:
    """`count` Server-Sent Events, one every `interval` seconds."""

    async def stream():
        for tick in range(count):
            if tick:
                await asyncio.sleep(interval)
            yield f"id: {tick}\nevent: tick\ndata: {json.dumps({'tick': tick})}\n\n"

    # no-cache and X-Accel-Buffering: proxies must pass each event on at once
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
