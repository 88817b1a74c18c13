"""Views, all async: under ASGI a synchronous view costs a thread hop per request."""

import asyncio
import json
from pathlib import Path

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from . import db
from .items import Invalid, check_item, newest
from .models import Item

PROJECT = "example"
# Browsers ask for /favicon.ico on their first visit: the icon, not a 404 in the log.
FAVICON = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()


async def index(request):
    """The page; its form (POST, with Django's CSRF token) adds an item and comes back here."""
    context = {"project": PROJECT, "protocol": "ASGI", "asgi": True}
    status = 200
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            await db.run(Item.objects.create, **check_item({"name": name}))
            return redirect("index")
        except Invalid as invalid:
            context.update(name=name, error=invalid.message)
            status = invalid.status
    # fetched here: the template must not query on the loop
    context["items"] = await db.run(newest, 10)
    return render(request, "index.html", context, status=status)


async def favicon(request):
    return HttpResponse(
        FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


async def hello(request):
    return JsonResponse({"message": f"Hello from {PROJECT}"})


async def healthz(request):
    """Liveness: the process answers. It does not touch the database."""
    return JsonResponse({"status": "ok"})


async def readyz(request):
    """Readiness: the database answers through this worker's pool (503 while it does not)."""
    if await db.run(db.ready):
        return JsonResponse({"status": "ready"})
    return JsonResponse({"status": "unavailable"}, status=503)


async def events(request):
    """`count` Server-Sent Events, one every `interval` seconds."""
    try:
        count = int(request.GET.get("count", 5))
        interval = float(request.GET.get("interval", 0.5))
    except ValueError:
        return HttpResponseBadRequest("count must be an integer and interval a number")
    if not (1 <= count <= 1000 and 0 <= interval <= 10):
        return HttpResponseBadRequest("count must be 1-1000 and interval 0-10")

    async def stream():
        for tick in range(count):
            if tick:
                await asyncio.sleep(interval)
            yield f"id: {tick}\nevent: tick\ndata: {json.dumps({'tick': tick})}\n\n"

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    # proxies must pass each event on at once
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
