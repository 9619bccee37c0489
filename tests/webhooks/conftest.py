"""Fixtures of the webhook engine tests: a real receiver on 127.0.0.1, an organization made by a
real sign-up, and the engine's runtime with private targets allowed (the receiver is loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conduit.kit.jobs import Job, JobWorker
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import User, sign_up
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    listener = await asyncio.start_server(hooks.handle, "127.0.0.1", 0)
    hooks.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield hooks


def loopback_runtime(runtime: Runtime, **extras: Any) -> Runtime:
    """The test runtime's database and keys, with CONDUIT_ALLOW_PRIVATE_TARGETS=true."""
    settings = runtime.settings.model_copy(update={"allow_private_targets": True})
    return Runtime(settings=settings, db=runtime.db, keyring=runtime.keyring, extras=dict(extras))


@pytest.fixture
async def engine(runtime: Runtime) -> AsyncIterator[Runtime]:
    loopback = loopback_runtime(runtime)
    yield loopback
    for extra in loopback.extras.values():
        await extra.aclose()


@pytest.fixture
def engine_worker(engine: Runtime) -> JobWorker:
    return JobWorker(engine, concurrency=4, poll_seconds=0.05)


@dataclass
class Org:
    id: str
    owner: User


async def make_org(client: httpx.AsyncClient) -> Org:
    owner = await sign_up(client)
    [org] = (await client.get("/api/v1/organizations", headers=owner.headers)).json()
    return Org(org["id"], owner)


@pytest.fixture
async def org(client: httpx.AsyncClient) -> Org:
    return await make_org(client)


async def new_endpoint(
    runtime: Runtime, org_id: str, url: str, **options: Any
) -> tuple[WebhookEndpoint, str]:
    async with runtime.db.session() as session:
        return await webhooks.create_endpoint(session, runtime, org_id=org_id, url=url, **options)


async def send(runtime: Runtime, endpoint_id: str, payload: Any = None, **options: Any) -> str:
    """Queue one delivery in a transaction of its own, as a domain's request would; its id."""
    async with runtime.db.session() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        delivery = webhooks.enqueue_delivery(
            session,
            endpoint,
            event_type=options.pop("event_type", "test.event"),
            payload={"n": 1} if payload is None else payload,
            **options,
        )
        return delivery.id


async def load_delivery(runtime: Runtime, delivery_id: str) -> WebhookDelivery:
    async with runtime.db.session(write=False) as session:
        found = await session.get(WebhookDelivery, delivery_id)
    assert found is not None
    return found


async def load_endpoint(runtime: Runtime, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.db.session(write=False) as session:
        found = await session.get(WebhookEndpoint, endpoint_id)
    assert found is not None
    return found


async def delivery_log(runtime: Runtime, delivery_id: str) -> list[WebhookAttempt]:
    async with runtime.db.session(write=False) as session:
        return await webhooks.attempts_of(session, delivery_id)


async def pending_jobs(runtime: Runtime) -> list[Job]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(
            select(Job).where(Job.kind == webhooks.DELIVER_JOB, Job.status == "pending").order_by(Job.run_at)
        )
        return list(rows.all())
