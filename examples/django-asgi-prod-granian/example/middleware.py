"""Django's security, session, common, CSRF, authentication, messages and clickjacking middleware,
run on the event loop.

Under ASGI, Django runs each hook of a MiddlewareMixin through sync_to_async: a hop to another
thread for every hook of every middleware on every request. These hooks do no I/O (they read
headers, cookies and settings; the session and the user are loaded lazily, when a view asks),
so they are called directly here. The one that can query the database, saving a session a view
used, keeps Django's own adaptation: a thread. Middleware that does I/O must keep it too.
"""

from asgiref.sync import sync_to_async
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security


class OnTheEventLoop:
    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(OnTheEventLoop, security.SecurityMiddleware):
    pass


class CommonMiddleware(OnTheEventLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(OnTheEventLoop, csrf.CsrfViewMiddleware):
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        return super().process_view(request, callback, callback_args, callback_kwargs)


class XFrameOptionsMiddleware(OnTheEventLoop, clickjacking.XFrameOptionsMiddleware):
    pass


class SessionMiddleware(OnTheEventLoop, sessions.SessionMiddleware):
    async def __acall__(self, request):
        self.process_request(request)  # a lazy session: nothing is read yet
        response = await self.get_response(request)
        if getattr(request, "session", None) is not None and request.session.accessed:
            # a view used the session (the admin, a login): saving it queries the database
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)


class AuthenticationMiddleware(OnTheEventLoop, auth.AuthenticationMiddleware):
    pass  # request.user and request.auser() are lazy: loaded when a view asks


class MessageMiddleware(OnTheEventLoop, messages.MessageMiddleware):
    pass  # MESSAGE_STORAGE is the cookie: no database
