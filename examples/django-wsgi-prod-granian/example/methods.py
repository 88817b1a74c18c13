"""TRACE answered 405 before any view. Django's views accept every method, so a TRACE was
answered 200 with the page: no client of this service sends TRACE, and scanners flag it."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponseNotAllowed

ALLOWED = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class TraceNotAllowedMiddleware:
    """Sync and async capable: no thread hop under ASGI."""

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
        if request.method == "TRACE":
            return HttpResponseNotAllowed(ALLOWED)
        return self.get_response(request)

    async def __acall__(self, request):
        if request.method == "TRACE":
            return HttpResponseNotAllowed(ALLOWED)
        return await self.get_response(request)
