"""Service status: `/api/v1/ping` (seed 002) and `/health` (seed 001's envelope). No auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

import conduit
from conduit.identity.schemas import PingResponse
from conduit.kit.clock import utcnow

router = APIRouter()


class HealthResponse(BaseModel):
    message: str
    data: dict[str, Any]
    timestamp: str


@router.get("/api/v1/ping", tags=["System"], operation_id="ping", summary="Ping", response_model=PingResponse)
async def ping() -> PingResponse:
    """Confirms the API is reachable. No authentication required."""
    return PingResponse(status="ok")


@router.get(
    "/health",
    tags=["System"],
    operation_id="health",
    summary="Health check",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "The database is unreachable"}},
)
async def health(request: Request) -> JSONResponse:
    """Reports the version and whether the database answers. No authentication required."""
    runtime = request.app.state.runtime
    try:
        async with runtime.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database, healthy = "ok", True
    except Exception:
        database, healthy = "unreachable", False
    body = HealthResponse(
        message="API server is healthy" if healthy else "API server is unhealthy",
        data={
            "version": conduit.__version__,
            "database": database,
            "backend": runtime.db.engine.dialect.name,
        },
        timestamp=utcnow().isoformat().replace("+00:00", "Z"),
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
