"""System: health, backup (with and without secrets) and restore, which is all-or-nothing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conduit.kit.runtime import Runtime
from conduit.servers import service as servers
from tests.admin.conftest import Org, add_server, assert_envelope, assert_error, bearer, make_org, server_rows

PASSPHRASE = "correct horse battery"


async def test_health(client: httpx.AsyncClient, admin: Org, runtime: Runtime) -> None:
    data = assert_envelope(await client.get("/api/v1/system/health", headers=admin.headers))
    assert data["database"] == "ok"
    assert data["backend"] == runtime.db.engine.dialect.name
    assert data["jobs_pending"] >= 0
    assert data["jobs_dead"] >= 0
    assert data["organization"] == {
        "id": admin.id,
        "name": data["organization"]["name"],
        "plan": "enterprise",
    }


async def populate(client: httpx.AsyncClient, org: Org) -> None:
    """Two configurations sharing a server, two projects, two users, one server with secrets."""
    h = org.headers
    for name in ("prod", "staging"):
        await client.post(
            "/api/v1/configs", json={"config_name": name, "description": f"{name} tools"}, headers=h
        )
    await add_server(
        client,
        org,
        "prod",
        "github",
        server_command="npx",
        args=["-y", "server-github"],
        env={"GITHUB_TOKEN": "ghp_backupsecret", "GITHUB_ORG": "acme-private"},
        description="GitHub",
    )
    await add_server(client, org, "prod", "web", url="https://web.example.com/sse", tools=["fetch"])
    await add_server(client, org, "staging", "web", url="https://web.example.com/sse")
    for name, config in (("site", "prod"), ("lab", None)):
        await client.post("/api/v1/projects", json={"project_name": name}, headers=h)
        if config:
            await client.post(
                f"/api/v1/projects/{name}/assign-config", json={"config_name": config}, headers=h
            )
    await client.post("/api/v1/users", json={"email": "dev@example.com", "role": "developer"}, headers=h)
    await client.post("/api/v1/users", json={"email": "view@example.com"}, headers=h)
    await client.post("/api/v1/projects/site/users", json={"email": "dev@example.com"}, headers=h)
    await client.post("/api/v1/projects/lab/users", json={"email": "view@example.com"}, headers=h)


async def backup(client: httpx.AsyncClient, org: Org, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_envelope(
        await client.post("/api/v1/system/backup", json=body or None, headers=org.headers)
    )
    return data


async def snapshot(client: httpx.AsyncClient, org: Org) -> str:
    """Everything the admin API shows, as one string."""
    parts = {
        path: assert_envelope(await client.get(path, headers=org.headers))
        for path in ("/api/v1/configs", "/api/v1/projects", "/api/v1/users")
    }
    return json.dumps(parts, sort_keys=True, default=str)


async def test_backup_without_secrets(client: httpx.AsyncClient, admin: Org) -> None:
    await populate(client, admin)
    response = await client.post("/api/v1/system/backup", headers=admin.headers)
    document = assert_envelope(response)
    assert "ghp_backupsecret" not in response.text
    assert "acme-private" not in response.text
    assert document["format"] == "conduit-backup"
    assert document["version"] == 1
    assert document["secrets"] is None
    assert document["organization"]["id"] == admin.id
    conf = document["configuration"]
    github = next(s for s in conf["servers"] if s["name"] == "github")
    assert github["env_names"] == ["GITHUB_ORG", "GITHUB_TOKEN"]
    assert (github["command"], github["args"], github["transport"]) == (
        "npx",
        ["-y", "server-github"],
        "stdio",
    )
    web = next(s for s in conf["servers"] if s["name"] == "web")
    assert (web["upstream_url"], web["transport"], web["env_names"]) == (
        "https://web.example.com/sse",
        "sse",
        [],
    )
    assert [(c["name"], [s["server"] for s in c["servers"]]) for c in conf["configs"]] == [
        ("prod", ["github", "web"]),
        ("staging", ["web"]),
    ]
    assert conf["configs"][0]["servers"][1]["tools"] == ["fetch"]
    assert [(p["name"], p["config"], p["users"]) for p in conf["projects"]] == [
        ("lab", None, ["view@example.com"]),
        ("site", "prod", ["dev@example.com"]),
    ]
    assert {(u["email"], u["role"]) for u in conf["users"]} == {
        (admin.owner.email, "admin"),
        ("dev@example.com", "developer"),
        ("view@example.com", "viewer"),
    }
    # include_secrets false with a passphrase: still no secrets.
    again = await backup(client, admin, include_secrets=False, passphrase=PASSPHRASE)
    assert again["secrets"] is None


async def test_backup_with_secrets_needs_a_passphrase(client: httpx.AsyncClient, admin: Org) -> None:
    await populate(client, admin)
    assert_error(
        await client.post("/api/v1/system/backup", json={"include_secrets": True}, headers=admin.headers),
        422,
        "passphrase_required",
    )
    short = await client.post(
        "/api/v1/system/backup", json={"include_secrets": True, "passphrase": "short"}, headers=admin.headers
    )
    assert_error(short, 422, "validation_error")
    response = await client.post(
        "/api/v1/system/backup",
        json={"include_secrets": True, "passphrase": PASSPHRASE},
        headers=admin.headers,
    )
    document = assert_envelope(response)
    assert "ghp_backupsecret" not in response.text
    assert "acme-private" not in response.text
    assert document["secrets"]["encryption"].endswith("aes-256-gcm")


async def test_restore_round_trip_with_secrets(
    client: httpx.AsyncClient, admin: Org, runtime: Runtime
) -> None:
    await populate(client, admin)
    document = await backup(client, admin, include_secrets=True, passphrase=PASSPHRASE)
    before = await snapshot(client, admin)
    for path in (
        "/api/v1/projects/site",
        "/api/v1/projects/lab",
        "/api/v1/configs/prod",
        "/api/v1/configs/staging",
    ):
        assert_envelope(await client.delete(path, headers=admin.headers))
    await client.post("/api/v1/configs", json={"config_name": "stray"}, headers=admin.headers)

    assert_error(
        await client.post("/api/v1/system/restore", json={"backup": document}, headers=admin.headers),
        422,
        "passphrase_required",
    )
    restored = assert_envelope(
        await client.post(
            "/api/v1/system/restore",
            json={"backup": document, "passphrase": PASSPHRASE},
            headers=admin.headers,
        )
    )
    assert restored["servers"] == 2
    assert restored["configs"] == 2
    assert restored["projects"] == 2
    assert restored["users"] == 3
    assert _without_ids(await snapshot(client, admin)) == _without_ids(before)
    github = (await server_rows(runtime, admin.id))["github"]
    assert servers.unseal_env(runtime.keyring, github) == {
        "GITHUB_TOKEN": "ghp_backupsecret",
        "GITHUB_ORG": "acme-private",
    }
    again = await backup(client, admin)
    assert json.dumps(again["configuration"], sort_keys=True) == json.dumps(
        document["configuration"], sort_keys=True
    )


def _without_ids(snapshot: str) -> Any:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip(v)
                for k, v in value.items()
                if k not in ("id", "server_id", "created_at", "updated_at")
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(snapshot))


async def test_restore_without_secrets_keeps_the_current_values(
    client: httpx.AsyncClient, admin: Org, runtime: Runtime
) -> None:
    await populate(client, admin)
    document = await backup(client, admin)
    await client.delete("/api/v1/configs/staging", headers=admin.headers)
    restored = assert_envelope(
        await client.post("/api/v1/system/restore", json={"backup": document}, headers=admin.headers)
    )
    assert restored["env_missing"] == []
    github = (await server_rows(runtime, admin.id))["github"]
    assert servers.unseal_env(runtime.keyring, github)["GITHUB_TOKEN"] == "ghp_backupsecret"


async def test_restore_elsewhere_without_secrets_names_what_is_missing(
    client: httpx.AsyncClient, admin: Org, other: Org, runtime: Runtime
) -> None:
    await populate(client, admin)
    document = await backup(client, admin)
    restored = assert_envelope(
        await client.post("/api/v1/system/restore", json={"backup": document}, headers=other.headers)
    )
    assert restored["env_missing"] == ["github: GITHUB_ORG", "github: GITHUB_TOKEN"]
    github = (await server_rows(runtime, other.id))["github"]
    assert servers.unseal_env(runtime.keyring, github) == {}


async def test_project_keys_survive_a_restore(client: httpx.AsyncClient, admin: Org) -> None:
    await populate(client, admin)
    created = assert_envelope(
        await client.post(
            "/api/v1/users/dev@example.com/api-keys", json={"project_name": "site"}, headers=admin.headers
        ),
        201,
    )
    document = await backup(client, admin)
    assert_envelope(
        await client.post("/api/v1/system/restore", json={"backup": document}, headers=admin.headers)
    )
    assert (await client.get("/api/v1/cli/whoami", headers=bearer(created["api_key"]))).status_code == 200
    listed = assert_envelope(
        await client.get("/api/v1/users/dev@example.com/api-keys", headers=admin.headers)
    )
    assert [(k["key_id"], k["project_name"]) for k in listed] == [(created["key_id"], "site")]


async def test_restore_revokes_keys_of_projects_and_members_it_drops(
    client: httpx.AsyncClient, admin: Org
) -> None:
    await populate(client, admin)
    document = await backup(client, admin)
    await client.post("/api/v1/projects/lab/users", json={"email": "dev@example.com"}, headers=admin.headers)
    await client.post("/api/v1/projects", json={"project_name": "extra"}, headers=admin.headers)
    await client.post(
        "/api/v1/projects/extra/users", json={"email": "dev@example.com"}, headers=admin.headers
    )
    keys = {}
    for project in ("site", "lab", "extra"):
        created = await client.post(
            "/api/v1/users/dev@example.com/api-keys", json={"project_name": project}, headers=admin.headers
        )
        keys[project] = assert_envelope(created, 201)["api_key"]
    assert_envelope(
        await client.post("/api/v1/system/restore", json={"backup": document}, headers=admin.headers)
    )
    statuses = {
        project: (await client.get("/api/v1/cli/whoami", headers=bearer(key))).status_code
        for project, key in keys.items()
    }
    assert statuses == {"site": 200, "lab": 401, "extra": 401}


Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _append(path: list[Any], value: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path:
            target = target[step]
        target.append(value)

    return mutate


def _server(**fields: Any) -> dict[str, Any]:
    return {"name": "extra", "slug": "extra", "transport": "stdio", "command": "uvx", **fields}


INVALID: list[tuple[str, Mutation, int]] = [
    (
        "unknown server in a config",
        _append(["configuration", "configs", 0, "servers"], {"server": "ghost"}),
        422,
    ),
    ("unknown config in a project", _set(["configuration", "projects", 0, "config"], "ghost"), 422),
    (
        "unknown user in a project",
        _append(["configuration", "projects", 0, "users"], "ghost@example.com"),
        422,
    ),
    ("unknown role", _set(["configuration", "users", 0, "role"], "owner"), 422),
    ("duplicate server", _append(["configuration", "servers"], _server(name="github", slug="github-2")), 422),
    ("duplicate slug", _append(["configuration", "servers"], _server(slug="github")), 422),
    ("duplicate config", _append(["configuration", "configs"], {"name": "prod"}), 422),
    ("duplicate project", _append(["configuration", "projects"], {"name": "site"}), 422),
    (
        "server with command and URL",
        _append(["configuration", "servers"], _server(upstream_url="https://x.example.com/mcp")),
        422,
    ),
    (
        "server with a bad URL",
        _append(
            ["configuration", "servers"],
            _server(transport="streamable_http", command=None, upstream_url="file:///etc"),
        ),
        422,
    ),
    ("server with a bad slug", _append(["configuration", "servers"], _server(slug="../../etc")), 422),
    ("bad transport", _set(["configuration", "servers", 0, "transport"], "carrier-pigeon"), 422),
    ("bad env name", _set(["configuration", "servers", 0, "env_names"], ["NOT-VALID"]), 422),
    ("bad config name", _set(["configuration", "configs", 0, "name"], "no good"), 422),
    ("bad project name", _set(["configuration", "projects", 0, "name"], "no/good"), 422),
    ("missing configuration", _set(["configuration"], None), 422),
    ("configs not a list", _set(["configuration", "configs"], {"prod": {}}), 422),
    ("wrong format", _set(["format"], "something-else"), 400),
    ("wrong version", _set(["version"], 2), 400),
    ("last admin demoted", lambda d: [u.update(role="viewer") for u in d["configuration"]["users"]], 409),
]


@pytest.mark.parametrize(("case", "mutate", "status"), INVALID, ids=[case for case, _, _ in INVALID])
async def test_an_invalid_restore_changes_nothing(
    client: httpx.AsyncClient, admin: Org, runtime: Runtime, case: str, mutate: Mutation, status: int
) -> None:
    await populate(client, admin)
    document = await backup(client, admin)
    await client.delete("/api/v1/projects/lab", headers=admin.headers)
    await client.post("/api/v1/configs", json={"config_name": "newer"}, headers=admin.headers)
    before = await snapshot(client, admin)
    sealed_before = {n: s.env_sealed for n, s in (await server_rows(runtime, admin.id)).items()}

    broken = copy.deepcopy(document)
    mutate(broken)
    response = await client.post("/api/v1/system/restore", json={"backup": broken}, headers=admin.headers)
    assert_error(response, status)
    assert await snapshot(client, admin) == before, case
    assert {n: s.env_sealed for n, s in (await server_rows(runtime, admin.id)).items()} == sealed_before


async def test_a_wrong_passphrase_changes_nothing(client: httpx.AsyncClient, admin: Org) -> None:
    await populate(client, admin)
    document = await backup(client, admin, include_secrets=True, passphrase=PASSPHRASE)
    await client.delete("/api/v1/configs/staging", headers=admin.headers)
    before = await snapshot(client, admin)
    response = await client.post(
        "/api/v1/system/restore",
        json={"backup": document, "passphrase": "not the passphrase"},
        headers=admin.headers,
    )
    assert_error(response, 422, "wrong_passphrase")
    tampered = copy.deepcopy(document)
    tampered["secrets"]["data"] = "AAAA" + tampered["secrets"]["data"][4:]
    response = await client.post(
        "/api/v1/system/restore", json={"backup": tampered, "passphrase": PASSPHRASE}, headers=admin.headers
    )
    assert_error(response, 422, "wrong_passphrase")
    assert await snapshot(client, admin) == before


async def test_restore_body_errors(client: httpx.AsyncClient, admin: Org) -> None:
    assert_error(await client.post("/api/v1/system/restore", json={}, headers=admin.headers), 422)
    assert_error(
        await client.post("/api/v1/system/restore", json={"backup": "x"}, headers=admin.headers), 422
    )
    assert_error(
        await client.post("/api/v1/system/restore", json={"backup": {}}, headers=admin.headers),
        400,
        "invalid_backup",
    )


async def test_restore_respects_the_plan(client: httpx.AsyncClient, admin: Org, runtime: Runtime) -> None:
    await populate(client, admin)
    for n in range(3):
        await add_server(client, admin, "staging", f"extra{n}")
    await client.post("/api/v1/users", json={"email": "more@example.com"}, headers=admin.headers)
    document = await backup(client, admin)
    free = await make_org(client, runtime, plan="free")
    response = await client.post("/api/v1/system/restore", json={"backup": document}, headers=free.headers)
    assert_error(response, 403, "plan_limit_reached")
    assert assert_envelope(await client.get("/api/v1/configs", headers=free.headers)) == []

    # Five servers fit no free plan; four users neither, even with few servers.
    conf = document["configuration"]
    conf["servers"] = [s for s in conf["servers"] if s["name"] in ("github", "web")]
    for config in document["configuration"]["configs"]:
        config["servers"] = [s for s in config["servers"] if s["server"] in ("github", "web")]
    response = await client.post("/api/v1/system/restore", json={"backup": document}, headers=free.headers)
    assert_error(response, 403, "plan_limit_reached")
    users = assert_envelope(await client.get("/api/v1/users", headers=free.headers))
    assert [u["email"] for u in users] == [free.owner.email]
