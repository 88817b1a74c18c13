from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/hello", views.hello, name="hello"),
    path("healthz", views.healthz, name="healthz"),
    path("api/events", views.events, name="events"),
]
# Static files from the apps in debug mode only (an empty list otherwise).
urlpatterns += staticfiles_urlpatterns()
