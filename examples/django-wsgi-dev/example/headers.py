"""The Content-Security-Policy header: scripts, styles, images and connections (fetch,
EventSource, WebSocket) from this site only, none inline, no framing. Django's own CSP settings
(SECURE_CSP) need Django 6.0, hence Python 3.12; this project runs on 3.11 too. The README says
how to widen the policy."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class ContentSecurityPolicyMiddleware:
    """On every response that has none. Not on the error pages of DEBUG, which style and script
    themselves inline. Sync and async capable: no thread hop under ASGI."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self.add_policy(self.get_response(request))

    async def __acall__(self, request):
        return self.add_policy(await self.get_response(request))

    @staticmethod
    def add_policy(response):
        if not (settings.DEBUG and response.status_code >= 400):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
