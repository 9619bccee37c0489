"""Email webhooks (seed 002's Webhooks group): CRUD on a domain verified against the loopback DNS
server, simulate delivering for real to a receiver on 127.0.0.1, the delivery log, the SMTP
security policy a webhook uses, and routing a recipient to its webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from conduit.app import create_app
from conduit.email import service
from conduit.kit.runtime import Runtime
from conduit.webhooks.service import SENDER_EXTRA
from tests.conftest import User, sign_up
from tests.email.dns_server import DnsServer
from tests.email.test_domains import PUBLIC, claim, email_runtime, publish
from tests.identity.conftest import API, assert_error
from tests.webhooks.receiver import Receiver, Reply

WEBHOOKS = f"{API}/webhooks"
DOMAIN = "hooks.example.com"
WEBHOOK_FIELDS = {
    "active",
    "address",
    "created_at",
    "custom_headers",
    "id",
    "include_raw",
    "name",
    "payload_template",
    "rate_limit",
    "secret",
    "smtp_security_policy_id",
    "target_url",
    "updated_at",
}
LOG_FIELDS = {
    "attempted_at",
    "duration_ms",
    "error",
    "http_status",
    "id",
    "sender",
    "simulated",
    "smtp_message_id",
    "webhook_id",
}


@pytest.fixture
async def hooks_runtime(runtime: Runtime, dns_server: DnsServer) -> AsyncIterator[Runtime]:
    """Loopback DNS, and private targets allowed: the receiver is on 127.0.0.1."""
    loopback = email_runtime(runtime, dns_server, allow_private_targets=True)
    yield loopback
    sender = loopback.extras.get(SENDER_EXTRA)
    if sender is not None:
        await sender.aclose()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    listener = await asyncio.start_server(hooks.handle, "127.0.0.1", 0)
    hooks.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield hooks


@pytest.fixture
def app(hooks_runtime: Runtime) -> Any:
    return create_app(runtime=hooks_runtime)


async def verified_domain(client: httpx.AsyncClient, user: User, dns_server: DnsServer, name: str) -> None:
    domain = await claim(client, user, name)
    publish(dns_server, domain)
    response = await client.post(f"{API}/domains/{domain['id']}/verify", headers=user.headers)
    assert response.json()["verified"] is True, response.text


@pytest.fixture
async def owner(client: httpx.AsyncClient, user: User, dns_server: DnsServer) -> User:
    await verified_domain(client, user, dns_server, DOMAIN)
    return user


async def create(client: httpx.AsyncClient, user: User, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    body = {"address": f"support@{DOMAIN}", "target_url": receiver.url(), **fields}
    response = await client.post(WEBHOOKS, json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def policy(client: httpx.AsyncClient, user: User) -> str:
    response = await client.post(f"{API}/smtp-policies", json={"name": "strict"}, headers=user.headers)
    assert response.status_code == 201, response.text
    policy_id: str = response.json()["id"]
    return policy_id


async def test_create_shows_the_secret_once(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    created = await create(
        client, owner, receiver, address=f"Support@{DOMAIN.upper()}", custom_headers={"X-Team": "ops"}
    )

    assert set(created) == WEBHOOK_FIELDS
    assert created["id"].startswith("whk_")
    assert created["secret"].startswith("whsec_")
    assert created["address"] == f"Support@{DOMAIN}"
    assert created["name"] == created["address"]
    assert created["custom_headers"] == {"X-Team": "ops"}
    assert (created["active"], created["rate_limit"], created["payload_template"]) == (True, None, None)
    fetched = (await client.get(f"{WEBHOOKS}/{created['id']}", headers=owner.headers)).json()
    assert fetched["secret"] is None
    assert {k: v for k, v in fetched.items() if k != "secret"} == {
        k: v for k, v in created.items() if k != "secret"
    }
    listed = (await client.get(WEBHOOKS, headers=owner.headers)).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert listed[0]["secret"] is None


async def test_a_given_secret_is_kept(client: httpx.AsyncClient, owner: User, receiver: Receiver) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert (await create(client, owner, receiver, secret=secret))["secret"] == secret


async def test_an_address_has_one_webhook(client: httpx.AsyncClient, owner: User, receiver: Receiver) -> None:
    await create(client, owner, receiver)
    body = {"address": f"SUPPORT@{DOMAIN}", "target_url": receiver.url()}
    assert_error(await client.post(WEBHOOKS, json=body, headers=owner.headers), 409, "address_taken")


async def test_public_domains_take_webhooks(
    client: httpx.AsyncClient, user: User, receiver: Receiver
) -> None:
    created = await create(client, user, receiver, address=f"me@{PUBLIC}")
    assert created["address"] == f"me@{PUBLIC}"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"address": "support@unverified.example.com"}, "domain_not_verified"),
        ({"address": "not-an-address"}, "invalid_address"),
        ({"payload_template": "{{ payload.subject "}, "invalid_payload_template"),
        ({"payload_template": "subject: {{ payload.subject }}"}, "invalid_payload_template"),
        ({"payload_template": "{{ payload.__class__.__mro__ }}"}, "invalid_payload_template"),
        ({"custom_headers": {"Connection": "close"}}, "invalid_headers"),
        ({"custom_headers": {"webhook-signature": "v1,forged"}}, "invalid_headers"),
        ({"target_url": "ftp://example.com/hook"}, "invalid_url"),
        ({"rate_limit": -1}, "invalid_rate_limit"),
        ({"smtp_security_policy_id": "pol_nope"}, "policy_not_found"),
    ],
)
async def test_invalid_fields_are_422_and_create_nothing(
    client: httpx.AsyncClient, owner: User, receiver: Receiver, fields: dict[str, Any], code: str
) -> None:
    body = {"address": f"support@{DOMAIN}", "target_url": receiver.url(), **fields}
    assert_error(await client.post(WEBHOOKS, json=body, headers=owner.headers), 422, code)
    assert (await client.get(WEBHOOKS, headers=owner.headers)).json() == []


async def test_an_unverified_domain_of_the_account_is_422(
    client: httpx.AsyncClient, user: User, receiver: Receiver
) -> None:
    await claim(client, user, "pending.example.com")
    body = {"address": "a@pending.example.com", "target_url": receiver.url()}
    response = await client.post(WEBHOOKS, json=body, headers=user.headers)
    assert "POST /api/v1/domains" in assert_error(response, 422, "domain_not_verified")["error"]


async def test_update_changes_only_what_is_sent(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    policy_id = await policy(client, owner)
    created = await create(client, owner, receiver, smtp_security_policy_id=policy_id, rate_limit=60)
    url = f"{WEBHOOKS}/{created['id']}"

    template = '{"subject": {{ payload.subject | tojson }}, "to": {{ payload.envelope.to | tojson }}}'
    response = await client.put(
        url, json={"name": "Support", "payload_template": template, "active": False}, headers=owner.headers
    )
    updated = response.json()
    assert response.status_code == 200, response.text
    assert (updated["name"], updated["payload_template"], updated["active"]) == ("Support", template, False)
    assert (updated["smtp_security_policy_id"], updated["rate_limit"]) == (policy_id, 60)
    assert updated["secret"] is None

    cleared = (
        await client.put(url, json={"clear_security_policy": True, "rate_limit": None}, headers=owner.headers)
    ).json()
    assert (cleared["smtp_security_policy_id"], cleared["rate_limit"], cleared["name"]) == (
        None,
        None,
        "Support",
    )

    rotated = (
        await client.put(url, json={"secret": None, "custom_headers": {"X-A": "1"}}, headers=owner.headers)
    ).json()
    assert (rotated["secret"], rotated["custom_headers"]) == (None, {"X-A": "1"})


async def test_an_invalid_update_changes_nothing(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    created = await create(client, owner, receiver)
    other = await create(client, owner, receiver, address=f"sales@{DOMAIN}")
    url = f"{WEBHOOKS}/{created['id']}"
    bad = [
        ({"name": "x", "address": other["address"]}, 409, "address_taken"),
        ({"name": "x", "payload_template": "[1,"}, 422, "invalid_payload_template"),
        ({"name": "x", "custom_headers": {"Host": "evil"}}, 422, "invalid_headers"),
    ]
    for body, status, code in bad:
        assert_error(await client.put(url, json=body, headers=owner.headers), status, code)
    assert (await client.get(url, headers=owner.headers)).json()["name"] == created["name"]
    moved = await client.put(url, json={"address": f"help@{DOMAIN}"}, headers=owner.headers)
    assert moved.json()["address"] == f"help@{DOMAIN}"


async def test_delete(client: httpx.AsyncClient, owner: User, receiver: Receiver) -> None:
    created = await create(client, owner, receiver)
    url = f"{WEBHOOKS}/{created['id']}"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert_error(await client.get(url, headers=owner.headers), 404, "webhook_not_found")
    assert (await create(client, owner, receiver))["address"] == created["address"]


async def test_another_accounts_webhook_is_404(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    created = await create(client, owner, receiver)
    stranger = await sign_up(client)
    url = f"{WEBHOOKS}/{created['id']}"
    for method, path, body in [
        ("GET", url, None),
        ("PUT", url, {"name": "mine"}),
        ("DELETE", url, None),
        ("GET", f"{url}/logs", None),
        ("GET", f"{url}/logs/wha_anything", None),
        ("POST", f"{url}/simulate", {}),
    ]:
        response = await client.request(method, path, json=body, headers=stranger.headers)
        assert_error(response, 404, "webhook_not_found")
    assert (await client.get(WEBHOOKS, headers=stranger.headers)).json() == []
    assert receiver.received == []
    # Nor can the stranger route the owner's domain to itself.
    body = {"address": f"other@{DOMAIN}", "target_url": receiver.url()}
    assert_error(await client.post(WEBHOOKS, json=body, headers=stranger.headers), 422, "domain_not_verified")


async def test_simulate_delivers_a_signed_message_and_logs_it(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    created = await create(client, owner, receiver, custom_headers={"X-Team": "ops"})
    url = f"{WEBHOOKS}/{created['id']}"

    body = {"from": "alice@example.org", "subject": "Hello", "text": "Hi there."}
    response = await client.post(f"{url}/simulate", json=body, headers=owner.headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["http_status"], result["error"], result["simulated"]) == (200, None, True)
    assert result["duration_ms"] >= 0
    [request] = receiver.received
    assert request.headers["x-team"] == "ops"
    payload = Webhook(created["secret"]).verify(request.body, request.headers)
    assert payload["subject"] == "Hello"
    assert payload["text"] == "Hi there.\n"
    assert payload["envelope"]["from"] == "alice@example.org"
    assert payload["envelope"]["to"] == [created["address"]]

    [log] = (await client.get(f"{url}/logs", headers=owner.headers)).json()
    assert set(log) == LOG_FIELDS
    assert (log["webhook_id"], log["simulated"], log["http_status"]) == (created["id"], True, 200)
    assert (log["sender"], log["smtp_message_id"]) == ("alice@example.org", payload["message_id"])
    assert (await client.get(f"{url}/logs/{log['id']}", headers=owner.headers)).json() == log
    assert_error(
        await client.get(f"{url}/logs/wha_nope", headers=owner.headers), 404, "delivery_log_not_found"
    )


async def test_simulate_renders_the_template_and_reports_failures(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    template = '{"subject": {{ payload.subject | tojson }}, "from": {{ payload.envelope["from"] | tojson }}}'
    created = await create(client, owner, receiver, payload_template=template)
    url = f"{WEBHOOKS}/{created['id']}"
    receiver.answer(Reply(status=500, body=b"boom"))

    failed = (
        await client.post(f"{url}/simulate", json={"subject": "Templated"}, headers=owner.headers)
    ).json()

    assert failed["http_status"] == 500
    assert failed["error"]
    [request] = receiver.received
    assert json.loads(request.body) == {"subject": "Templated", "from": "sender@example.com"}
    assert Webhook(created["secret"]).verify(request.body, request.headers)


async def test_logs_are_paged_newest_first(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    created = await create(client, owner, receiver)
    url = f"{WEBHOOKS}/{created['id']}"
    for n in range(3):
        await client.post(f"{url}/simulate", json={"subject": f"n{n}"}, headers=owner.headers)

    everything = (await client.get(f"{url}/logs", headers=owner.headers)).json()
    first = (await client.get(f"{url}/logs?page=1&page_size=2", headers=owner.headers)).json()
    second = (await client.get(f"{url}/logs?page=2&page_size=2", headers=owner.headers)).json()

    assert len(everything) == 3
    assert [e["id"] for e in first + second] == [e["id"] for e in everything]
    assert (len(first), len(second)) == (2, 1)
    assert (await client.get(f"{url}/logs?page=0", headers=owner.headers)).status_code == 422


async def test_a_policy_in_use_cannot_be_deleted(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    policy_id = await policy(client, owner)
    created = await create(client, owner, receiver, smtp_security_policy_id=policy_id)
    policy_url = f"{API}/smtp-policies/{policy_id}"

    response = await client.delete(policy_url, headers=owner.headers)

    assert created["id"] in assert_error(response, 409, "policy_in_use")["error"]
    await client.put(
        f"{WEBHOOKS}/{created['id']}", json={"clear_security_policy": True}, headers=owner.headers
    )
    assert (await client.delete(policy_url, headers=owner.headers)).status_code == 204


async def test_another_accounts_policy_cannot_be_used(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    stranger = await sign_up(client)
    theirs = await policy(client, stranger)
    body = {"address": f"support@{DOMAIN}", "target_url": receiver.url(), "smtp_security_policy_id": theirs}
    assert_error(await client.post(WEBHOOKS, json=body, headers=owner.headers), 422, "policy_not_found")


async def test_webhook_for_recipient(
    client: httpx.AsyncClient, owner: User, receiver: Receiver, hooks_runtime: Runtime
) -> None:
    support = await create(client, owner, receiver, address=f"Support@{DOMAIN}")
    tagged = await create(client, owner, receiver, address=f"support+vip@{DOMAIN}")
    paused = await create(client, owner, receiver, address=f"paused@{DOMAIN}", active=False)
    settings = hooks_runtime.settings

    async def routed(address: str) -> str | None:
        async with hooks_runtime.db.session(write=False) as session:
            webhook = await service.webhook_for_recipient(session, settings, address)
        return webhook.id if webhook else None

    assert await routed(f"support@{DOMAIN.upper()}") == support["id"]
    assert await routed(f"<SUPPORT+news@{DOMAIN}>") == support["id"]
    assert await routed(f"Support+VIP@{DOMAIN}") == tagged["id"]
    assert await routed(f"paused@{DOMAIN}") is None
    assert await routed(f"nobody@{DOMAIN}") is None
    assert await routed("not an address") is None
    assert paused["active"] is False

    [domain] = [
        d for d in (await client.get(f"{API}/domains", headers=owner.headers)).json() if d["name"] == DOMAIN
    ]
    assert (await client.delete(f"{API}/domains/{domain['id']}", headers=owner.headers)).status_code == 204
    assert await routed(f"support@{DOMAIN}") is None


async def test_simulate_without_a_body_and_with_a_new_secret(
    client: httpx.AsyncClient, owner: User, receiver: Receiver
) -> None:
    created = await create(client, owner, receiver)
    url = f"{WEBHOOKS}/{created['id']}"
    secret = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    updated = (await client.put(url, json={"secret": secret}, headers=owner.headers)).json()
    assert updated["secret"] == secret

    response = await client.post(f"{url}/simulate", headers=owner.headers)

    assert response.json()["http_status"] == 200, response.text
    [request] = receiver.received
    assert Webhook(secret).verify(request.body, request.headers)["subject"] == "Test message from Conduit"
