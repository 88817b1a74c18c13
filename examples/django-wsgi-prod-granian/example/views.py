"""Views."""

from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from . import db
from .items import newest

PROJECT = "example"
# Browsers ask for /favicon.ico on their first visit: the icon, not a 404 in the log.
FAVICON = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()


def index(request):
    return render(
        request, "index.html", {"project": PROJECT, "protocol": "WSGI", "items": newest(10)}
    )


def favicon(request):
    return HttpResponse(
        FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


def hello(request):
    return JsonResponse({"message": f"Hello from {PROJECT}"})


def healthz(request):
    """Liveness: the process answers. It does not touch the database."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the database answers through this worker's pool (503 while it does not)."""
    if db.ready():
        return JsonResponse({"status": "ready"})
    return JsonResponse({"status": "unavailable"}, status=503)
