"""The API other domains call: endpoints changed in place, tenants kept apart, deliveries listed
by kind of endpoint, an endpoint's delivery log."""

from __future__ import annotations

import httpx
import pytest

from conduit.kit.errors import NotFound, Unprocessable
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from tests.webhooks.conftest import Org, load_endpoint, make_org, new_endpoint, send
from tests.webhooks.receiver import Receiver


async def test_update_changes_only_what_is_given(
    engine: Runtime, runtime: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, _ = await new_endpoint(
        engine, org.id, receiver.url("/old"), rate_limit=10, custom_headers={"X-Old": "1"}, description="d"
    )
    async with engine.db.session() as session:
        found = await webhooks.get_endpoint(session, org.id, endpoint.id)
        webhooks.update_endpoint(engine, found, url=receiver.url("/new"), custom_headers={"X-New": "2"})
    updated = await load_endpoint(engine, endpoint.id)
    assert (updated.url, updated.rate_limit, updated.description) == (receiver.url("/new"), 10, "d")
    assert webhooks.custom_headers(engine.keyring, updated) == {"X-New": "2"}

    async with engine.db.session() as session:
        found = await webhooks.get_endpoint(session, org.id, endpoint.id)
        webhooks.update_endpoint(engine, found, rate_limit=0, custom_headers=None, description=None)
    cleared = await load_endpoint(engine, endpoint.id)
    assert (cleared.rate_limit, cleared.headers_sealed, cleared.description) == (None, None, None)

    await send(engine, endpoint.id)
    await engine_worker.run_until_idle()
    assert [r.path for r in receiver.received] == ["/new"]
    assert "x-new" not in receiver.received[0].headers

    async with runtime.db.session() as session:
        found = await webhooks.get_endpoint(session, org.id, endpoint.id)
        with pytest.raises(Unprocessable) as private:
            webhooks.update_endpoint(runtime, found, url="http://127.0.0.1/hook")
        assert private.value.code == "private_address_not_allowed"
        for bad in (-1, webhooks.MAX_RATE_LIMIT + 1):
            with pytest.raises(Unprocessable) as limit:
                webhooks.update_endpoint(runtime, found, rate_limit=bad)
            assert limit.value.code == "invalid_rate_limit"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "example.com/hook", "http://user:pw@example.com/", "http://" + "a" * 2050],
)
async def test_urls_that_are_not_http_targets_are_refused(engine: Runtime, org: Org, url: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        await new_endpoint(engine, org.id, url)
    assert (refused.value.status, refused.value.code) == (422, "invalid_url")


async def test_another_organizations_endpoints_and_deliveries_are_not_found(
    engine: Runtime, org: Org, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    other = await make_org(client)
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id)
    async with engine.db.session(write=False) as session:
        with pytest.raises(NotFound):
            await webhooks.get_endpoint(session, other.id, endpoint.id)
        with pytest.raises(NotFound):
            await webhooks.delivery(session, other.id, delivery_id)
        assert await webhooks.deliveries_page(session, other.id) == []


async def test_deliveries_by_kind_and_an_endpoints_delivery_log(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    email, _ = await new_endpoint(engine, org.id, receiver.url("/email"), kind="email")
    events, _ = await new_endpoint(engine, org.id, receiver.url("/events"))
    first = await send(engine, email.id, event_type="email.received", attributes={"sender": "a@example.com"})
    second = await send(engine, email.id, event_type="email.received")
    third = await send(engine, events.id, event_type="scan.completed")
    await engine_worker.run_until_idle()

    async with engine.db.session(write=False) as session:
        by_kind = await webhooks.deliveries_page(session, org.id, kind="email")
        assert {d.id for d in by_kind} == {first, second}
        by_endpoint = await webhooks.deliveries_page(session, org.id, endpoint_id=events.id)
        assert [d.id for d in by_endpoint] == [third]
        assert len(await webhooks.deliveries_page(session, org.id, status="delivered")) == 3
        assert len(await webhooks.deliveries_page(session, org.id, page=2, page_size=2)) == 1
        log = await webhooks.attempts_page(session, email.id)
        assert {a.delivery_id for a in log} == {first, second}
        assert all(a.endpoint_id == email.id for a in log)
        with pytest.raises(Unprocessable):
            await webhooks.deliveries_page(session, org.id, status="lost")
        delivered = await webhooks.delivery(session, org.id, first)
        assert delivered.attributes == {"sender": "a@example.com"}

    with pytest.raises(Unprocessable) as bad_kind:
        await new_endpoint(engine, org.id, receiver.url(), kind="k" * 33)
    assert bad_kind.value.code == "invalid_endpoint"
    for options in ({"event_type": ""}, {"event_id": "has space"}):
        with pytest.raises(Unprocessable):
            await send(engine, email.id, **options)
