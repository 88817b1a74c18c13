"""The example resource, items: a model and its JSON routes under /api/items.

To start without it, delete this module and tests/test_items.py, then what names items in
__init__.py, templates/index.html, migrations/env.py (MODELS) and tests/test_app.py, and write
the migration that drops its table: `alembic revision --autogenerate -m "drop items"`.
"""

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, mapped_column

from . import db

NAME_LENGTH = (1, 100)
NOTE_LENGTH = (0, 1000)
LIMIT = (1, 100)
DEFAULT_LIMIT = 20
ID_MAX = 2**31 - 1  # ids are 32-bit integers in PostgreSQL: a larger one names no item


class Item(db.Base):
    __tablename__ = "items"
    __table_args__ = {"sqlite_autoincrement": True}  # as in PostgreSQL, ids are never reused

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH[1]))
    note: Mapped[str] = mapped_column(String(NOTE_LENGTH[1]), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def to_json(self) -> dict[str, Any]:
        created = self.created_at
        # SQLite keeps no time zone, PostgreSQL answers in the session's: both become UTC
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
        return {
            "id": self.id,
            "name": self.name,
            "note": self.note,
            "created_at": created.isoformat(),
        }


class Invalid(Exception):
    """Fields (or query parameters) that cannot be used, with why: answered 422."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


class NotJSON(Exception):
    """A body that is not a JSON document in UTF-8: answered 400."""


blueprint = Blueprint("items", __name__, url_prefix="/api/items")


@blueprint.errorhandler(Invalid)
def invalid(error: Invalid) -> tuple[Response, int]:
    return jsonify(
        detail=[{"field": field, "message": message} for field, message in error.errors.items()]
    ), 422


@blueprint.errorhandler(NotJSON)
def not_json(error: NotJSON) -> tuple[Response, int]:
    return jsonify(detail=str(error)), 400


@blueprint.errorhandler(413)
def too_large(_error: Exception) -> tuple[Response, int]:
    """A body over MAX_CONTENT_LENGTH: JSON, not Flask's HTML page."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return jsonify(detail=f"the body is larger than {limit} bytes"), 413


def newest(limit: int, offset: int = 0) -> list[Item]:
    """Items, newest first."""
    query = select(Item).order_by(Item.id.desc()).limit(limit).offset(offset)
    return list(db.session().scalars(query))


def find(item_id: int) -> Item | None:
    return db.session().get(Item, item_id) if item_id <= ID_MAX else None


def not_found(item_id: int) -> tuple[Response, int]:
    return jsonify(detail=f"item {item_id} not found"), 404


@blueprint.get("")
def list_items() -> Response:
    limit = whole_number("limit", DEFAULT_LIMIT, *LIMIT)
    offset = whole_number("offset", 0, 0, ID_MAX)
    return jsonify(
        items=[item.to_json() for item in newest(limit, offset)], limit=limit, offset=offset
    )


@blueprint.post("")
def create_item() -> tuple[Response, int, dict[str, str]]:
    data = json_body()
    if not isinstance(data, dict):
        raise Invalid({"body": "must be a JSON object with a name and an optional note"})
    errors: dict[str, str] = {}
    name = text_field(data, "name", NAME_LENGTH, errors, required=True)
    note = text_field(data, "note", NOTE_LENGTH, errors)
    if errors:
        raise Invalid(errors)
    item = Item(name=name, note=note, created_at=datetime.now(UTC))
    session = db.session()
    session.add(item)
    session.commit()
    return jsonify(item.to_json()), 201, {"Location": url_for(".get_item", item_id=item.id)}


@blueprint.get("/<int:item_id>")
def get_item(item_id: int) -> Response | tuple[Response, int]:
    item = find(item_id)
    return jsonify(item.to_json()) if item else not_found(item_id)


@blueprint.delete("/<int:item_id>")
def delete_item(item_id: int) -> tuple[str | Response, int]:
    item = find(item_id)
    if item is None:
        return not_found(item_id)
    session = db.session()
    session.delete(item)
    session.commit()
    return "", 204


def whole_number(name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name`, a whole number from `low` to `high`."""
    value = request.args.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 10 and low <= int(value) <= high):
        raise Invalid({name: f"must be a whole number from {low} to {high}"})
    return int(value)


def json_body() -> Any:
    """The request's JSON document; NotJSON for any other body. A body over the app's
    MAX_CONTENT_LENGTH is refused (413) before it is read."""
    if not request.is_json:
        raise NotJSON("the body must be JSON, sent with Content-Type: application/json")
    try:
        return json.loads(request.get_data(cache=False).decode("utf-8"))
    except UnicodeDecodeError:
        raise NotJSON("the body is not UTF-8") from None
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise NotJSON("the body is not valid JSON") from None


def text_field(
    data: dict[str, Any],
    field: str,
    length: tuple[int, int],
    errors: dict[str, str],
    required: bool = False,
) -> str:
    """data[field], a string of length[0] to length[1] characters, else "" and a note in
    `errors`. Stored as given: text is never pasted into SQL, so quotes and the like are safe."""
    if field not in data:
        if required:
            errors[field] = "is required"
        return ""
    value = data[field]
    low, high = length
    if not isinstance(value, str):
        errors[field] = "must be a string"
    elif not low <= len(value) <= high:
        errors[field] = f"must be {low} to {high} characters long"
    elif not storable(value):
        errors[field] = "must be text without NUL characters or unpaired surrogates"
    else:
        return value
    return ""


def storable(value: str) -> bool:
    """Text PostgreSQL and SQLite can both store: no NUL, valid UTF-8 (JSON's \\ud800 escapes
    can make an unpaired surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value
