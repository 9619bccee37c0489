"""Members: list, change role, remove; the last admin stays; leaving revokes the leaver's keys."""

from __future__ import annotations

import asyncio

import httpx

from conduit.kit.runtime import Runtime
from tests.conftest import sign_up
from tests.orgs.conftest import API, Team, assert_error, audit_actions, bearer, join, member_key, new_team


async def roles_of(client: httpx.AsyncClient, team: Team) -> dict[str, str]:
    listed = await client.get(f"{team.path}/members", headers=team.owner.headers)
    assert listed.status_code == 200, listed.text
    return {m["principalId"]: m["role"] for m in listed.json()}


async def test_list_members_shows_each_with_role_and_join_time(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    dev = await join(client, team.owner, team.id, "developer")
    response = await client.get(f"{team.path}/members", headers=dev.headers)
    assert response.status_code == 200, response.text
    members = response.json()
    assert [(m["principalId"], m["email"], m["role"]) for m in members] == [
        (team.owner.id, team.owner.email, "admin"),
        (dev.id, dev.email, "developer"),
    ]
    assert all(m["joinedAt"].endswith("Z") for m in members)


async def test_admin_changes_a_role_and_it_takes_effect(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    viewer = await join(client, team.owner, team.id, "viewer")
    assert_error(
        await client.get(f"{team.path}/invitations", headers=viewer.headers), 403, "permission_denied"
    )

    response = await client.patch(
        f"{team.path}/members/{viewer.id}", json={"role": "developer"}, headers=team.owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "developer"
    assert response.json()["principalId"] == viewer.id
    assert (await roles_of(client, team))[viewer.id] == "developer"
    assert (await client.get(f"{team.path}/invitations", headers=viewer.headers)).status_code == 200
    assert ("member.role_changed", viewer.id, "developer") in [
        (a, m.get("member_id"), m.get("role")) for a, m in await audit_actions(runtime, team.id)
    ]


async def test_change_role_validates_role_and_member(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    viewer = await join(client, team.owner, team.id, "viewer")
    bad = await client.patch(
        f"{team.path}/members/{viewer.id}", json={"role": "owner"}, headers=team.owner.headers
    )
    assert_error(bad, 422, "invalid_role")
    stranger = await sign_up(client)
    missing = await client.patch(
        f"{team.path}/members/{stranger.id}", json={"role": "viewer"}, headers=team.owner.headers
    )
    assert_error(missing, 404, "member_not_found")
    assert (await roles_of(client, team))[viewer.id] == "viewer"


async def test_the_last_admin_cannot_be_demoted_or_removed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    owner = team.owner
    demote = await client.patch(
        f"{team.path}/members/{owner.id}", json={"role": "developer"}, headers=owner.headers
    )
    assert_error(demote, 409, "last_admin")
    assert_error(
        await client.delete(f"{team.path}/members/{owner.id}", headers=owner.headers), 409, "last_admin"
    )
    assert (await roles_of(client, team)) == {owner.id: "admin"}

    second = await join(client, owner, team.id, "admin")
    demoted = await client.patch(
        f"{team.path}/members/{owner.id}", json={"role": "viewer"}, headers=second.headers
    )
    assert demoted.status_code == 200, demoted.text
    again = await client.patch(
        f"{team.path}/members/{second.id}", json={"role": "viewer"}, headers=second.headers
    )
    assert_error(again, 409, "last_admin")
    assert_error(
        await client.delete(f"{team.path}/members/{second.id}", headers=second.headers), 409, "last_admin"
    )
    assert (await roles_of(client, team)) == {owner.id: "viewer", second.id: "admin"}


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    second = await join(client, team.owner, team.id, "admin")
    results = await asyncio.gather(
        client.patch(f"{team.path}/members/{second.id}", json={"role": "viewer"}, headers=team.owner.headers),
        client.patch(f"{team.path}/members/{team.owner.id}", json={"role": "viewer"}, headers=second.headers),
    )
    # Whichever lands second is refused: as the last admin (409) or as a viewer by then (403).
    assert sorted(r.status_code for r in results) in ([200, 403], [200, 409]), [r.text for r in results]
    assert list((await roles_of(client, team)).values()).count("admin") == 1


async def test_a_member_can_remove_themself(client: httpx.AsyncClient, runtime: Runtime) -> None:
    team = await new_team(client, runtime)
    viewer = await join(client, team.owner, team.id, "viewer")
    other = await join(client, team.owner, team.id, "viewer", label="other")
    assert_error(
        await client.delete(f"{team.path}/members/{other.id}", headers=viewer.headers),
        403,
        "permission_denied",
    )

    left = await client.delete(f"{team.path}/members/{viewer.id}", headers=viewer.headers)
    assert left.status_code == 204, left.text
    assert_error(await client.get(team.path, headers=viewer.headers), 404, "organization_not_found")
    assert viewer.id not in await roles_of(client, team)
    assert other.id in await roles_of(client, team)
    assert ("member.removed", viewer.id) in [
        (a, m.get("member_id")) for a, m in await audit_actions(runtime, team.id)
    ]


async def test_admin_removes_a_member_and_their_keys_for_that_org_stop(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    dev = await join(client, team.owner, team.id, "developer")
    team_key = await member_key(runtime, team.id, dev.id)
    [personal] = [
        o
        for o in (await client.get(f"{API}/organizations", headers=dev.headers)).json()
        if o["id"] != team.id
    ]
    personal_key = await member_key(runtime, personal["id"], dev.id)
    assert (await client.get(team.path, headers=bearer(team_key))).status_code == 200

    removed = await client.delete(f"{team.path}/members/{dev.id}", headers=team.owner.headers)
    assert removed.status_code == 204, removed.text
    assert_error(await client.get(f"{API}/cli/whoami", headers=bearer(team_key)), 401)
    # Keys for their own organization are theirs to keep.
    assert (await client.get(f"{API}/cli/whoami", headers=bearer(personal_key))).status_code == 200
    assert_error(
        await client.delete(f"{team.path}/members/{dev.id}", headers=team.owner.headers),
        404,
        "member_not_found",
    )


async def test_a_member_key_follows_the_members_current_role(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    dev = await join(client, team.owner, team.id, "admin")
    key = bearer(await member_key(runtime, team.id, dev.id))
    assert (await client.get(f"{team.path}/invitations", headers=key)).status_code == 200
    await client.patch(f"{team.path}/members/{dev.id}", json={"role": "viewer"}, headers=team.owner.headers)
    assert_error(await client.get(f"{team.path}/invitations", headers=key), 403, "permission_denied")


async def test_admins_stepping_down_together_leave_one_admin(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    team = await new_team(client, runtime)
    admins = [team.owner] + [
        await join(client, team.owner, team.id, "admin", label=f"admin{i}") for i in range(4)
    ]
    results = await asyncio.gather(
        *(
            client.patch(f"{team.path}/members/{admin.id}", json={"role": "viewer"}, headers=admin.headers)
            for admin in admins
        )
    )
    assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 409], [r.text for r in results]
    assert list((await roles_of(client, team)).values()).count("admin") == 1
