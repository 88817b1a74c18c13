"""The gunicorn worker class of example: uvicorn_worker.UvicornWorker, with three changes.

1. A worker that stops drops no request. When a worker stops (SIGTERM, a reload with SIGHUP,
   max_requests recycling), uvicorn closes every idle kept-alive connection at once, although its
   client may already be sending the next request on it: that request is lost (a reset). Here such
   a connection stays open for LINGER seconds at most and a request arriving on it is answered
   with "Connection: close" (RFC 9112, section 9.6), as gunicorn's own gthread worker does; a
   response that already announced keep-alive is not followed by a close either.
2. gunicorn's request limits hold. uvicorn parses HTTP itself and ignores limit_request_line,
   limit_request_fields and limit_request_field_size: here a longer request target is answered
   414, and too many or too large header fields 431, as by gunicorn's own workers.
3. A stop logs no error. uvloop, stopping, closes a listening socket's descriptor itself, then
   calls close() on the object it was given: gunicorn's wrapper of the socket finds the
   descriptor gone and logs "Error while closing socket [Errno 9] Bad file descriptor". Given the
   socket itself, uvloop detaches it instead.

gunicorn.conf.py names this class; `worker_class = "uvicorn_worker.UvicornWorker"` runs without
these changes.
"""

import socket

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn_worker import UvicornWorker as BaseWorker

# seconds a stopping worker keeps an idle kept-alive connection open (whole: uvicorn's
# timeout_keep_alive, which it bounds, is an int)
LINGER = 2


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with gunicorn's request limits and a graceful stop."""

    # Set from gunicorn's settings by the worker; 0 is no limit, as in gunicorn.
    limit_request_line = 4094
    limit_request_fields = 100
    limit_request_field_size = 8190
    stopping = False
    refused = 0  # the status a request over a limit is answered with

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if self.limit_request_line and len(self.url) > self.limit_request_line:
            self.refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        count, size = self.limit_request_fields, self.limit_request_field_size
        if (count and len(self.headers) > count) or (size and len(name) + len(value) > size):
            self.refuse(431)

    def refuse(self, status: int) -> None:
        self.refused = status
        # Stops the parser before the application sees the request; uvicorn then answers
        # with send_400_response() and closes the connection.
        raise ValueError(f"request over gunicorn's limits ({status})")

    def send_400_response(self, msg: str) -> None:
        if not self.refused:
            super().send_400_response(msg)
            return
        status_line = STATUS_LINE[self.refused]
        body = status_line[len(b"HTTP/1.1 ") : -2]  # "414 Request-URI Too Long"
        head = [status_line]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.stopping and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with "Connection: close"

    def shutdown(self) -> None:
        """Called on every connection when the worker stops."""
        self.stopping = True
        self.timeout_keep_alive = min(self.timeout_keep_alive, LINGER)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            # Idle: a request may be on its way. Close in LINGER seconds unless one arrives;
            # it is then answered, and the connection closed.
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        elif not cycle.response_started:
            cycle.keep_alive = False
        # Otherwise the response under way announced keep-alive: the connection closes after
        # answering the next request, or LINGER seconds after this response if none comes.


class UvicornWorker(BaseWorker):
    CONFIG_KWARGS = {**BaseWorker.CONFIG_KWARGS, "http": HttpProtocol}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Requests still running when the worker stops get graceful_timeout, as in gunicorn.
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout
        HttpProtocol.limit_request_line = self.cfg.limit_request_line
        HttpProtocol.limit_request_fields = self.cfg.limit_request_fields
        HttpProtocol.limit_request_field_size = self.cfg.limit_request_field_size

    def run(self) -> None:
        # see 3. above: the sockets gunicorn wraps, unwrapped
        self.sockets: list[socket.socket] = [getattr(s, "sock", s) for s in self.sockets]
        super().run()
