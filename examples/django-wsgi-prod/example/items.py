"""The example resource's JSON API: validation by hand (JSON in, JSON out), newest first.

CSRF: these views are exempt (csrf_exempt) on purpose. The API is for non-browser clients and
authenticates nobody by cookie, so a forged cross-site request could do nothing a direct one
cannot. Once a write here depends on a session or login cookie, drop the exemption (clients then
send the X-CSRFToken header) or authenticate with a token in a header instead.
"""

import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .models import Item

FIELDS = {"name": (1, 100), "note": (0, 1000)}  # characters, least and most
MAX_ID = 2**63 - 1  # the column's range: a larger ID is not found, not an error
MAX_OFFSET = 2**31 - 1


class Invalid(Exception):
    """A request that names a field or parameter wrongly: 422 naming it, nothing written."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status

    def response(self) -> JsonResponse:
        return JsonResponse(
            {"detail": [{"loc": [self.field], "msg": self.message}]}, status=self.status
        )


def parse_item(body: bytes) -> dict:
    """The fields of a new item from a JSON body, or Invalid."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Invalid("body", "the body is not JSON in UTF-8", status=400) from None
    return check_item(data)


def check_item(data: object) -> dict:
    """The fields of a new item from decoded JSON or a form, or Invalid."""
    if not isinstance(data, dict):
        raise Invalid("body", "expected a JSON object with name and note")
    for field in data:
        if field not in FIELDS:
            raise Invalid(field, f"unknown field {field!r}: expected name and note")
    if "name" not in data:
        raise Invalid("name", "name is required")
    item = {"name": data["name"], "note": data.get("note", "")}
    for field, value in item.items():
        least, most = FIELDS[field]
        if not isinstance(value, str):
            raise Invalid(field, f"{field} must be a string")
        if not least <= len(value) <= most:
            raise Invalid(field, f"{field} must be {least} to {most} characters")
    return item


def parse_page(query) -> tuple[int, int]:
    """limit (1..100, default 20) and offset (0 or more, default 0) from the query string."""
    values = {}
    for name, default, least, most in (("limit", 20, 1, 100), ("offset", 0, 0, MAX_OFFSET)):
        raw = query.get(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise Invalid(name, f"{name} must be a whole number") from None
        if not least <= value <= most:
            raise Invalid(name, f"{name} must be {least} to {most}")
        values[name] = value
    return values["limit"], values["offset"]


def not_found(item_id: int) -> JsonResponse:
    return JsonResponse({"detail": f"item {item_id} not found"}, status=404)


def created(item: Item) -> JsonResponse:
    response = JsonResponse(item.as_json(), status=201)
    response["Location"] = f"/api/items/{item.id}"
    return response


def newest(limit: int, offset: int = 0) -> list[Item]:
    return list(Item.objects.order_by("-id")[offset : offset + limit])


@csrf_exempt
@require_http_methods(["GET", "POST"])
def items(request):
    try:
        if request.method == "POST":
            return created(Item.objects.create(**parse_item(request.body)))
        limit, offset = parse_page(request.GET)
    except Invalid as invalid:
        return invalid.response()
    page = [item.as_json() for item in newest(limit, offset)]
    return JsonResponse({"items": page, "limit": limit, "offset": offset})


@csrf_exempt
@require_http_methods(["GET", "DELETE"])
def item(request, item_id: int):
    found = Item.objects.filter(id=item_id).first() if item_id <= MAX_ID else None
    if found is None:
        return not_found(item_id)
    if request.method == "DELETE":
        found.delete()
        return HttpResponse(status=204)
    return JsonResponse(found.as_json())
