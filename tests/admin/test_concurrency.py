"""Concurrent requests for the same name: one wins, the others get a 409, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from conduit.kit.runtime import Runtime
from tests.admin.conftest import Org, add_server, assert_envelope, make_org

Request = Callable[[httpx.AsyncClient, Org], Awaitable[httpx.Response]]


async def _setup_project_user(client: httpx.AsyncClient, admin: Org) -> None:
    await client.post("/api/v1/projects", json={"project_name": "web"}, headers=admin.headers)
    await client.post("/api/v1/users", json={"email": "dev@example.com"}, headers=admin.headers)


async def _setup_rename(client: httpx.AsyncClient, admin: Org) -> None:
    for name in ("c0", "c1", "c2", "c3", "c4"):
        await client.post("/api/v1/configs", json={"config_name": name}, headers=admin.headers)


async def _setup_link(client: httpx.AsyncClient, admin: Org) -> None:
    for name in ("a", "b"):
        await client.post("/api/v1/configs", json={"config_name": name}, headers=admin.headers)
    await add_server(client, admin, "a", "time")


CASES: dict[
    str,
    tuple[
        Callable[[httpx.AsyncClient, Org], Awaitable[None]] | None,
        Callable[[int], tuple[str, str, dict[str, object]]],
    ],
] = {
    "create config": (None, lambda n: ("POST", "/api/v1/configs", {"config_name": "same"})),
    "create project": (None, lambda n: ("POST", "/api/v1/projects", {"project_name": "same"})),
    "create user": (None, lambda n: ("POST", "/api/v1/users", {"email": "same@example.com"})),
    "add project user": (
        _setup_project_user,
        lambda n: ("POST", "/api/v1/projects/web/users", {"email": "dev@example.com"}),
    ),
    "rename configs to one name": (
        _setup_rename,
        lambda n: ("PUT", f"/api/v1/configs/c{n}", {"new_config_name": "same"}),
    ),
    "copy to one name": (
        _setup_rename,
        lambda n: ("POST", f"/api/v1/configs/c{n}/copy", {"new_config_name": "same"}),
    ),
    "add a server twice": (
        None,
        lambda n: ("POST", "/api/v1/configs/same/servers", {"server_name": "new", "server_command": "uvx"}),
    ),
    "link a server twice": (
        _setup_link,
        lambda n: (
            "POST",
            "/api/v1/configs/b/servers",
            {"server_name": "time", "server_command": "uvx", "args": ["time"]},
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_one_wins_the_others_conflict(client: httpx.AsyncClient, admin: Org, case: str) -> None:
    setup, request = CASES[case]
    if case == "add a server twice":
        await client.post("/api/v1/configs", json={"config_name": "same"}, headers=admin.headers)
    if setup is not None:
        await setup(client, admin)
    calls = [request(n) for n in range(5)]
    responses = await asyncio.gather(
        *(client.request(method, path, json=body, headers=admin.headers) for method, path, body in calls)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(409) == 4, [r.text for r in responses]
    assert statuses[0] in (200, 201)


async def test_concurrent_restores_never_fail_with_a_500(client: httpx.AsyncClient, admin: Org) -> None:
    for name in ("c0", "c1"):
        await client.post("/api/v1/configs", json={"config_name": name}, headers=admin.headers)
        await add_server(client, admin, name, f"s-{name}")
    await client.post("/api/v1/projects", json={"project_name": "p"}, headers=admin.headers)
    document = assert_envelope(await client.post("/api/v1/system/backup", headers=admin.headers))
    for name in ("c0", "c1"):
        await client.delete(f"/api/v1/configs/{name}", headers=admin.headers)
    await client.delete("/api/v1/projects/p", headers=admin.headers)
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/system/restore", json={"backup": document}, headers=admin.headers)
            for _ in range(4)
        )
    )
    statuses = [r.status_code for r in responses]
    assert 200 in statuses
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    names = [
        c["config_name"] for c in assert_envelope(await client.get("/api/v1/configs", headers=admin.headers))
    ]
    assert names == ["c0", "c1"]


async def test_concurrent_users_never_pass_the_plan(client: httpx.AsyncClient, runtime: Runtime) -> None:
    free = await make_org(client, runtime, plan="free")  # 3 members: the owner and two more
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/users", json={"email": f"u{n}@example.com"}, headers=free.headers)
            for n in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 201, 403, 403, 403]
    assert len(assert_envelope(await client.get("/api/v1/users", headers=free.headers))) == 3
