
"""Views."""

from django.http import JsonResponse
from django.shortcuts import render

PROJECT = "example"


def index(request):
    return render(request, "index.html", {"project": PROJECT, "protocol": "WSGI"})


def hello(request):
    return JsonResponse({"message": f"Hello from {PROJECT}"})


def healthz(request):
    return JsonResponse({"status": "ok"})
