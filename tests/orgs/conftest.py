"""Helpers for the organization tests: teams of real accounts joined by real invitations, service
keys, the invitation mail in the outbox, and the audit rows an action leaves behind."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from conduit.identity import service as identity
from conduit.identity.models import AuditEvent
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from conduit.orgs.models import Organization
from tests.conftest import User, sign_up

API = "/api/v1"
INVITE_LINK = re.compile(r"https?://\S+/invitations/(inv_[A-Za-z0-9_\-]+)\?token=(\S+)")


def org_path(org_id: str) -> str:
    return f"{API}/organizations/{org_id}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An error of `status` in the `{"code", "error", ...}` shape (extra documented fields allowed)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    if code is not None:
        assert body["code"] == code, body
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1, response.headers
    return body


async def signed_in_again(client: httpx.AsyncClient, user: User) -> User:
    """The same account with a fresh session: access tokens live 15 minutes, tests move time."""
    response = await client.post(f"{API}/sessions", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.text
    body = response.json()
    return User(user.id, user.email, user.password, body["access_token"], body["refresh_token"])


async def create_org(
    client: httpx.AsyncClient, owner: User, name: str = "Acme", slug: str | None = None
) -> dict[str, Any]:
    slug = slug or f"acme-{uuid.uuid4().hex[:8]}"
    response = await client.post(
        f"{API}/organizations", json={"name": name, "slug": slug}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_plan(runtime: Runtime, org_id: str, plan: str) -> None:
    async with runtime.db.session() as session:
        await session.execute(update(Organization).where(Organization.id == org_id).values(plan=plan))


async def invite(
    client: httpx.AsyncClient, headers: dict[str, str], org_id: str, email_address: str, role: str
) -> dict[str, Any]:
    response = await client.post(
        f"{org_path(org_id)}/invitations", json={"email": email_address, "role": role}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def link_token(invite_url: str) -> str:
    match = INVITE_LINK.search(invite_url)
    assert match, invite_url
    return match.group(2)


async def accept(client: httpx.AsyncClient, member: User, invitation_id: str, token: str) -> httpx.Response:
    return await client.post(
        f"{API}/invitations/{invitation_id}/accept", json={"token": token}, headers=member.headers
    )


async def join(client: httpx.AsyncClient, owner: User, org_id: str, role: str, label: str = "member") -> User:
    """A new account that joins `org_id` with `role` by accepting an invitation."""
    member = await sign_up(client, unique_email(label))
    invitation = await invite(client, owner.headers, org_id, member.email, role)
    accepted = await accept(client, member, invitation["id"], link_token(invitation["inviteUrl"]))
    assert accepted.status_code == 200, accepted.text
    return member


async def service_key(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    org_id: str,
    role: str | None = None,
    name: str = "bot",
) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": name}
    if role is not None:
        payload["roleKey"] = role
    response = await client.post(f"{org_path(org_id)}/api-keys", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def member_key(runtime: Runtime, org_id: str, account_id: str, name: str = "laptop") -> str:
    """A member's own key bound to `org_id`: what `/api/keys` makes in the caller's organization
    (which, for a session, is always the personal one)."""
    async with runtime.db.session() as session:
        _, raw = await identity.create_api_key(
            session, runtime, org_id=org_id, kind="org", name=name, account_id=account_id
        )
    return raw


@dataclass
class Team:
    """A non-personal organization with its admin (the creator)."""

    owner: User
    org: dict[str, Any]
    members: dict[str, User] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.org["id"])

    @property
    def path(self) -> str:
        return org_path(self.id)


async def new_team(
    client: httpx.AsyncClient, runtime: Runtime, plan: str = "team", name: str = "Acme"
) -> Team:
    owner = await sign_up(client, unique_email("owner"))
    org = await create_org(client, owner, name=name)
    await set_plan(runtime, org["id"], plan)
    return Team(owner, org)


def outbox_messages(runtime: Runtime, to: str) -> list[email.message.EmailMessage]:
    outbox: Path = runtime.settings.data_dir / "outbox"
    found: list[email.message.EmailMessage] = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            found.append(message)  # type: ignore[arg-type]
    return found


async def emailed_links(runtime: Runtime, worker: JobWorker, to: str) -> list[tuple[str, str, str]]:
    """Deliver queued mail and return every invitation link sent to `to`: (url, id, token)."""
    await worker.run_until_idle()
    links = []
    for message in outbox_messages(runtime, to):
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        for match in INVITE_LINK.finditer(body.get_content()):
            links.append((match.group(0), match.group(1), match.group(2)))
    return links


async def audit_actions(runtime: Runtime, org_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return [(event.action, dict(event.meta)) for event in rows.all()]
