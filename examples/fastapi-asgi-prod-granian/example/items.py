"""An example resource, end to end: a table, its JSON API and its validation. Delete this module,
its router in main.py and its migration to start from an empty project."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import DateTime, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .db import session


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    __table_args__ = {"sqlite_autoincrement": True}  # SQLite never reuses a deleted item's id

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ItemIn(BaseModel):
    """What a client sends: unknown fields are refused, so a typo is not silently dropped."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100)
    note: str = Field(default="", max_length=1000)


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    note: str
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def in_utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps no zone


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int
    offset: int


Session = Annotated[AsyncSession, Depends(session)]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # the column's range: larger is a 422, not a 500
router = APIRouter(prefix="/api/items", tags=["items"])


async def newest(db: AsyncSession, limit: int, offset: int = 0) -> list[Item]:
    rows = await db.scalars(select(Item).order_by(Item.id.desc()).limit(limit).offset(offset))
    return list(rows)


@router.get("")
async def list_items(
    db: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ItemPage:
    items = [ItemOut.model_validate(item) for item in await newest(db, limit, offset)]
    return ItemPage(items=items, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(item: ItemIn, db: Session, response: Response) -> ItemOut:
    row = Item(name=item.name, note=item.note, created_at=datetime.now(UTC))
    db.add(row)
    await db.commit()
    response.headers["Location"] = f"/api/items/{row.id}"
    return ItemOut.model_validate(row)


async def find(db: AsyncSession, item_id: int) -> Item:
    row = await db.get(Item, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return row


@router.get("/{item_id}")
async def get_item(item_id: ItemId, db: Session) -> ItemOut:
    return ItemOut.model_validate(await find(db, item_id))


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(item_id: ItemId, db: Session) -> None:
    await db.delete(await find(db, item_id))
    await db.commit()
