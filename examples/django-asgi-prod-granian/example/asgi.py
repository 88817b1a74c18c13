"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers."""

import asyncio
import atexit
import os

import django
from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi
from django.db import close_old_connections, reset_queries
from django.db.backends.signals import connection_created
from django.urls import set_script_prefix

from . import db

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE",
    "example.settings",
)
# Django reads a whole request body (into a temporary file past 2.5 MB) before any view runs, and
# the servers bound none: a larger body than this is answered 413 and the connection closed,
# before any of it is read (nginx in front refuses the same: client_max_body_size 10m).
MAX_BODY_SIZE = 10 * 1024 * 1024


# Django's own ASGIHandler.handle, which ASGIHandler.handle below copies, by the sha256 of its
# source, in each Django release the copy was checked against. tests/test_app.py fails on any
# other, for the changes to be weighed here. 6.1's is rewritten (a TaskGroup) but keeps the
# methods the copy calls, and the project's tests pass on it.
CHECKED_DJANGO_HANDLES = {
    "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323": "5.2.19",
    "c91f27c7fcdc3fff4f1c7082e91cb30f0bfaa5781ca632a116b1d9e607fd752a": "6.1.3",
}


class BodyTooLarge(Exception):
    pass


class ASGIHandler(asgi.ASGIHandler):
    """Django's handler, without a new thread for every request.

    Django wraps each request in asgiref's ThreadSensitiveContext, which creates and joins a
    thread for the request as soon as any synchronous code runs in it, and some always does
    (signal receivers, response.close()). Without it that code runs on one shared thread per
    worker: async views serve several times more requests, and database connections are reused
    (CONN_MAX_AGE) instead of opened per request. The price is that synchronous code of
    concurrent requests, Django's async ORM methods included, takes turns on that thread: the
    views run their database work on db.run's threads instead, as many as the pool's connections.
    Use django.core.asgi's get_asgi_application() instead to get Django's default back.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        length = dict(scope["headers"]).get(b"content-length", b"0")
        try:
            if length.isdigit() and int(length) > MAX_BODY_SIZE:
                raise BodyTooLarge
            await self.handle(scope, receive, send)
        except BodyTooLarge:
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
                }
            )
            await send({"type": "http.response.body", "body": b"Request body too large"})

    async def handle(self, scope, receive, send):
        """Django's (5.2, see CHECKED_DJANGO_HANDLES), without its two hops per request to that
        shared thread: one to send request_started (its receivers, reset_queries and
        close_old_connections, are synchronous) and one to close the response, which sends
        request_finished (close_old_connections again). They cost a quarter of the requests/s of
        a one-row read (BENCHMARKS.md).

        Here those two receivers are disconnected (below). The response is closed on the event
        loop unless another receiver of request_finished is connected (it then gets Django's
        thread). The connection that only that shared thread keeps, opened by Django's async ORM
        methods, a synchronous view or a session save, goes back to the pool at the end of the
        request, as close_old_connections did: db.run's threads give theirs back after each call.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(asgi.get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await self.close_response(error_response)
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected while it was sent
            return response

        # The client's disconnect cancels the view, as in Django.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
            await db.release_shared_connection()
        else:
            await self.close_response(response)
        body_file.close()

    async def close_response(self, response):
        if signals.request_finished.has_listeners(self.__class__):
            await sync_to_async(response.close)()
        else:
            response.close()  # its files and the like: nothing to wait for
        await db.release_shared_connection()

    async def read_body(self, receive):
        """Django's, stopped at MAX_BODY_SIZE for a body sent in chunks (no Content-Length)."""
        size = 0

        async def counted():
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > MAX_BODY_SIZE:
                raise BodyTooLarge
            return message

        return await super().read_body(counted)


# Set Django up before anything imports models or consumers.
django.setup(set_prefix=False)
django_application = ASGIHandler()
signals.request_started.disconnect(reset_queries)  # see ASGIHandler.handle
signals.request_started.disconnect(close_old_connections)
signals.request_finished.disconnect(close_old_connections)
connection_created.connect(db.note_connection)

# This worker's database pool opens at its first query and closes when the process exits.
db.log_start()
atexit.register(db.close_pools)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from .consumers import EchoConsumer  # noqa: E402


async def lifespan(scope, receive, send):
    """The lifespan protocol, answered: Django and Channels have none, and uvicorn, finding
    none, logs "ASGI 'lifespan' protocol appears unsupported" at every start. There is nothing
    to do at start or stop (the pool opens at the first query, closes at exit)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": django_application,
        "lifespan": lifespan,
        # Browsers send Origin; one not in ALLOWED_HOSTS (or none at all) is refused with 403.
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/echo", EchoConsumer.as_asgi())])
        ),
    }
)
