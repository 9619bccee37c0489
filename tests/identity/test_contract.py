"""Seed 002's System, Sessions, Account, 2FA and API Tokens groups, as a contract: every endpoint
at its documented method, path and operationId, and every authenticated one refusing anonymous
and stale callers with a 401 in the documented error shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conduit.app import create_app
from conduit.kit.runtime import Runtime
from tests.conftest import User
from tests.identity.conftest import API, assert_error

SEED_002_ENDPOINTS = [
    ("GET", "/api/v1/ping", "ping"),
    ("POST", "/api/v1/sessions", "createSession"),
    ("DELETE", "/api/v1/sessions", "deleteSession"),
    ("POST", "/api/v1/sessions/2fa", "completeTOTPSession"),
    ("POST", "/api/v1/sessions/refresh", "refreshSession"),
    ("POST", "/api/v1/accounts", "createAccount"),
    ("GET", "/api/v1/accounts/me", "getAccount"),
    ("DELETE", "/api/v1/accounts/me", "deleteAccount"),
    ("GET", "/api/v1/accounts/me/audit-log", "listAuditLog"),
    ("PUT", "/api/v1/accounts/me/timezone", "updateTimezone"),
    ("POST", "/api/v1/accounts/me/password-reset", "requestPasswordReset"),
    ("PUT", "/api/v1/accounts/me/password", "changePassword"),
    ("PUT", "/api/v1/accounts/me/password-reset", "confirmPasswordReset"),
    ("DELETE", "/api/v1/accounts/me/2fa", "disableTOTP"),
    ("POST", "/api/v1/accounts/me/2fa/backup-codes", "regenerateBackupCodes"),
    ("POST", "/api/v1/accounts/me/2fa/enable", "enableTOTP"),
    ("POST", "/api/v1/accounts/me/2fa/setup", "setupTOTP"),
    ("GET", "/api/v1/accounts/me/api-tokens", "listAPITokens"),
    ("POST", "/api/v1/accounts/me/api-tokens", "createAPIToken"),
    ("DELETE", "/api/v1/accounts/me/api-tokens/{id}", "deleteAPIToken"),
]

AUTHENTICATED = [
    ("DELETE", "/api/v1/sessions", None),
    ("GET", "/api/v1/accounts/me", None),
    ("DELETE", "/api/v1/accounts/me", {"confirm": True, "password": "whatever it is"}),
    ("GET", "/api/v1/accounts/me/audit-log", None),
    ("PUT", "/api/v1/accounts/me/timezone", {"timezone": "Europe/Paris"}),
    ("PUT", "/api/v1/accounts/me/password", {"current_password": "abcdefgh1", "new_password": "ijklmnop2"}),
    ("DELETE", "/api/v1/accounts/me/2fa", {"code": "123456"}),
    ("POST", "/api/v1/accounts/me/2fa/backup-codes", {"code": "123456"}),
    ("POST", "/api/v1/accounts/me/2fa/enable", {"code": "123456"}),
    ("POST", "/api/v1/accounts/me/2fa/setup", None),
    ("GET", "/api/v1/accounts/me/api-tokens", None),
    ("POST", "/api/v1/accounts/me/api-tokens", {"name": "ci"}),
    ("DELETE", "/api/v1/accounts/me/api-tokens/key_anything", None),
]

# Each status the seed documents for an operation, and that the OpenAPI document must list.
DOCUMENTED_ERRORS = {
    "createSession": {"401"},
    "deleteSession": {"401"},
    "completeTOTPSession": {"401"},
    "refreshSession": {"401"},
    "createAccount": {"409", "422"},
    "getAccount": {"401"},
    "deleteAccount": {"401", "422"},
    "listAuditLog": {"401"},
    "updateTimezone": {"401", "422"},
    "changePassword": {"401", "422"},
    "confirmPasswordReset": {"401", "422"},
    "disableTOTP": {"401", "422"},
    "regenerateBackupCodes": {"401", "422"},
    "enableTOTP": {"401", "409", "422"},
    "setupTOTP": {"401"},
    "listAPITokens": {"401"},
    "createAPIToken": {"401", "422"},
    "deleteAPIToken": {"401", "404"},
}

SUCCESS_STATUS = {
    "createAccount": "201",
    "createAPIToken": "201",
    "requestPasswordReset": "202",
    "deleteSession": "204",
    "deleteAccount": "204",
    "updateTimezone": "204",
    "changePassword": "204",
    "confirmPasswordReset": "204",
    "disableTOTP": "204",
    "deleteAPIToken": "204",
}


@pytest.fixture(scope="module")
def openapi_paths(runtime: Runtime) -> dict[str, dict[str, dict[str, Any]]]:
    """Built once: generating the document takes a while."""
    paths: dict[str, dict[str, dict[str, Any]]] = create_app(runtime=runtime).openapi()["paths"]
    return paths


@pytest.mark.parametrize(("method", "path", "operation_id"), SEED_002_ENDPOINTS)
def test_every_seed_endpoint_is_documented(
    openapi_paths: dict[str, dict[str, dict[str, Any]]], method: str, path: str, operation_id: str
) -> None:
    operation = openapi_paths[path][method.lower()]
    assert operation["operationId"] == operation_id
    responses = operation["responses"]
    assert isinstance(responses, dict)
    assert SUCCESS_STATUS.get(operation_id, "200") in responses
    assert DOCUMENTED_ERRORS.get(operation_id, set()) <= set(responses)


async def test_ping(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED)
async def test_anonymous_calls_are_401_with_www_authenticate(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    response = await client.request(method, path, json=body)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED)
async def test_signed_out_sessions_are_401_everywhere(
    client: httpx.AsyncClient, user: User, method: str, path: str, body: dict[str, object] | None
) -> None:
    assert (await client.request("DELETE", f"{API}/sessions", headers=user.headers)).status_code == 204
    response = await client.request(method, path, json=body, headers=user.headers)
    assert_error(response, 401, "session_revoked")


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not.a.jwt"]
)
async def test_malformed_authorization_headers_are_401(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get(f"{API}/accounts/me", headers={"Authorization": authorization})
    assert_error(response, 401)


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/sessions", content=b"email=a&password=b", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


async def test_unknown_identity_route_is_a_json_404(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get(f"{API}/accounts/me/nothing-here", headers=user.headers)
    assert_error(response, 404, "not_found")
