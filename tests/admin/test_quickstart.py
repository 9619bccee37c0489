"""Seed 001's quick start, step by step, with the admin key `conduit init` would print."""

from __future__ import annotations

import httpx

from tests.conftest import User, sign_up


async def admin_key(client: httpx.AsyncClient, user: User) -> dict[str, str]:
    created = await client.post("/api/keys", json={"name": "admin"}, headers=user.headers)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def test_quick_start_workflow(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client)
    headers = await admin_key(client, owner)

    r = await client.post("/api/v1/configs", json={"config_name": "my-config"}, headers=headers)
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"message", "data", "timestamp"}
    r = await client.post(
        "/api/v1/configs/my-config/servers",
        headers=headers,
        json={
            "server_name": "github",
            "server_command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "description": "GitHub MCP Server",
            "env": {"GITHUB_TOKEN": "ghp_secret"},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["data"]["env"] == {"GITHUB_TOKEN": "********"}
    assert r.json()["data"]["transport"] == "stdio"
    r = await client.post("/api/v1/projects", json={"project_name": "my-project"}, headers=headers)
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/projects/my-project/assign-config", json={"config_name": "my-config"}, headers=headers
    )
    assert r.json()["data"]["config_name"] == "my-config"
    r = await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=headers)
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/projects/my-project/users", json={"email": "dev@example.com"}, headers=headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/users/dev@example.com/api-keys", json={"project_name": "my-project"}, headers=headers
    )
    assert r.status_code == 201, r.text
    key = r.json()["data"]
    assert key["api_key"].startswith("cnd_live_")
    assert key["project_name"] == "my-project"

    listed = await client.get("/api/v1/users/dev@example.com/api-keys", headers=headers)
    assert [k["api_key"] for k in listed.json()["data"]] == [None]

    config = await client.get("/api/v1/configs/my-config", headers=headers)
    assert config.json()["data"]["projects"] == ["my-project"]
    assert "ghp_secret" not in config.text


async def test_admin_errors_use_the_seed_001_envelope(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client)
    headers = await admin_key(client, owner)
    missing = await client.get("/api/v1/configs/nope", headers=headers)
    assert missing.status_code == 404
    body = missing.json()
    assert body["error"] == "config_not_found"
    assert "nope" in body["detail"]
    assert body["timestamp"].endswith("Z")
    unauthenticated = await client.get("/api/v1/configs")
    assert unauthenticated.status_code == 401
    assert set(unauthenticated.json()) >= {"error", "detail", "timestamp"}


async def test_backup_wipe_restore_is_byte_equal(client: httpx.AsyncClient) -> None:
    import json

    owner = await sign_up(client)
    headers = await admin_key(client, owner)
    await client.post("/api/v1/configs", json={"config_name": "c1"}, headers=headers)
    await client.post(
        "/api/v1/configs/c1/servers",
        headers=headers,
        json={
            "server_name": "time",
            "server_command": "uvx",
            "args": ["mcp-server-time"],
            "env": {"TZ": "UTC"},
            "tools": ["get_current_time"],
        },
    )
    await client.post(
        "/api/v1/configs/c1/servers",
        headers=headers,
        json={"server_name": "web", "url": "http://127.0.0.1:9000/mcp"},
    )
    await client.post("/api/v1/projects", json={"project_name": "p1"}, headers=headers)
    await client.post("/api/v1/projects/p1/assign-config", json={"config_name": "c1"}, headers=headers)
    await client.post(
        "/api/v1/users", json={"email": "dev@example.com", "role": "developer"}, headers=headers
    )
    await client.post("/api/v1/projects/p1/users", json={"email": "dev@example.com"}, headers=headers)

    backup = (
        await client.post(
            "/api/v1/system/backup",
            json={"include_secrets": True, "passphrase": "correct horse battery"},
            headers=headers,
        )
    ).json()["data"]
    assert "UTC" not in json.dumps(backup["configuration"])
    before = json.dumps(backup["configuration"], sort_keys=True)

    for path in ("/api/v1/projects/p1", "/api/v1/configs/c1"):
        assert (await client.delete(path, headers=headers)).status_code == 200
    assert (await client.get("/api/v1/configs", headers=headers)).json()["data"] == []

    wrong = await client.post(
        "/api/v1/system/restore", json={"backup": backup, "passphrase": "wrong passphrase!"}, headers=headers
    )
    assert wrong.status_code == 422
    assert (await client.get("/api/v1/configs", headers=headers)).json()["data"] == []

    restored = await client.post(
        "/api/v1/system/restore",
        json={"backup": backup, "passphrase": "correct horse battery"},
        headers=headers,
    )
    assert restored.status_code == 200, restored.text
    again = (await client.post("/api/v1/system/backup", headers=headers)).json()["data"]
    assert json.dumps(again["configuration"], sort_keys=True) == before
