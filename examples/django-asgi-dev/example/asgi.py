"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
# Set Django up before anything imports models or consumers.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from .consumers import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # Browsers send Origin; one not in ALLOWED_HOSTS (or none at all) is refused with 403.
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/echo", EchoConsumer.as_asgi())])
        ),
    }
)
