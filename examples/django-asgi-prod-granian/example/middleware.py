"""Django's security, common, CSRF and clickjacking middleware, run on the event loop.

Under ASGI, Django runs each hook of a MiddlewareMixin through sync_to_async: a hop to another
thread for every hook of every middleware on every request. These four do no I/O (they read
headers, cookies and settings), so they are called directly here. Middleware that does I/O
(database sessions, authentication) must keep Django's own adaptation.
"""

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
