"""Configurations and their servers: CRUD, rename, copy, transports, masked and sealed secrets."""

from __future__ import annotations

import httpx
import pytest

from conduit.kit.runtime import Runtime
from tests.admin.conftest import Org, add_server, assert_envelope, assert_error, make_org, server_rows


async def create_config(client: httpx.AsyncClient, org: Org, name: str, **extra: object) -> dict[str, object]:
    data: dict[str, object] = assert_envelope(
        await client.post("/api/v1/configs", json={"config_name": name, **extra}, headers=org.headers), 201
    )
    return data


async def config_names(client: httpx.AsyncClient, org: Org) -> list[str]:
    data = assert_envelope(await client.get("/api/v1/configs", headers=org.headers))
    return [c["config_name"] for c in data]


async def test_create_get_list_a_configuration(client: httpx.AsyncClient, admin: Org) -> None:
    assert assert_envelope(await client.get("/api/v1/configs", headers=admin.headers)) == []
    created = await create_config(client, admin, "prod", description="Production tools")
    assert created["config_name"] == "prod"
    assert created["description"] == "Production tools"
    assert created["servers"] == []
    assert created["projects"] == []
    assert str(created["id"]).startswith("cfg_")
    await create_config(client, admin, "dev")

    got = assert_envelope(await client.get("/api/v1/configs/prod", headers=admin.headers))
    assert got["id"] == created["id"]
    assert got["description"] == "Production tools"
    assert await config_names(client, admin) == ["dev", "prod"]


async def test_duplicate_and_missing_configurations(client: httpx.AsyncClient, admin: Org) -> None:
    await create_config(client, admin, "prod")
    assert_error(
        await client.post("/api/v1/configs", json={"config_name": "prod"}, headers=admin.headers),
        409,
        "config_exists",
    )
    for method, path in [
        ("GET", "/api/v1/configs/nope"),
        ("PUT", "/api/v1/configs/nope"),
        ("DELETE", "/api/v1/configs/nope"),
        ("POST", "/api/v1/configs/nope/copy"),
        ("GET", "/api/v1/configs/nope/servers"),
        ("POST", "/api/v1/configs/nope/servers"),
        ("GET", "/api/v1/configs/nope/servers/x"),
        ("PUT", "/api/v1/configs/nope/servers/x"),
        ("DELETE", "/api/v1/configs/nope/servers/x"),
        ("GET", "/api/v1/configs/nope/projects"),
    ]:
        body = {"new_config_name": "other", "server_name": "x", "server_command": "uvx"}
        response = await client.request(method, path, json=body, headers=admin.headers)
        error = assert_error(response, 404, "config_not_found")
        assert "nope" in error["detail"], (method, path)


@pytest.mark.parametrize(
    "name", ["", "-leading-dash", "has space", "slash/inside", "semi;colon", "ü-umlaut", "x" * 201]
)
async def test_invalid_configuration_names_are_422(client: httpx.AsyncClient, admin: Org, name: str) -> None:
    response = await client.post("/api/v1/configs", json={"config_name": name}, headers=admin.headers)
    error = assert_error(response, 422, "validation_error")
    assert error["detail"]["problems"][0]["loc"] == ["body", "config_name"]
    assert await config_names(client, admin) == []


async def test_validation_errors_never_echo_the_input(client: httpx.AsyncClient, admin: Org) -> None:
    await create_config(client, admin, "prod")
    response = await client.post(
        "/api/v1/configs/prod/servers",
        json={"server_name": "s", "server_command": "x", "env": {"TOKEN": 12345678901234}},
        headers=admin.headers,
    )
    assert_error(response, 422)
    assert "12345678901234" not in response.text


async def test_missing_body_and_wrong_types_are_422(client: httpx.AsyncClient, admin: Org) -> None:
    assert_error(await client.post("/api/v1/configs", headers=admin.headers), 422)
    assert_error(await client.post("/api/v1/configs", json={"config_name": 5}, headers=admin.headers), 422)
    assert_error(
        await client.post(
            "/api/v1/configs",
            content=b"{not json",
            headers={**admin.headers, "Content-Type": "application/json"},
        ),
        422,
    )


async def test_rename_a_configuration(client: httpx.AsyncClient, admin: Org) -> None:
    await create_config(client, admin, "old")
    await create_config(client, admin, "taken")
    await add_server(client, admin, "old", "time")
    assert_envelope(
        await client.post("/api/v1/projects", json={"project_name": "p"}, headers=admin.headers), 201
    )
    await client.post("/api/v1/projects/p/assign-config", json={"config_name": "old"}, headers=admin.headers)

    assert_error(
        await client.put("/api/v1/configs/old", json={"new_config_name": "taken"}, headers=admin.headers),
        409,
        "config_exists",
    )
    assert_error(
        await client.put("/api/v1/configs/old", json={"new_config_name": "bad name"}, headers=admin.headers),
        422,
    )
    renamed = assert_envelope(
        await client.put("/api/v1/configs/old", json={"new_config_name": "new"}, headers=admin.headers)
    )
    assert renamed["config_name"] == "new"
    assert [s["server_name"] for s in renamed["servers"]] == ["time"]
    assert renamed["projects"] == ["p"]
    assert_error(await client.get("/api/v1/configs/old", headers=admin.headers), 404, "config_not_found")
    project = assert_envelope(await client.get("/api/v1/projects/p", headers=admin.headers))
    assert project["config_name"] == "new"


async def test_describe_a_configuration_without_renaming_it(client: httpx.AsyncClient, admin: Org) -> None:
    await create_config(client, admin, "prod", description="before")
    updated = assert_envelope(
        await client.put("/api/v1/configs/prod", json={"description": "after"}, headers=admin.headers)
    )
    assert updated["config_name"] == "prod"
    assert updated["description"] == "after"
    same = assert_envelope(
        await client.put("/api/v1/configs/prod", json={"new_config_name": "prod"}, headers=admin.headers)
    )
    assert same["description"] == "after"


async def test_copy_a_configuration(client: httpx.AsyncClient, admin: Org, runtime: Runtime) -> None:
    await create_config(client, admin, "base", description="shared")
    await add_server(
        client,
        admin,
        "base",
        "time",
        server_command="uvx",
        args=["mcp-server-time"],
        tools=["get_current_time"],
        env={"TZ": "UTC"},
    )
    copy = assert_envelope(
        await client.post(
            "/api/v1/configs/base/copy", json={"new_config_name": "copy"}, headers=admin.headers
        ),
        201,
    )
    assert copy["config_name"] == "copy"
    assert copy["description"] == "shared"
    assert [(s["server_name"], s["tools"], s["env"]) for s in copy["servers"]] == [
        ("time", ["get_current_time"], {"TZ": "********"})
    ]
    assert_error(
        await client.post(
            "/api/v1/configs/base/copy", json={"new_config_name": "copy"}, headers=admin.headers
        ),
        409,
        "config_exists",
    )
    assert_error(
        await client.post("/api/v1/configs/base/copy", json={"new_config_name": ""}, headers=admin.headers),
        422,
    )
    # The copy shares the server: deleting the original keeps it, deleting both removes it.
    assert_envelope(await client.delete("/api/v1/configs/base", headers=admin.headers))
    assert set(await server_rows(runtime, admin.id)) == {"time"}
    copied = assert_envelope(await client.get("/api/v1/configs/copy", headers=admin.headers))
    assert copied["servers"][0]["tools"] == ["get_current_time"]
    assert_envelope(await client.delete("/api/v1/configs/copy", headers=admin.headers))
    assert await server_rows(runtime, admin.id) == {}


async def test_delete_a_configuration_leaves_its_projects_without_one(
    client: httpx.AsyncClient, admin: Org
) -> None:
    await create_config(client, admin, "prod")
    await client.post("/api/v1/projects", json={"project_name": "p"}, headers=admin.headers)
    await client.post("/api/v1/projects/p/assign-config", json={"config_name": "prod"}, headers=admin.headers)
    deleted = assert_envelope(await client.delete("/api/v1/configs/prod", headers=admin.headers))
    assert deleted == {"config_name": "prod"}
    assert await config_names(client, admin) == []
    assert_error(await client.delete("/api/v1/configs/prod", headers=admin.headers), 404, "config_not_found")
    project = assert_envelope(await client.get("/api/v1/projects/p", headers=admin.headers))
    assert project["config_name"] is None
    assert assert_envelope(await client.get("/api/v1/projects/p/config", headers=admin.headers)) is None


async def test_config_projects(client: httpx.AsyncClient, admin: Org) -> None:
    await create_config(client, admin, "prod")
    assert assert_envelope(await client.get("/api/v1/configs/prod/projects", headers=admin.headers)) == []
    for name in ("b", "a"):
        await client.post("/api/v1/projects", json={"project_name": name}, headers=admin.headers)
        await client.post(
            f"/api/v1/projects/{name}/assign-config", json={"config_name": "prod"}, headers=admin.headers
        )
    assert assert_envelope(await client.get("/api/v1/configs/prod/projects", headers=admin.headers)) == [
        "a",
        "b",
    ]


# --- servers in a configuration ---------------------------------------------------------------


async def test_add_a_stdio_server(client: httpx.AsyncClient, admin: Org, runtime: Runtime) -> None:
    await create_config(client, admin, "prod")
    server = await add_server(
        client,
        admin,
        "prod",
        "github",
        server_command="npx",
        args=["-y", "@modelcontextprotocol/server-github"],
        description="GitHub MCP Server",
        env={"GITHUB_TOKEN": "ghp_topsecret123", "GITHUB_HOST": "github.example.com"},
    )
    assert server["server_name"] == "github"
    assert server["transport"] == "stdio"
    assert server["server_command"] == "npx"
    assert server["args"] == ["-y", "@modelcontextprotocol/server-github"]
    assert server["url"] is None
    assert server["description"] == "GitHub MCP Server"
    assert server["env"] == {"GITHUB_TOKEN": "********", "GITHUB_HOST": "********"}
    assert server["tools"] is None
    assert server["server_id"].startswith("srv_")

    for response in [
        await client.get("/api/v1/configs/prod", headers=admin.headers),
        await client.get("/api/v1/configs", headers=admin.headers),
        await client.get("/api/v1/configs/prod/servers", headers=admin.headers),
        await client.get("/api/v1/configs/prod/servers/github", headers=admin.headers),
        await client.post("/api/v1/system/backup", headers=admin.headers),
    ]:
        assert response.status_code == 200
        assert "ghp_topsecret123" not in response.text
        assert "github.example.com" not in response.text
    row = (await server_rows(runtime, admin.id))["github"]
    assert row.env_sealed
    assert "ghp_topsecret123" not in row.env_sealed
    assert "GITHUB_TOKEN" not in row.env_sealed


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("https://mcp.example.com/mcp", "streamable_http"),
        ("http://127.0.0.1:9000/sse", "sse"),
        ("https://mcp.example.com/sse/", "sse"),
        ("https://mcp.example.com/sse-like/mcp", "streamable_http"),
    ],
)
async def test_add_a_url_server(client: httpx.AsyncClient, admin: Org, url: str, transport: str) -> None:
    await create_config(client, admin, "prod")
    server = await add_server(client, admin, "prod", "remote", url=url)
    assert (server["url"], server["transport"]) == (url, transport)
    assert server["server_command"] is None
    assert server["args"] is None
    assert server["env"] == {}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"server_name": "s"}, "invalid_server_target"),
        (
            {"server_name": "s", "server_command": "npx", "url": "https://x.example.com/mcp"},
            "invalid_server_target",
        ),
        ({"server_name": "s", "url": "ftp://x.example.com/mcp"}, "invalid_url"),
        ({"server_name": "s", "url": "not a url"}, "invalid_url"),
        ({"server_name": "s", "server_command": "npx", "env": {"BAD-NAME": "x"}}, "invalid_env"),
        ({"server_name": "bad name", "server_command": "npx"}, "validation_error"),
        ({"server_name": "", "server_command": "npx"}, "validation_error"),
        ({"server_command": "npx"}, "validation_error"),
        ({"server_name": "s", "server_command": "npx", "args": "not-a-list"}, "validation_error"),
    ],
)
async def test_invalid_servers_are_422(
    client: httpx.AsyncClient, admin: Org, runtime: Runtime, body: dict[str, object], code: str
) -> None:
    await create_config(client, admin, "prod")
    response = await client.post("/api/v1/configs/prod/servers", json=body, headers=admin.headers)
    assert_error(response, 422, code)
    assert await server_rows(runtime, admin.id) == {}


async def test_same_server_in_two_configurations(
    client: httpx.AsyncClient, admin: Org, runtime: Runtime
) -> None:
    await create_config(client, admin, "a")
    await create_config(client, admin, "b")
    definition = {"server_command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}}
    first = await add_server(client, admin, "a", "time", **definition)
    second = await add_server(client, admin, "b", "time", **definition, tools=["get_current_time"])
    assert first["server_id"] == second["server_id"]
    assert second["tools"] == ["get_current_time"]
    assert list(await server_rows(runtime, admin.id)) == ["time"]

    assert_error(
        await client.post(
            "/api/v1/configs/a/servers", json={"server_name": "time", **definition}, headers=admin.headers
        ),
        409,
        "config_server_exists",
    )


@pytest.mark.parametrize(
    "different",
    [
        {"server_command": "npx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
        {"server_command": "uvx", "args": ["mcp-server-time", "--local"], "env": {"TZ": "UTC"}},
        {"server_command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "Europe/Paris"}},
        {"server_command": "uvx", "args": ["mcp-server-time"]},
        {"url": "https://time.example.com/mcp"},
    ],
)
async def test_same_name_with_another_definition_is_409(
    client: httpx.AsyncClient, admin: Org, runtime: Runtime, different: dict[str, object]
) -> None:
    await create_config(client, admin, "a")
    await create_config(client, admin, "b")
    await add_server(
        client, admin, "a", "time", server_command="uvx", args=["mcp-server-time"], env={"TZ": "UTC"}
    )
    response = await client.post(
        "/api/v1/configs/b/servers", json={"server_name": "time", **different}, headers=admin.headers
    )
    assert_error(response, 409, "server_exists")
    assert assert_envelope(await client.get("/api/v1/configs/b/servers", headers=admin.headers)) == []
    assert "Europe/Paris" not in response.text
    assert "UTC" not in response.text


async def test_get_and_list_servers(client: httpx.AsyncClient, admin: Org) -> None:
    await create_config(client, admin, "prod")
    await add_server(client, admin, "prod", "zeta")
    await add_server(client, admin, "prod", "alpha", url="https://alpha.example.com/mcp")
    listed = assert_envelope(await client.get("/api/v1/configs/prod/servers", headers=admin.headers))
    assert [s["server_name"] for s in listed] == ["alpha", "zeta"]
    got = assert_envelope(await client.get("/api/v1/configs/prod/servers/alpha", headers=admin.headers))
    assert got["url"] == "https://alpha.example.com/mcp"
    assert_error(
        await client.get("/api/v1/configs/prod/servers/missing", headers=admin.headers),
        404,
        "config_server_not_found",
    )


async def test_update_a_server(client: httpx.AsyncClient, admin: Org, runtime: Runtime) -> None:
    await create_config(client, admin, "a")
    await create_config(client, admin, "b")
    await add_server(
        client,
        admin,
        "a",
        "tool",
        server_command="uvx",
        args=["v1"],
        env={"TOKEN": "old-secret"},
        description="first",
        tools=["x"],
    )
    await add_server(
        client, admin, "b", "tool", server_command="uvx", args=["v1"], env={"TOKEN": "old-secret"}
    )
    path = "/api/v1/configs/a/servers/tool"

    described = assert_envelope(await client.put(path, json={"description": "second"}, headers=admin.headers))
    assert described["description"] == "second"
    assert (described["server_command"], described["args"], described["tools"]) == ("uvx", ["v1"], ["x"])
    assert described["env"] == {"TOKEN": "********"}

    changed = assert_envelope(
        await client.put(
            path,
            json={"args": ["v2"], "env": {"TOKEN": "new-secret", "MORE": "y"}, "tools": None},
            headers=admin.headers,
        )
    )
    assert changed["args"] == ["v2"]
    assert changed["tools"] is None
    assert changed["env"] == {"TOKEN": "********", "MORE": "********"}
    assert "new-secret" not in str(changed)
    row = (await server_rows(runtime, admin.id))["tool"]
    assert row.env_sealed
    assert "new-secret" not in row.env_sealed

    # The definition is shared; the tool allowlist is per configuration.
    in_b = assert_envelope(await client.get("/api/v1/configs/b/servers/tool", headers=admin.headers))
    assert in_b["args"] == ["v2"]
    assert in_b["env"] == {"TOKEN": "********", "MORE": "********"}

    to_url = assert_envelope(
        await client.put(path, json={"url": "https://tool.example.com/sse"}, headers=admin.headers)
    )
    assert (to_url["transport"], to_url["url"], to_url["server_command"], to_url["args"]) == (
        "sse",
        "https://tool.example.com/sse",
        None,
        None,
    )
    to_http = assert_envelope(
        await client.put(path, json={"url": "https://tool.example.com/mcp"}, headers=admin.headers)
    )
    assert to_http["transport"] == "streamable_http"
    back = assert_envelope(
        await client.put(path, json={"server_command": "npx", "args": ["tool"]}, headers=admin.headers)
    )
    assert (back["transport"], back["url"], back["server_command"], back["args"]) == (
        "stdio",
        None,
        "npx",
        ["tool"],
    )

    assert_error(
        await client.put(
            path, json={"server_command": "npx", "url": "https://x.example.com/mcp"}, headers=admin.headers
        ),
        422,
        "invalid_server_target",
    )
    assert_error(
        await client.put(path, json={"url": "gopher://x"}, headers=admin.headers), 422, "invalid_url"
    )
    assert_error(
        await client.put(path, json={"env": {"1BAD": "x"}}, headers=admin.headers), 422, "invalid_env"
    )
    assert_error(
        await client.put(
            "/api/v1/configs/a/servers/missing", json={"description": "x"}, headers=admin.headers
        ),
        404,
        "config_server_not_found",
    )
    unchanged = assert_envelope(await client.get(path, headers=admin.headers))
    assert (unchanged["transport"], unchanged["server_command"]) == ("stdio", "npx")


async def test_remove_a_server(client: httpx.AsyncClient, admin: Org, runtime: Runtime) -> None:
    await create_config(client, admin, "a")
    await create_config(client, admin, "b")
    await add_server(client, admin, "a", "shared")
    await add_server(client, admin, "b", "shared")
    await add_server(client, admin, "a", "alone")

    removed = assert_envelope(await client.delete("/api/v1/configs/a/servers/alone", headers=admin.headers))
    assert removed == {"server_name": "alone"}
    assert set(await server_rows(runtime, admin.id)) == {"shared"}

    assert_envelope(await client.delete("/api/v1/configs/a/servers/shared", headers=admin.headers))
    assert set(await server_rows(runtime, admin.id)) == {"shared"}, "still used by configuration b"
    assert assert_envelope(await client.get("/api/v1/configs/a/servers", headers=admin.headers)) == []
    assert_error(
        await client.delete("/api/v1/configs/a/servers/shared", headers=admin.headers),
        404,
        "config_server_not_found",
    )
    assert_envelope(await client.delete("/api/v1/configs/b/servers/shared", headers=admin.headers))
    assert await server_rows(runtime, admin.id) == {}

    # Removed for good: the name can be registered again with another definition.
    again = await add_server(client, admin, "a", "shared", url="https://shared.example.com/mcp")
    assert again["transport"] == "streamable_http"


async def test_free_plan_caps_servers_with_a_403(client: httpx.AsyncClient, runtime: Runtime) -> None:
    free = await make_org(client, runtime, plan="free")
    await create_config(client, free, "prod")
    for n in range(3):
        await add_server(client, free, "prod", f"s{n}")
    response = await client.post(
        "/api/v1/configs/prod/servers",
        json={"server_name": "s3", "server_command": "uvx"},
        headers=free.headers,
    )
    body = assert_error(response, 403, "plan_limit_reached")
    assert body["limit"] == 3
    assert body["used"] == 3
    assert body["upgrade_url"].endswith("/api/v1/plans")
