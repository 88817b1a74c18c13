"""Views."""

from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from . import db
from .items import Invalid, check_item, newest
from .models import Item

PROJECT = "example"
# Browsers ask for /favicon.ico on their first visit: the icon, not a 404 in the log.
FAVICON = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()


def index(request):
    """The page; its form (POST, with Django's CSRF token) adds an item and comes back here."""
    context = {"project": PROJECT, "protocol": "WSGI", "asgi": False}
    status = 200
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            Item.objects.create(**check_item({"name": name}))
            return redirect("index")
        except Invalid as invalid:
            context.update(name=name, error=invalid.message)
            status = invalid.status
    context["items"] = newest(10)
    return render(request, "index.html", context, status=status)


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
