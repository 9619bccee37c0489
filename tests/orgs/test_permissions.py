"""The written permission matrix, enforced: each role x each guarded action, as a member and as a
service key. The expected outcome is read from `MATRIX`, so the test and the matrix cannot drift;
each refused action is also shown to have changed nothing, and each allowed one to have worked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conduit.identity.models import Account
from conduit.kit.runtime import Runtime
from conduit.orgs import service as orgs
from conduit.orgs.permissions import MATRIX, PERMISSIONS, ROLE_KEYS
from tests.conftest import User, sign_up
from tests.orgs.conftest import (
    API,
    Team,
    accept,
    assert_error,
    bearer,
    create_org,
    invite,
    join,
    link_token,
    new_team,
    service_key,
    set_plan,
    unique_email,
)


@dataclass
class Scene:
    client: httpx.AsyncClient
    team: Team
    target_id: str  # a viewer the caller may try to change or remove
    invitation_id: str  # a pending invitation
    victim_key_id: str  # a service key the caller may try to revoke

    @property
    def path(self) -> str:
        return self.team.path

    async def owner_get(self, suffix: str = "") -> httpx.Response:
        return await self.client.get(f"{self.path}{suffix}", headers=self.team.owner.headers)


Observe = Callable[[Scene], Awaitable[Any]]


async def org_name(scene: Scene) -> Any:
    return (await scene.owner_get()).json()["name"]


async def org_exists(scene: Scene) -> Any:
    return (await scene.owner_get()).status_code


async def target_role(scene: Scene) -> Any:
    return {m["principalId"]: m["role"] for m in (await scene.owner_get("/members")).json()}.get(
        scene.target_id
    )


async def invitations(scene: Scene) -> Any:
    return sorted((i["id"], i["lastSentAt"]) for i in (await scene.owner_get("/invitations")).json())


async def service_keys(scene: Scene) -> Any:
    return sorted(k["id"] for k in (await scene.owner_get("/api-keys")).json())


@dataclass(frozen=True)
class Action:
    name: str
    permission: str
    method: str
    path: Callable[[Scene], str]
    ok: int
    body: Callable[[Scene], Any] | None = None
    observe: Observe | None = None  # what the owner sees change when, and only when, it is allowed


ACTIONS = (
    Action("get org", "org:read", "GET", lambda s: s.path, 200),
    Action(
        "update org", "org:update", "PATCH", lambda s: s.path, 200, lambda s: {"name": "Renamed"}, org_name
    ),
    Action("delete org", "org:delete", "DELETE", lambda s: s.path, 204, observe=org_exists),
    Action("list members", "members:read", "GET", lambda s: f"{s.path}/members", 200),
    Action(
        "change role",
        "members:manage",
        "PATCH",
        lambda s: f"{s.path}/members/{s.target_id}",
        200,
        lambda s: {"role": "developer"},
        target_role,
    ),
    Action(
        "remove member",
        "members:manage",
        "DELETE",
        lambda s: f"{s.path}/members/{s.target_id}",
        204,
        observe=target_role,
    ),
    Action("list invitations", "invitations:read", "GET", lambda s: f"{s.path}/invitations", 200),
    Action(
        "create invitation",
        "invitations:manage",
        "POST",
        lambda s: f"{s.path}/invitations",
        201,
        lambda s: {"email": "new-hire@example.com", "role": "viewer"},
        invitations,
    ),
    Action(
        "resend invitation",
        "invitations:manage",
        "POST",
        lambda s: f"{s.path}/invitations/{s.invitation_id}/resend",
        200,
        observe=invitations,
    ),
    Action(
        "revoke invitation",
        "invitations:manage",
        "POST",
        lambda s: f"{s.path}/invitations/{s.invitation_id}/revoke",
        200,
        lambda s: {"reason": "no longer needed"},
        invitations,
    ),
    Action("list service keys", "api_keys:read", "GET", lambda s: f"{s.path}/api-keys", 200),
    Action("list key roles", "org:read", "GET", lambda s: f"{s.path}/api-keys/roles", 200),
    Action(
        "create service key",
        "api_keys:manage",
        "POST",
        lambda s: f"{s.path}/api-keys",
        201,
        lambda s: {"name": "made-by-caller", "roleKey": "viewer"},
        service_keys,
    ),
    Action(
        "revoke service key",
        "api_keys:manage",
        "DELETE",
        lambda s: f"{s.path}/api-keys/{s.victim_key_id}",
        204,
        observe=service_keys,
    ),
    Action(
        "check permissions",
        "org:read",
        "POST",
        lambda s: f"{s.path}/authorization/check",
        200,
        lambda s: {"permissions": ["org:read"]},
    ),
    Action(
        "check entities",
        "org:read",
        "POST",
        lambda s: f"{s.path}/authorization/check-entities",
        200,
        lambda s: {
            "checks": [{"entityType": "organization", "entityId": s.team.id, "permission": "org:read"}]
        },
    ),
    Action(
        "dashboard stats",
        "org:read",
        "GET",
        lambda s: f"{API}/dashboard/stats?organizationId={s.team.id}",
        200,
    ),
    Action(
        "dashboard analytics",
        "org:read",
        "GET",
        lambda s: f"{API}/dashboard/analytics?organizationId={s.team.id}",
        200,
    ),
)
CALLERS = ("member", "service_key")


def test_the_matrix_covers_every_role_and_names_only_known_permissions() -> None:
    assert set(MATRIX) == set(ROLE_KEYS) == {"admin", "developer", "viewer"}
    assert MATRIX["admin"] == frozenset(PERMISSIONS)
    assert MATRIX["viewer"] < MATRIX["developer"] < MATRIX["admin"]
    assert {a.permission for a in ACTIONS} <= set(PERMISSIONS)
    # Each role is allowed some guarded action and refused another, so the grid tests both ways.
    for role in ("developer", "viewer"):
        outcomes = {a.permission in MATRIX[role] for a in ACTIONS}
        assert outcomes == {True, False}, role


async def add_target(runtime: Runtime, org_id: str) -> str:
    """A viewer member who never signs in: a row, so the grid does not pay for a password hash."""
    async with runtime.db.session() as session:
        account = Account(email=unique_email("target"), password_hash=None)
        session.add(account)
        await session.flush()
        await orgs.add_member(session, org_id, account.id, "viewer")
        return account.id


async def caller_headers(
    client: httpx.AsyncClient, team: Team, role: str, kind: str, member: User | None
) -> dict[str, str]:
    """A caller with `role` in `team`: the given account joining by invitation, or a service key."""
    if kind == "member":
        assert member is not None
        invitation = await invite(client, team.owner.headers, team.id, member.email, role)
        accepted = await accept(client, member, invitation["id"], link_token(invitation["inviteUrl"]))
        assert accepted.status_code == 200, accepted.text
        return member.headers
    return bearer(
        (await service_key(client, team.owner.headers, team.id, role=role, name=f"caller-{role}"))["fullKey"]
    )


async def build_scene(client: httpx.AsyncClient, runtime: Runtime, owner: User) -> Scene:
    """A fresh organization for each action, since actions change or delete it."""
    org = await create_org(client, owner)
    await set_plan(runtime, org["id"], "team")
    team = Team(owner, org)
    target_id = await add_target(runtime, team.id)
    invitation = await invite(client, owner.headers, team.id, unique_email("pending"), "viewer")
    victim = await service_key(client, owner.headers, team.id, role="viewer", name="victim")
    return Scene(client, team, target_id, invitation["id"], victim["id"])


async def outcome(
    client: httpx.AsyncClient,
    runtime: Runtime,
    owner: User,
    member: User | None,
    action: Action,
    role: str,
    kind: str,
) -> str | None:
    """None when the action went as the matrix says, else what went wrong."""
    scene = await build_scene(client, runtime, owner)
    headers = await caller_headers(client, scene.team, role, kind, member)
    before = await action.observe(scene) if action.observe else None
    body = action.body(scene) if action.body else None
    response = await client.request(action.method, action.path(scene), json=body, headers=headers)

    allowed = action.permission in MATRIX[role]
    expected = (action.ok, None) if allowed else (403, "permission_denied")
    got = (response.status_code, None if allowed else response.json().get("code"))
    if got != expected:
        return f"{action.name}: expected {expected}, got {response.status_code} {response.text}"
    if action.observe is not None:
        after = await action.observe(scene)
        if (after != before) is not allowed:
            what = "allowed but nothing changed" if allowed else "refused but changed"
            return f"{action.name}: {what}: {before} -> {after}"
    return None


@pytest.mark.parametrize("kind", CALLERS)
@pytest.mark.parametrize("role", sorted(MATRIX))
async def test_each_role_may_do_exactly_what_the_matrix_says(
    client: httpx.AsyncClient, runtime: Runtime, role: str, kind: str
) -> None:
    owner = await sign_up(client, unique_email("owner"))
    member = await sign_up(client, unique_email(f"caller-{role}")) if kind == "member" else None
    problems = [await outcome(client, runtime, owner, member, action, role, kind) for action in ACTIONS]
    assert [p for p in problems if p] == []


@pytest.mark.parametrize("kind", CALLERS)
@pytest.mark.parametrize("role", sorted(MATRIX))
async def test_authorization_check_answers_the_matrix(
    client: httpx.AsyncClient, runtime: Runtime, role: str, kind: str
) -> None:
    team = await new_team(client, runtime)
    member = await sign_up(client, unique_email("caller")) if kind == "member" else None
    headers = await caller_headers(client, team, role, kind, member)
    names = sorted(PERMISSIONS)
    response = await client.post(
        f"{team.path}/authorization/check", json={"permissions": names}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["role"] == role
    assert [r["permission"] for r in body["results"]] == names
    assert {r["permission"] for r in body["results"] if r["allowed"]} == MATRIX[role]

    checks = [{"entityType": "organization", "entityId": team.id, "permission": p} for p in names]
    entities = await client.post(
        f"{team.path}/authorization/check-entities", json={"checks": checks}, headers=headers
    )
    assert entities.status_code == 200, entities.text
    assert {r["permission"] for r in entities.json()["results"] if r["allowed"]} == MATRIX[role]


async def test_checks_refuse_unknown_permissions_and_entity_types(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    headers = team.owner.headers
    unknown = await client.post(
        f"{team.path}/authorization/check", json={"permissions": ["org:read", "org:own"]}, headers=headers
    )
    assert assert_error(unknown, 422, "unknown_permission")["detail"] == ["org:own"]
    assert_error(
        await client.post(f"{team.path}/authorization/check", json={"permissions": []}, headers=headers), 422
    )
    bad_type = await client.post(
        f"{team.path}/authorization/check-entities",
        json={"checks": [{"entityType": "spaceship", "entityId": "x", "permission": "org:read"}]},
        headers=headers,
    )
    assert_error(bad_type, 422, "unknown_entity_type")


async def test_check_entities_allows_only_entities_that_exist_here(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    member = await join(client, team.owner, team.id, "viewer")
    invitation = await invite(client, team.owner.headers, team.id, unique_email("pending"), "viewer")
    key = await service_key(client, team.owner.headers, team.id)
    real = {
        "organization": team.id,
        "member": member.id,
        "invitation": invitation["id"],
        "api_key": key["id"],
    }
    checks = [{"entityType": t, "entityId": i, "permission": "org:read"} for t, i in real.items()]
    checks += [{"entityType": t, "entityId": f"{i}x", "permission": "org:read"} for t, i in real.items()]
    checks.append({"entityType": "member", "entityId": member.id, "permission": "org:delete"})
    response = await client.post(
        f"{team.path}/authorization/check-entities", json={"checks": checks}, headers=member.headers
    )
    assert response.status_code == 200, response.text
    assert [r["allowed"] for r in response.json()["results"]] == [True] * 4 + [False] * 4 + [False]
    assert response.json()["results"][0] == {**checks[0], "allowed": True}
