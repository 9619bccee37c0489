"""Domain errors carry their HTTP status; one set of handlers renders every error as JSON.

The default body is `{"code", "error", "detail"?}` plus any fields a seed documents for that
error. A part of the API with another documented envelope registers an `ErrorStyle` for its
path prefix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("conduit.errors")


class ConduitError(Exception):
    status: int = 500
    code: str = "internal_error"
    message: str = "Internal server error"
    # True when the work done before the error is part of the outcome and must be committed
    # (a failed sign-in is counted, a reused refresh token revokes its family).
    keep_changes: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
        **extra: Any,
    ) -> None:
        self.keep_changes = keep_changes
        self.message = message or self.message
        self.code = code or self.code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "error": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        body.update(self.extra)
        return body


class BadRequest(ConduitError):
    status, code, message = 400, "bad_request", "Bad request"


class Unauthorized(ConduitError):
    status, code, message = 401, "unauthorized", "Authentication required"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="conduit"')


class Forbidden(ConduitError):
    status, code, message = 403, "forbidden", "You do not have permission to do this"


class NotFound(ConduitError):
    status, code, message = 404, "not_found", "Not found"


class Conflict(ConduitError):
    status, code, message = 409, "conflict", "Conflict"


class PayloadTooLarge(ConduitError):
    status, code, message = 413, "payload_too_large", "Payload too large"


class Unprocessable(ConduitError):
    status, code, message = 422, "validation_error", "Validation error"


class TooManyRequests(ConduitError):
    status, code, message = 429, "rate_limited", "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, math.ceil(retry_after))
        self.headers["Retry-After"] = str(self.retry_after)


class ServiceUnavailable(ConduitError):
    status, code, message = 503, "unavailable", "Service unavailable"


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    code: str
    error: str
    detail: Any | None = None


_STATUS_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "You do not have permission to do this"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Validation error"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
}


def error_for_status(status: int, message: str | None = None) -> ConduitError:
    code, default_message = _STATUS_DEFAULTS.get(status, ("error", "Request failed"))
    error = ConduitError(message or default_message, code=code)
    error.status = status
    return error


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error bodies a route can return."""
    return {
        status: {"model": ErrorBody, "description": _STATUS_DEFAULTS.get(status, ("", "Error"))[1]}
        for status in statuses
    }


@dataclass(frozen=True)
class ErrorStyle:
    """Renders errors for paths under `prefix` in another envelope."""

    prefix: str
    render: Callable[[ConduitError], dict[str, Any]]


def _style_for(request: Request) -> ErrorStyle | None:
    styles: Sequence[ErrorStyle] = getattr(request.app.state, "error_styles", ())
    path = request.url.path
    # "/v1" covers "/v1" and "/v1/...", not "/v1beta".
    return next((s for s in styles if path == s.prefix or path.startswith(s.prefix.rstrip("/") + "/")), None)


# For a 429 raised without one (a bare HTTPException): a client must still be told to wait.
DEFAULT_RETRY_AFTER = "60"


def render(request: Request, error: ConduitError) -> JSONResponse:
    style = _style_for(request)
    body = style.render(error) if style else error.body()
    headers = dict(error.headers)
    if error.status == 429 and not any(name.lower() == "retry-after" for name in headers):
        headers["Retry-After"] = DEFAULT_RETRY_AFTER
    return JSONResponse(body, status_code=error.status, headers=headers or None)


def _validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # The offending input is never echoed back: it may be a password or a token.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(ConduitError)
    async def _conduit_error(request: Request, exc: ConduitError) -> JSONResponse:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = Unprocessable("The request is invalid", detail=_validation_detail(exc.errors()))
        return render(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
        error = error_for_status(exc.status_code, message)
        if exc.headers:
            error.headers.update(exc.headers)
        return render(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, exc_info=exc)
        return render(request, ConduitError())


class RejectNulMiddleware:
    """Answers 422 for a NUL character in the path, the query or a JSON body of the API.

    PostgreSQL text cannot hold NUL, so such input would otherwise surface as a 500 deep inside
    a query; no field of ours has a use for it. Bodies are checked only for JSON up to 1 MiB on
    API paths: the gateway's relayed traffic is not this middleware's business.
    """

    BODY_LIMIT = 1 << 20

    def __init__(self, app: Any, prefixes: tuple[str, ...] = ("/api/", "/v1/")) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").lower()
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await self._refuse(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        is_json = headers.get(b"content-type", b"").startswith(b"application/json")
        if not (is_json and scope["path"].startswith(self.prefixes)):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body") or size > self.BODY_LIMIT:
                break
        body = b"".join(chunks)
        if size <= self.BODY_LIMIT and b"\\u0000" in body:
            await self._refuse(scope, receive, send)
            return
        more = size > self.BODY_LIMIT
        await self.app(
            scope, _replay([{"type": "http.request", "body": body, "more_body": more}], receive), send
        )

    @staticmethod
    async def _refuse(scope: Any, receive: Any, send: Any) -> None:
        # Rendered like any other error, in the envelope of the path (seed 001's on its paths).
        error = Unprocessable(
            "The request contains a NUL character, which no field accepts", code="invalid_input"
        )
        await render(Request(scope), error)(scope, receive, send)


def _replay(messages: list[Any], receive: Any) -> Any:
    pending = list(messages)

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
