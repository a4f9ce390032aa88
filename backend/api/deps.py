"""Typed dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from backend.runtime import Backend


def get_backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def get_session(backend: Annotated[Backend, Depends(get_backend)]) -> Iterator[Session]:
    with backend.db.session() as session:
        yield session


BackendDep = Annotated[Backend, Depends(get_backend)]
SessionDep = Annotated[Session, Depends(get_session)]
