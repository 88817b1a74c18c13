
"""Views."""

from django.http import JsonResponse
from django.shortcuts import render

from . import db
from .items import newest

PROJECT = "example"


def index(request):
    return render(request, "index.html", {"project": PROJECT, "protocol": "WSGI",
                                          "items": newest(10)})


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
