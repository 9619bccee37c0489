"""Deliveries over HTTP (`/api/v1/webhooks/deliveries`) and from `conduit webhooks`, the CLI
talking to a real server on 127.0.0.1 over the same API."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from conduit.cli.main import app as cli_app
from conduit.identity.models import AuditEvent
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from tests.webhooks.conftest import Org, make_org, new_endpoint, send
from tests.webhooks.receiver import Receiver, Reply

DELIVERIES = "/api/v1/webhooks/deliveries"


async def two_deliveries(engine: Runtime, worker: JobWorker, org: Org, receiver: Receiver) -> tuple[str, str]:
    """A failed delivery (404), then a delivered one."""
    receiver.answer(Reply(404, b"no such hook"))
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    failed = await send(engine, endpoint.id, {"n": 1}, event_type="scan.completed")
    await worker.run_until_idle()
    delivered = await send(engine, endpoint.id, {"n": 2}, event_type="scan.completed")
    await worker.run_until_idle()
    return failed, delivered


async def service_key(client: httpx.AsyncClient, org: Org, role: str) -> dict[str, str]:
    created = await client.post(
        f"/api/v1/organizations/{org.id}/api-keys",
        json={"name": f"{role}-bot", "roleKey": role},
        headers=org.owner.headers,
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['fullKey']}"}


async def test_list_read_and_redeliver_over_http(
    client: httpx.AsyncClient, engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    failed, delivered = await two_deliveries(engine, engine_worker, org, receiver)
    headers = org.owner.headers

    listed = await client.get(DELIVERIES, headers=headers)
    assert listed.status_code == 200, listed.text
    assert [(d["id"], d["status"]) for d in listed.json()] == [(delivered, "delivered"), (failed, "failed")]
    only_failed = (await client.get(DELIVERIES, params={"status": "failed"}, headers=headers)).json()
    assert [d["id"] for d in only_failed] == [failed]
    paged = (await client.get(DELIVERIES, params={"page": 2, "page_size": 1}, headers=headers)).json()
    assert [d["id"] for d in paged] == [failed]
    bad = await client.get(DELIVERIES, params={"status": "lost"}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")

    detail = (await client.get(f"{DELIVERIES}/{failed}", headers=headers)).json()
    assert detail["status"] == "failed"
    assert detail["event_type"] == "scan.completed"
    assert detail["event_id"].startswith("msg_")
    assert detail["last_http_status"] == 404
    assert detail["created_at"].endswith("Z")
    [attempt] = detail["delivery_log"]
    assert attempt["attempt"] == 1
    assert (attempt["http_status"], attempt["outcome"], attempt["response_body"]) == (
        404,
        "failed",
        "no such hook",
    )
    assert attempt["error"] == "the receiver answered 404"
    assert attempt["url"] == receiver.url()

    queued = await client.post(f"{DELIVERIES}/{failed}/redeliver", headers=headers)
    assert queued.status_code == 202, queued.text
    assert (queued.json()["status"], queued.json()["next_attempt_at"] is not None) == ("pending", True)
    again = await client.post(f"{DELIVERIES}/{failed}/redeliver", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "delivery_pending")
    await engine_worker.run_until_idle()

    detail = (await client.get(f"{DELIVERIES}/{failed}", headers=headers)).json()
    assert (detail["status"], detail["attempts"]) == ("delivered", 2)
    assert [a["outcome"] for a in detail["delivery_log"]] == ["failed", "delivered"]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 2  # two messages, one resent once
    async with engine.db.session(write=False) as session:
        audit = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.redelivered"))
        ).all()
    assert [(a.org_id, a.account_id) for a in audit] == [(org.id, org.owner.id)]


async def test_deliveries_are_private_to_their_organization_and_redelivery_needs_a_role(
    client: httpx.AsyncClient, engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    failed, _ = await two_deliveries(engine, engine_worker, org, receiver)
    stranger = await make_org(client)

    assert (await client.get(DELIVERIES, headers=stranger.owner.headers)).json() == []
    for method, path in (("GET", f"{DELIVERIES}/{failed}"), ("POST", f"{DELIVERIES}/{failed}/redeliver")):
        response = await client.request(method, path, headers=stranger.owner.headers)
        assert (response.status_code, response.json()["code"]) == (404, "webhook_delivery_not_found")
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401

    viewer = await service_key(client, org, "viewer")
    assert (await client.get(f"{DELIVERIES}/{failed}", headers=viewer)).status_code == 200
    refused = await client.post(f"{DELIVERIES}/{failed}/redeliver", headers=viewer)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    missing = await client.post(f"{DELIVERIES}/whd_doesnotexist/redeliver", headers=org.owner.headers)
    assert missing.status_code == 404


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    """The app on a real port of 127.0.0.1, in this event loop (the CLI runs in a thread)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    await task
    listener.close()


async def conduit_webhooks(base_url: str, token: str, *args: str) -> Result:
    env = {"CONDUIT_URL": base_url, "CONDUIT_API_KEY": token, "CONDUIT_CONFIG": "/nonexistent/config.json"}
    return await asyncio.to_thread(CliRunner().invoke, cli_app, ["webhooks", *args], env=env)


async def test_the_cli_lists_shows_and_redelivers(
    client: httpx.AsyncClient,
    served: str,
    engine: Runtime,
    engine_worker: JobWorker,
    org: Org,
    receiver: Receiver,
) -> None:
    failed, delivered = await two_deliveries(engine, engine_worker, org, receiver)
    token = await client.post(
        "/api/v1/accounts/me/api-tokens", json={"name": "cli"}, headers=org.owner.headers
    )
    assert token.status_code == 201, token.text
    key = token.json()["token"]

    listed = await conduit_webhooks(served, key, "deliveries", "--status", "failed", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(d["id"], d["status"]) for d in json.loads(listed.stdout)] == [(failed, "failed")]
    table = await conduit_webhooks(served, key, "deliveries")
    assert table.exit_code == 0, table.output
    assert failed in table.stdout
    assert delivered in table.stdout
    assert "scan.completed" in table.stdout

    redelivered = await conduit_webhooks(served, key, "redeliver", failed)
    assert redelivered.exit_code == 0, redelivered.output
    assert f"{failed}: queued for redelivery (pending)" in redelivered.stdout
    await engine_worker.run_until_idle()

    shown = await conduit_webhooks(served, key, "show", failed, "--json")
    detail = json.loads(shown.stdout)
    assert (detail["status"], [a["http_status"] for a in detail["delivery_log"]]) == ("delivered", [404, 200])
    table = await conduit_webhooks(served, key, "show", failed)
    assert table.exit_code == 0, table.output
    assert "Delivery log" in table.stdout
    assert "Last response body:\nok" in table.stdout

    pending = await conduit_webhooks(served, key, "deliveries", "--status", "pending", "--json")
    assert json.loads(pending.stdout) == []
    missing = await conduit_webhooks(served, key, "redeliver", "whd_doesnotexist")
    assert missing.exit_code == 1
    assert "webhook_delivery_not_found" in missing.stderr
    assert "HTTP 404" in missing.stderr
