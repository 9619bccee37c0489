"""Every error is rendered as JSON by `conduit.kit.errors.install`, on a small app of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, EmailStr, Field

from conduit.kit import errors
from conduit.kit.errors import (
    BadRequest,
    ConduitError,
    Conflict,
    ErrorStyle,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)


class SignUp(BaseModel):
    email: EmailStr
    password: str = Field(min_length=8)
    age: int


class TeapotError(ConduitError):
    status, code, message = 418, "teapot", "I am a teapot"


def legacy_envelope(error: ConduitError) -> dict[str, Any]:
    return {"success": False, "message": error.message, "error_code": error.code.upper()}


def build_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.state.error_styles = [ErrorStyle("/legacy", legacy_envelope)]

    @app.get("/servers/{server_id}")
    async def get_server(server_id: str) -> None:
        raise NotFound("No such server", code="server_not_found")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Slug taken", detail=[{"field": "slug"}])

    @app.get("/quota")
    async def quota() -> None:
        raise TooManyRequests("Monthly quota reached", retry_after=12.2, limit=1000, used=1000)

    @app.get("/whoami")
    async def whoami() -> None:
        raise Unauthorized()

    @app.get("/teapot")
    async def teapot() -> None:
        raise TeapotError()

    @app.get("/http-exception")
    async def http_exception() -> None:
        raise HTTPException(400, "Plain starlette error", headers={"X-Hint": "yes"})

    @app.get("/http-429")
    async def http_429() -> None:
        raise HTTPException(429)

    @app.get("/http-429-with-retry-after")
    async def http_429_with_retry_after() -> None:
        raise HTTPException(429, headers={"retry-after": "5"})

    @app.post("/accounts")
    async def sign_up(body: SignUp) -> dict[str, str]:
        return {"email": body.email}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("connection to postgresql://admin:hunter2@db/prod failed")

    @app.get("/legacy/servers/{server_id}")
    async def legacy_server(server_id: str) -> None:
        raise NotFound("No such server", code="server_not_found")

    @app.post("/legacy/accounts")
    async def legacy_sign_up(body: SignUp) -> dict[str, str]:
        return {"email": body.email}

    @app.get("/legacy-v2/servers/{server_id}")
    async def legacy_v2_server(server_id: str) -> None:
        raise NotFound("No such server", code="server_not_found")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: like a real server, which answers the 500 and logs the exception.
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_domain_error_renders_its_status_code_and_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/servers/srv_1")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": "server_not_found", "error": "No such server"}


async def test_detail_is_included_when_given(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")

    assert response.status_code == 409
    assert response.json() == {"code": "conflict", "error": "Slug taken", "detail": [{"field": "slug"}]}


async def test_too_many_requests_sets_retry_after_and_extra_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/quota")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "13"
    assert response.json() == {
        "code": "rate_limited",
        "error": "Monthly quota reached",
        "limit": 1000,
        "used": 1000,
    }


def test_retry_after_is_at_least_one_second() -> None:
    assert TooManyRequests(retry_after=0).headers["Retry-After"] == "1"
    assert TooManyRequests(retry_after=0.2).retry_after == 1
    assert TooManyRequests(retry_after=59.01).headers["Retry-After"] == "60"


async def test_a_429_from_anywhere_carries_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/http-429")

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    own = await client.get("/http-429-with-retry-after")
    assert own.headers.get_list("retry-after") == ["5"]


async def test_unauthorized_asks_for_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="conduit"'
    assert response.json() == {"code": "unauthorized", "error": "Authentication required"}


async def test_a_subclass_declares_its_own_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/teapot")

    assert response.status_code == 418
    assert response.json() == {"code": "teapot", "error": "I am a teapot"}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadRequest(), 400, "bad_request"),
        (Unauthorized(), 401, "unauthorized"),
        (Forbidden(), 403, "forbidden"),
        (NotFound(), 404, "not_found"),
        (Conflict(), 409, "conflict"),
        (PayloadTooLarge(), 413, "payload_too_large"),
        (Unprocessable(), 422, "validation_error"),
        (TooManyRequests(retry_after=1), 429, "rate_limited"),
        (ServiceUnavailable(), 503, "unavailable"),
        (ConduitError(), 500, "internal_error"),
    ],
)
def test_each_error_class_has_its_status_and_code(error: ConduitError, status: int, code: str) -> None:
    assert (error.status, error.code) == (status, code)
    assert error.body() == {"code": code, "error": error.message}
    assert error.keep_changes is False


def test_message_and_code_can_be_overridden_per_instance() -> None:
    error = NotFound("No such key", code="key_not_found")

    assert (error.message, error.code, str(error)) == ("No such key", "key_not_found", "No such key")
    assert NotFound().message == "Not found", "an instance must not change its class"


async def test_starlette_http_exception_is_rendered_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/http-exception")

    assert response.status_code == 400
    assert response.json() == {"code": "bad_request", "error": "Plain starlette error"}
    assert response.headers["x-hint"] == "yes"


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    wrong_method = await client.delete("/conflict")

    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "error": "Not found"}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_validation_error_lists_fields_without_echoing_input(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/accounts",
        json={"email": "TOPSECRET-not-an-email", "password": "TOPSEC", "age": "TOPSECRET-age"},
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert {tuple(problem["loc"]) for problem in body["detail"]} == {
        ("body", "email"),
        ("body", "password"),
        ("body", "age"),
    }
    for problem in body["detail"]:
        assert set(problem) == {"loc", "msg", "type"}
        assert problem["msg"]
    assert "TOPSEC" not in response.text


async def test_malformed_json_does_not_echo_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/accounts",
        content=b'{"email": "a@example.com", "password": "TOPSECRET-pw',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert "TOPSECRET" not in response.text


async def test_unexpected_exception_is_a_500_without_its_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/crash")

    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "error": "Internal server error"}
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_error_style_changes_the_envelope_under_its_prefix_only(client: httpx.AsyncClient) -> None:
    legacy = await client.get("/legacy/servers/srv_1")
    legacy_validation = await client.post("/legacy/accounts", json={})
    legacy_missing = await client.get("/legacy/nowhere")
    default = await client.get("/servers/srv_1")
    lookalike = await client.get("/legacy-v2/servers/srv_1")

    assert legacy.status_code == 404
    assert legacy.json() == {"success": False, "message": "No such server", "error_code": "SERVER_NOT_FOUND"}
    assert legacy_validation.status_code == 422
    assert legacy_validation.json()["error_code"] == "VALIDATION_ERROR"
    assert legacy_missing.status_code == 404
    assert legacy_missing.json()["success"] is False
    assert default.json() == {"code": "server_not_found", "error": "No such server"}
    assert lookalike.json() == {"code": "server_not_found", "error": "No such server"}


def test_responses_documents_error_bodies() -> None:
    documented = errors.responses(404, 429)

    assert set(documented) == {404, 429}
    assert documented[404]["model"] is errors.ErrorBody
    assert documented[429]["description"] == "Too many requests"
