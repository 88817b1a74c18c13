"""Granian, the production server of example: `python -m example.serve`.

Run, this module starts Granian as

    granian --interface asgi --factory example.serve:create_app

with this service's defaults below, which the environment overrides: WEB_CONCURRENCY, PORT and
HOST as on any platform, and any of Granian's own GRANIAN_* variables (`granian --help` lists
them), e.g. GRANIAN_WORKERS_KILL_TIMEOUT.

Imported by each Granian worker, it builds the application (create_app) behind what gunicorn
does for its apps and Granian does not: request limits (a longer request target is answered 414,
a longer header field 431; Granian itself answers 431 to more than 100 fields),
X-Forwarded-For / X-Forwarded-Proto believed only from the proxies in FORWARDED_ALLOW_IPS, and a
stop that drops no request (see drain_before_stopping).
"""

import os
import signal
import threading

TARGET = "example.serve:create_app"
# Requests over these are refused before the application sees them, as gunicorn does.
LIMIT_REQUEST_LINE = int(os.environ.get("LIMIT_REQUEST_LINE", "4094"))
LIMIT_REQUEST_FIELD_SIZE = int(os.environ.get("LIMIT_REQUEST_FIELD_SIZE", "8190"))
LINGER = 2.0  # seconds a stopping worker keeps answering, with "Connection: close"
STOPPING = threading.Event()  # set in a worker told to stop


def _cores() -> int:
    """CPUs this process may run on: a container's CPU set, not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def defaults() -> dict[str, str]:
    """Granian's settings for this service, as GRANIAN_* environment variables."""
    return {
        # All interfaces: inside a container that is how traffic arrives.
        "GRANIAN_HOST": os.environ.get("HOST", "0.0.0.0"),  # noqa: S104  # nosec B104
        "GRANIAN_PORT": os.environ.get("PORT", "8000"),
        # Workers: one per core. Granian's HTTP handling runs outside the GIL, in Rust. Measured
        # by `newstack bench` (2 cores, wrk beside the server): 2 x cores + 1 workers served no
        # more requests/s, with a higher p99 and more memory; one worker served 0.6 to 0.75.
        "GRANIAN_WORKERS": os.environ.get("WEB_CONCURRENCY") or str(_cores()),
        # Granian's defaults stay: one runtime (I/O) thread per worker (2 served no more) and
        # --loop auto, which picks uvloop, installed with uvicorn[standard] (asyncio served 0.88
        # to 0.98).
        "GRANIAN_BACKLOG": "2048",
        # Granian counts each open connection against this limit (its default: backlog /
        # workers, 1,024 per worker here), idle ones included: measured, 3,000 connections that
        # sent nothing made every request to 2 workers time out. Requests beyond the blocking
        # threads wait in Granian either way; what this bounds is connections per worker.
        "GRANIAN_BACKPRESSURE": "16384",
        # A worker that dies is started again (Granian's default is to stop the server).
        "GRANIAN_RESPAWN_FAILED_WORKERS": "true",
        # On SIGTERM workers finish requests in flight for at most this many seconds: keep it
        # below the orchestrator's stop grace period. (Granian's default waits for ever.)
        "GRANIAN_WORKERS_KILL_TIMEOUT": "20",
        # Logs go to stdout/stderr for the platform to collect.
        "GRANIAN_LOG_ACCESS_ENABLED": "true",
    }


def raise_open_files_limit() -> None:
    """A connection is a file descriptor: let this process (and the workers it starts) open as
    many as the system allows, not the soft limit of 1,024 many shells and units start with."""
    try:
        import resource
    except ImportError:  # Windows
        return
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # macOS refuses an unlimited soft limit: keep the current one
        pass


def main() -> None:
    for name, value in defaults().items():
        os.environ.setdefault(name, value)
    raise_open_files_limit()
    check_database(int(os.environ["GRANIAN_WORKERS"]))
    from granian.cli import cli

    cli.main(
        ["--interface", "asgi", "--factory", TARGET],
        prog_name="granian",
        auto_envvar_prefix="GRANIAN",
    )


def check_database(workers: int) -> None:
    """Check the database settings before any worker starts (a wrong DATABASE_URL is one line
    and an exit, not a traceback in every worker) and print the most connections this server
    opens. Each worker opens its own pool when it starts."""
    import sys

    from example.db import (
        check_settings,
        pool_size,
    )

    try:
        check_settings()
    except ValueError as error:
        raise SystemExit(str(error)) from None
    pool = pool_size()
    print(
        f"database budget: {workers} workers x {pool} connections = {workers * pool} per "
        "replica; keep workers x pool x replicas below PostgreSQL's max_connections minus a "
        "reserve",
        file=sys.stderr,
        flush=True,
    )


def drain_before_stopping() -> None:
    """Make this worker drain before Granian's graceful stop (SIGTERM, SIGINT; a SIGHUP reload
    and a replaced worker are stopped so too).

    Told to stop, a Granian worker closes every idle kept-alive connection at once, although its
    client may already be sending the next request on it: that request is lost (a reset). Here
    the worker first goes on serving for LINGER seconds, every response with "Connection: close"
    (RFC 9112, section 9.6), so that clients move to other connections; Granian's own graceful
    stop follows, which lets requests still running finish for GRANIAN_WORKERS_KILL_TIMEOUT.

    This replaces the signal handlers Granian's worker installs (granian._signals); without that
    module the worker stops as Granian's own does.
    """
    try:
        from granian import _signals
    except ImportError:
        return
    if not all(
        hasattr(_signals, name) for name in ("_get_signals", "set_loop_signals", "set_sync_signals")
    ):
        return
    if getattr(_signals.set_sync_signals, "drains", False):  # done already in this process
        return
    set_loop_signals, set_sync_signals = _signals.set_loop_signals, _signals.set_sync_signals

    def draining(stop):
        def handler(*_):
            if not STOPPING.is_set():  # a second signal changes nothing
                STOPPING.set()
                timer = threading.Timer(LINGER, stop)
                timer.daemon = True
                timer.start()

        return handler

    def loop_signals(loop):  # ASGI workers: the handlers run on the event loop
        event = set_loop_signals(loop)
        handler = draining(event.set)
        for number in _signals._get_signals():
            try:
                loop.add_signal_handler(number, handler)
            except NotImplementedError:  # Windows
                signal.signal(number, handler)
        return event

    def sync_signals():  # WSGI workers
        event = set_sync_signals()
        handler = draining(event.set)
        for number in _signals._get_signals():
            signal.signal(number, handler)
        return event

    # marks on the functions: this module may be imported twice (as __main__ and by name)
    loop_signals.drains = sync_signals.drains = True  # type: ignore[attr-defined]
    _signals.set_loop_signals, _signals.set_sync_signals = loop_signals, sync_signals


def create_app():
    """The application as each worker serves it."""
    drain_before_stopping()
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    from .main import app

    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    return wrap_asgi_with_proxy_headers(limited(app), trusted_hosts=trusted)


def limited(app):
    """`app`, refusing requests over the limits above, and closing connections after each
    response once the worker drains."""

    def over_limits(scope) -> int:
        """The status a request over the limits is refused with, 0 when within them."""
        target = len(scope.get("raw_path") or scope["path"]) + len(scope["query_string"]) + 1
        if LIMIT_REQUEST_LINE and target > LIMIT_REQUEST_LINE:
            return 414
        size = LIMIT_REQUEST_FIELD_SIZE
        if size and any(len(name) + len(value) > size for name, value in scope["headers"]):
            return 431
        return 0

    async def wrapped(scope, receive, send):
        status = over_limits(scope) if scope["type"] in ("http", "websocket") else 0
        if status and scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1009})  # message too big
        elif status:
            headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"request too large"})
        elif scope["type"] == "http":

            async def respond(message):
                if message["type"] == "http.response.start" and STOPPING.is_set():
                    # see drain_before_stopping
                    headers = [*message.get("headers", ()), (b"connection", b"close")]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, respond)
        else:
            await app(scope, receive, send)

    return wrapped


if __name__ == "__main__":
    main()
