from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from . import items, views

urlpatterns = [
    path("", views.index, name="index"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("api/hello", views.hello, name="hello"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/items", items.items, name="items"),
    path("api/items/<int:item_id>", items.item, name="item"),
    path("admin/", admin.site.urls),
]
# Static files from the apps in debug mode only (an empty list otherwise).
urlpatterns += staticfiles_urlpatterns()
