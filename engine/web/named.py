"""Rows people pick by a unique name (segments, audiences): fetching one by id, and the 409
for a name another row has, whether we see it first or the database's unique index does."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.core.errors import NameTaken, NotFound
from engine.core.models import MAX_ID

Row = TypeVar("Row")


class Named(Generic[Row]):
    def __init__(self, model: type[Row], kind: str, article: str = "a"):
        self.model, self.kind, self.article = model, kind, article

    def get(self, session: Session, row_id: int) -> Row:
        row = session.get(self.model, row_id) if row_id <= MAX_ID else None
        if row is None:
            raise NotFound(f"{self.kind} {row_id} does not exist")
        return row

    def check_free(self, session: Session, name: str, except_id: int | None = None) -> None:
        model: Any = self.model
        query = select(model.id).where(model.name == name)
        if except_id is not None:
            query = query.where(model.id != except_id)
        if session.scalar(query) is not None:
            raise self.taken(name)

    def flush(self, session: Session, name: str) -> None:
        """A name a concurrent request took after `check_free` looked is a 409, not a 500."""
        try:
            session.flush()
        except IntegrityError as exc:
            raise self.taken(name) from exc

    def taken(self, name: str) -> NameTaken:
        message = f"{self.article} {self.kind} named '{name}' already exists"
        return NameTaken(message, [{"pointer": "/name", "code": "name_taken", "message": message}])
