"""Seed 002's Domains, SMTP Policies and Webhooks groups, as a contract: every endpoint at its documented
method, path, operationId and statuses, with the documented field names, and every one refusing
anonymous and stale callers with a 401 in the documented error shape."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from conduit.app import create_app
from conduit.kit.runtime import Runtime
from tests.conftest import User
from tests.identity.conftest import API, assert_error
from tests.orgs.conftest import service_key

SEED_002_EMAIL_ENDPOINTS = [
    ("GET", "/api/v1/domains", "listDomains", "Domains"),
    ("POST", "/api/v1/domains", "createDomainClaim", "Domains"),
    ("GET", "/api/v1/domains/{id}", "getDomain", "Domains"),
    ("DELETE", "/api/v1/domains/{id}", "deleteDomain", "Domains"),
    ("POST", "/api/v1/domains/{id}/verify", "verifyDomain", "Domains"),
    ("GET", "/api/v1/smtp-policies", "listSmtpSecurityPolicies", "SMTP Policies"),
    ("POST", "/api/v1/smtp-policies", "createSmtpSecurityPolicy", "SMTP Policies"),
    ("GET", "/api/v1/smtp-policies/{id}", "getSmtpSecurityPolicy", "SMTP Policies"),
    ("PUT", "/api/v1/smtp-policies/{id}", "updateSmtpSecurityPolicy", "SMTP Policies"),
    ("DELETE", "/api/v1/smtp-policies/{id}", "deleteSmtpSecurityPolicy", "SMTP Policies"),
    ("GET", "/api/v1/webhooks", "listWebhooks", "Webhooks"),
    ("POST", "/api/v1/webhooks", "createWebhook", "Webhooks"),
    ("GET", "/api/v1/webhooks/{id}", "getWebhook", "Webhooks"),
    ("PUT", "/api/v1/webhooks/{id}", "updateWebhook", "Webhooks"),
    ("DELETE", "/api/v1/webhooks/{id}", "deleteWebhook", "Webhooks"),
    ("GET", "/api/v1/webhooks/{id}/logs", "listDeliveryLogs", "Webhooks"),
    ("GET", "/api/v1/webhooks/{id}/logs/{logId}", "getDeliveryLog", "Webhooks"),
    ("POST", "/api/v1/webhooks/{id}/simulate", "simulateWebhook", "Webhooks"),
]

# The seed's statuses, plus the 409 the issue adds for deleting a policy in use.
DOCUMENTED_STATUSES = {
    "listDomains": {"200", "401"},
    "createDomainClaim": {"201", "401", "409", "422"},
    "getDomain": {"200", "401", "404"},
    "deleteDomain": {"204", "401", "404"},
    "verifyDomain": {"200", "401", "404", "422"},
    "listSmtpSecurityPolicies": {"200", "401"},
    "createSmtpSecurityPolicy": {"201", "401", "422"},
    "getSmtpSecurityPolicy": {"200", "401", "404"},
    "updateSmtpSecurityPolicy": {"200", "401", "404", "422"},
    "deleteSmtpSecurityPolicy": {"204", "401", "404", "409"},
    "listWebhooks": {"200", "401"},
    "createWebhook": {"201", "401", "409", "422"},
    "getWebhook": {"200", "401", "404"},
    "updateWebhook": {"200", "401", "404", "409", "422"},
    "deleteWebhook": {"204", "401", "404"},
    "listDeliveryLogs": {"200", "401", "404"},
    "getDeliveryLog": {"200", "401", "404"},
    "simulateWebhook": {"200", "401", "404"},
}

DOMAIN_RESPONSE = {
    "account_id",
    "created_at",
    "id",
    "is_public",
    "name",
    "updated_at",
    "verification_token",
    "verified",
}
POLICY_REQUEST = {
    "allowed_dkim_domains",
    "allowed_source_ips",
    "allowed_spf_domains",
    "name",
    "require_dkim",
    "require_smtp_auth",
    "require_spf",
    "smtp_credentials",
}
POLICY_RESPONSE = POLICY_REQUEST | {"created_at", "id", "updated_at"}
WEBHOOK_REQUEST = {
    "active",
    "address",
    "custom_headers",
    "name",
    "payload_template",
    "rate_limit",
    "secret",
    "smtp_security_policy_id",
    "target_url",
}
WEBHOOK_RESPONSE = WEBHOOK_REQUEST | {"created_at", "id", "updated_at"}
DELIVERY_LOG_RESPONSE = {
    "attempted_at",
    "duration_ms",
    "error",
    "http_status",
    "id",
    "sender",
    "simulated",
    "smtp_message_id",
    "webhook_id",
}
# Fields Conduit adds to what seed 002 documents, each optional and said so in its description.
EXTENSIONS = {"include_raw"}
REQUEST_FIELDS = {
    "createDomainClaim": {"name"},
    "createSmtpSecurityPolicy": POLICY_REQUEST,
    "updateSmtpSecurityPolicy": POLICY_REQUEST,
    "createWebhook": WEBHOOK_REQUEST,
    "updateWebhook": WEBHOOK_REQUEST | {"clear_security_policy"},
    "simulateWebhook": {"from", "subject", "text"},
}
RESPONSE_FIELDS = {
    "listDomains": DOMAIN_RESPONSE,
    "createDomainClaim": DOMAIN_RESPONSE,
    "getDomain": DOMAIN_RESPONSE,
    "verifyDomain": DOMAIN_RESPONSE,
    "listSmtpSecurityPolicies": POLICY_RESPONSE,
    "createSmtpSecurityPolicy": POLICY_RESPONSE,
    "getSmtpSecurityPolicy": POLICY_RESPONSE,
    "updateSmtpSecurityPolicy": POLICY_RESPONSE,
    "listWebhooks": WEBHOOK_RESPONSE,
    "createWebhook": WEBHOOK_RESPONSE,
    "getWebhook": WEBHOOK_RESPONSE,
    "updateWebhook": WEBHOOK_RESPONSE,
    "listDeliveryLogs": DELIVERY_LOG_RESPONSE,
    "getDeliveryLog": DELIVERY_LOG_RESPONSE,
    "simulateWebhook": {"duration_ms", "error", "http_status", "simulated"},
}

AUTHENTICATED = [
    ("GET", "/api/v1/domains", None),
    ("POST", "/api/v1/domains", {"name": "example.com"}),
    ("GET", "/api/v1/domains/dom_anything", None),
    ("DELETE", "/api/v1/domains/dom_anything", None),
    ("POST", "/api/v1/domains/dom_anything/verify", None),
    ("GET", "/api/v1/smtp-policies", None),
    ("POST", "/api/v1/smtp-policies", {"name": "p"}),
    ("GET", "/api/v1/smtp-policies/pol_anything", None),
    ("PUT", "/api/v1/smtp-policies/pol_anything", {"name": "p"}),
    ("DELETE", "/api/v1/smtp-policies/pol_anything", None),
    ("GET", "/api/v1/webhooks", None),
    ("POST", "/api/v1/webhooks", {"address": "a@example.com", "target_url": "https://example.com/"}),
    ("GET", "/api/v1/webhooks/whk_anything", None),
    ("PUT", "/api/v1/webhooks/whk_anything", {"name": "w"}),
    ("DELETE", "/api/v1/webhooks/whk_anything", None),
    ("GET", "/api/v1/webhooks/whk_anything/logs", None),
    ("GET", "/api/v1/webhooks/whk_anything/logs/wha_anything", None),
    ("POST", "/api/v1/webhooks/whk_anything/simulate", {}),
]


@pytest.fixture(scope="module")
def openapi(runtime: Runtime) -> dict[str, Any]:
    """Built once: generating the document takes a while."""
    document: dict[str, Any] = create_app(runtime=runtime).openapi()
    return document


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind `schema`, through a `$ref` and an array's `items`."""
    if schema.get("type") == "array":
        schema = schema["items"]
    ref = schema.get("$ref")
    if ref:
        found: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return found
    return schema


@pytest.mark.parametrize(("method", "path", "operation_id", "tag"), SEED_002_EMAIL_ENDPOINTS)
def test_every_seed_endpoint_is_documented(
    openapi: dict[str, Any], method: str, path: str, operation_id: str, tag: str
) -> None:
    operation = openapi["paths"][path][method.lower()]
    assert operation["operationId"] == operation_id
    assert operation["tags"] == [tag]
    assert DOCUMENTED_STATUSES[operation_id] <= set(operation["responses"])
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            error = _schema(openapi, response["content"]["application/json"]["schema"])
            assert {"code", "error"} <= set(error["properties"]), (operation_id, status)
    in_path = {(p["name"], p["required"]) for p in operation.get("parameters", []) if p["in"] == "path"}
    assert in_path == {(name, True) for name in re.findall(r"{(\w+)}", path)}
    if operation_id == "listDeliveryLogs":
        in_query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert in_query == {"page", "page_size"}
    if operation_id in REQUEST_FIELDS:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(_schema(openapi, body)["properties"]) - EXTENSIONS == REQUEST_FIELDS[operation_id]
    if operation_id in RESPONSE_FIELDS:
        success = next(s for s in ("200", "201") if s in operation["responses"])
        schema = operation["responses"][success]["content"]["application/json"]["schema"]
        assert (schema.get("type") == "array") is operation_id.startswith("list")
        assert set(_schema(openapi, schema)["properties"]) - EXTENSIONS == RESPONSE_FIELDS[operation_id]


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED)
async def test_anonymous_calls_are_401_with_www_authenticate(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    assert_error(await client.request(method, path, json=body), 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED)
async def test_signed_out_sessions_are_401_everywhere(
    client: httpx.AsyncClient, user: User, method: str, path: str, body: dict[str, object] | None
) -> None:
    assert (await client.request("DELETE", f"{API}/sessions", headers=user.headers)).status_code == 204
    response = await client.request(method, path, json=body, headers=user.headers)
    assert_error(response, 401, "session_revoked")


async def test_api_tokens_work_and_keys_without_an_account_are_403(
    client: httpx.AsyncClient, user: User
) -> None:
    token = await client.post(f"{API}/accounts/me/api-tokens", json={"name": "ci"}, headers=user.headers)
    as_token = {"X-API-Key": token.json()["token"]}
    claimed = await client.post(f"{API}/domains", json={"name": "token.example.com"}, headers=as_token)
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["account_id"] == user.id

    [org] = (await client.get(f"{API}/organizations", headers=user.headers)).json()
    key = await service_key(client, user.headers, org["id"], role="admin")
    as_service = {"Authorization": f"Bearer {key['fullKey']}"}
    for method, path, body in AUTHENTICATED:
        response = await client.request(method, path, json=body, headers=as_service)
        assert_error(response, 403, "account_required")
