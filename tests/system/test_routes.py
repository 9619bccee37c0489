from __future__ import annotations

import httpx


async def test_ping_needs_no_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_reports_database_and_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "API server is healthy"
    assert body["data"]["database"] == "ok"
    assert body["timestamp"].endswith("Z")


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "error": "Not found"}


async def test_wrong_method_is_a_json_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/ping")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/ping")
    assert len(response.headers["x-request-id"]) == 16


async def test_openapi_documents_error_bodies(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/accounts"]["post"]
    assert operation["operationId"] == "createAccount"
    assert operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/ping")
    await client.get("/api/v1/accounts/me/api-tokens/key_123")
    text = (await client.get("/metrics")).text
    assert 'conduit_http_requests_total{method="GET",route="/api/v1/ping",status="200"}' in text
    # Templates, not raw paths: ids never become label values.
    assert "key_123" not in text


async def test_nul_characters_are_refused_before_they_reach_the_database(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/v1/dashboard/analytics", params={"organizationId": "org_\x00x"}),
        await client.get("/api/v1/organizations/org_%00x"),
        await client.post(
            "/api/v1/accounts",
            content=b'{"email": "a\\u0000@b.io", "password": "x"}',
            headers={"Content-Type": "application/json"},
        ),
    ):
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_input"
    # A body without NUL goes through untouched, whatever its size.
    created = await client.post("/api/v1/accounts", json={"email": "ok@example.com", "password": "x" * 1000})
    assert (created.status_code, created.json()["code"]) == (422, "password_too_long")


async def test_a_nul_on_an_admin_path_is_refused_in_the_admin_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/configs/bad%00name")
    assert response.status_code == 422
    assert {"error", "detail", "timestamp"} <= set(response.json())
