"""Delivery against a real receiver on 127.0.0.1: retries on the schedule, Retry-After, 410, final
failures, redirects, timeouts, refused targets, rate limits, the delivery log. The clock is frozen
and moved; the worker's claim runs directly, so nothing waits for real."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import func, select

from conduit.kit.clock import clock
from conduit.kit.errors import Conflict, Unprocessable
from conduit.kit.http import is_public_address
from conduit.kit.jobs import Job, JobWorker
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import WebhookDelivery
from conduit.webhooks.sender import WebhookSender
from tests.webhooks.conftest import (
    Org,
    delivery_log,
    load_delivery,
    load_endpoint,
    loopback_runtime,
    new_endpoint,
    pending_jobs,
    send,
)
from tests.webhooks.receiver import Receiver, Reply

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


async def next_attempt_in(runtime: Runtime, delivery_id: str) -> float:
    delivery = await load_delivery(runtime, delivery_id)
    assert delivery.status == "pending", delivery.last_error
    assert delivery.next_attempt_at is not None
    return (delivery.next_attempt_at - clock.now()).total_seconds()


async def test_a_receiver_that_fails_three_times_gets_the_message_once_more(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    clock.freeze(T0)
    receiver.answer(Reply(500, b"down"), Reply(502), Reply(503))
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id, {"hello": "world"})

    await engine_worker.run_until_idle()
    attempted_at = [T0]
    for attempt, planned in enumerate(webhooks.SCHEDULE[:3], start=1):
        assert len(receiver.received) == attempt
        wait = await next_attempt_in(engine, delivery_id)
        assert planned * 0.8 <= wait <= planned * 1.2  # the schedule, with its jitter
        clock.advance(timedelta(seconds=wait - 1))
        assert await engine_worker.run_until_idle() == 0, "attempted before its time"
        clock.advance(timedelta(seconds=1))
        attempted_at.append(clock.now())
        await engine_worker.run_until_idle()

    delivery = await load_delivery(engine, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 4, 200)
    assert delivery.delivered_at == attempted_at[-1]
    assert (delivery.next_attempt_at, delivery.job_id, delivery.last_error) == (None, None, None)
    log = await delivery_log(engine, delivery_id)
    assert [(a.attempt, a.status_code, a.outcome) for a in log] == [
        (1, 500, "retry"),
        (2, 502, "retry"),
        (3, 503, "retry"),
        (4, 200, "delivered"),
    ]
    assert [a.attempted_at for a in log] == attempted_at
    assert log[0].response_body == "down"
    assert log[0].error == "the receiver answered 500"
    assert all(a.duration_ms >= 0 and a.completed_at >= a.attempted_at for a in log)
    # One message: the same id and body every time, each attempt signed at its own time.
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.message_id}
    assert {r.body for r in receiver.received} == {b'{"hello":"world"}'}
    assert [int(r.headers["webhook-timestamp"]) for r in receiver.received] == [
        int(t.timestamp()) for t in attempted_at
    ]

    clock.advance(timedelta(days=2))
    assert await engine_worker.run_until_idle() == 0
    assert len(receiver.received) == 4
    assert await pending_jobs(engine) == []


async def test_eight_failed_attempts_over_a_day_make_a_dead_delivery(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    clock.freeze(T0)
    receiver.answer(*[Reply(503)] * 8)
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id)

    await engine_worker.run_until_idle()
    for attempt, planned in enumerate(webhooks.SCHEDULE, start=1):
        assert len(receiver.received) == attempt
        wait = await next_attempt_in(engine, delivery_id)
        assert planned * 0.8 <= wait <= planned * 1.2
        clock.advance(timedelta(seconds=wait))
        await engine_worker.run_until_idle()

    assert len(receiver.received) == webhooks.MAX_ATTEMPTS == 8
    span = clock.now() - T0
    assert timedelta(hours=22) < span < timedelta(hours=34)  # "about a day"
    delivery = await load_delivery(engine, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.job_id) == ("dead", 8, None)
    assert delivery.last_error == "the receiver answered 503; no attempt left after 8"
    assert delivery.completed_at == clock.now()
    outcomes = [a.outcome for a in await delivery_log(engine, delivery_id)]
    assert outcomes == ["retry"] * 7 + ["dead"]
    assert await pending_jobs(engine) == []


async def test_retry_after_is_honoured_in_seconds_or_as_a_date_and_capped(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    clock.freeze(T0)
    in_an_hour = format_datetime(T0 + timedelta(seconds=120 + 3600), usegmt=True)
    receiver.answer(
        Reply(429, headers={"Retry-After": "120"}),
        Reply(503, headers={"Retry-After": in_an_hour}),
        Reply(429, headers={"Retry-After": "9999999"}),
        Reply(408),
    )
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id)

    await engine_worker.run_until_idle()
    assert await next_attempt_in(engine, delivery_id) == 120  # as asked, no jitter
    clock.advance(timedelta(seconds=120))
    await engine_worker.run_until_idle()
    assert await next_attempt_in(engine, delivery_id) == 3600
    clock.advance(timedelta(seconds=3600))
    await engine_worker.run_until_idle()
    assert await next_attempt_in(engine, delivery_id) == webhooks.RETRY_AFTER_CAP.total_seconds()
    clock.advance(webhooks.RETRY_AFTER_CAP)
    await engine_worker.run_until_idle()
    # 408 without Retry-After: back on the schedule, at its fourth step.
    planned = webhooks.SCHEDULE[3]
    assert planned * 0.8 <= await next_attempt_in(engine, delivery_id) <= planned * 1.2
    clock.advance(timedelta(seconds=planned * 1.2))
    await engine_worker.run_until_idle()

    assert len(receiver.received) == 5
    delivery = await load_delivery(engine, delivery_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 5)


async def test_410_disables_the_endpoint_and_nothing_is_attempted_after_it(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    clock.freeze(T0)
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    receiver.answer(Reply(500))
    retrying = await send(engine, endpoint.id)  # waiting for its second attempt
    await engine_worker.run_until_idle()
    receiver.answer(Reply(410, b"this hook is gone"))
    gone = await send(engine, endpoint.id)
    await engine_worker.run_until_idle()

    disabled = await load_endpoint(engine, endpoint.id)
    assert disabled.status == "disabled"
    assert disabled.disabled_reason is not None
    assert "410" in disabled.disabled_reason
    assert disabled.disabled_at == T0
    delivery = await load_delivery(engine, gone)
    assert (delivery.status, delivery.last_status_code) == ("disabled", 410)
    [attempt] = await delivery_log(engine, gone)
    assert (attempt.outcome, attempt.response_body) == ("disabled", "this hook is gone")

    later = await send(engine, endpoint.id)
    clock.advance(timedelta(hours=1))
    assert await engine_worker.run_until_idle() == 1  # the retry's job, which finds the endpoint disabled
    assert len(receiver.received) == 2
    for delivery_id in (retrying, later):
        delivery = await load_delivery(engine, delivery_id)
        assert delivery.status == "disabled"
        assert delivery.last_error is not None
        assert "410" in delivery.last_error
    assert len(await delivery_log(engine, later)) == 0
    assert await pending_jobs(engine) == []

    async with engine.db.session() as session:
        with pytest.raises(Conflict) as refused:
            await webhooks.redeliver(session, await webhooks.delivery(session, org.id, later))
        assert refused.value.code == "webhook_endpoint_disabled"

    async with engine.db.session() as session:
        webhooks.enable_endpoint(await webhooks.get_endpoint(session, org.id, endpoint.id))
        await webhooks.redeliver(session, await webhooks.delivery(session, org.id, later))
    await engine_worker.run_until_idle()
    assert (await load_delivery(engine, later)).status == "delivered"
    assert len(receiver.received) == 3


@pytest.mark.parametrize(("status", "reason"), [(404, "answered 404"), (400, "answered 400"), (401, "401")])
async def test_other_4xx_are_final_failures(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver, status: int, reason: str
) -> None:
    clock.freeze(T0)
    receiver.answer(Reply(status, b'{"error": "no such hook"}'))
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id)
    await engine_worker.run_until_idle()

    delivery = await load_delivery(engine, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, status)
    assert delivery.last_error is not None
    assert reason in delivery.last_error
    [attempt] = await delivery_log(engine, delivery_id)
    assert (attempt.outcome, attempt.response_body) == ("failed", '{"error": "no such hook"}')
    assert await pending_jobs(engine) == []
    assert (await load_endpoint(engine, endpoint.id)).status == "active"


async def test_a_redirect_is_a_failure_and_is_not_followed(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    receiver.answer(Reply(301, headers={"Location": receiver.url("/elsewhere")}))
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url("/hook"))
    delivery_id = await send(engine, endpoint.id)
    await engine_worker.run_until_idle()

    assert [r.path for r in receiver.received] == ["/hook"]
    delivery = await load_delivery(engine, delivery_id)
    assert (delivery.status, delivery.last_status_code) == ("failed", 301)
    assert delivery.last_error == (
        f"the receiver answered 301: redirect to {receiver.url('/elsewhere')} not followed"
    )
    assert await pending_jobs(engine) == []


async def test_a_timeout_is_retried(runtime: Runtime, org: Org, receiver: Receiver) -> None:
    impatient = loopback_runtime(
        runtime, **{webhooks.SENDER_EXTRA: WebhookSender(allow_private=True, timeout=0.3)}
    )
    worker = JobWorker(impatient)
    clock.freeze(T0)
    receiver.answer(Reply(200, delay=2.0))
    endpoint, _ = await new_endpoint(impatient, org.id, receiver.url())
    delivery_id = await send(impatient, endpoint.id)
    try:
        await worker.run_until_idle()
        [first] = await delivery_log(impatient, delivery_id)
        assert (first.status_code, first.outcome, first.error) == (None, "retry", "timed out after 0.3 s")
        assert 250 <= first.duration_ms < 2000
        clock.advance(timedelta(seconds=await next_attempt_in(impatient, delivery_id)))
        await worker.run_until_idle()
    finally:
        await impatient.extras[webhooks.SENDER_EXTRA].aclose()

    delivery = await load_delivery(impatient, delivery_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert len(receiver.received) == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data",
    ],
)
async def test_private_targets_are_refused_at_registration(runtime: Runtime, org: Org, url: str) -> None:
    assert runtime.settings.allow_private_targets is False
    with pytest.raises(Unprocessable) as refused:
        await new_endpoint(runtime, org.id, url)
    assert (refused.value.status, refused.value.code) == (422, "private_address_not_allowed")


async def test_a_target_refused_at_delivery_time_is_a_final_failure(
    runtime: Runtime, engine: Runtime, org: Org, receiver: Receiver
) -> None:
    """Registered while private targets were allowed; delivered by a worker where they are not."""
    guarded_worker = JobWorker(runtime)
    literal, _ = await new_endpoint(engine, org.id, receiver.url())
    first = await send(engine, literal.id)
    await guarded_worker.run_until_idle()

    delivery = await load_delivery(runtime, first)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, None)
    assert delivery.last_error == "target refused: URL points to a private, loopback or reserved address"
    assert receiver.received == []
    assert await pending_jobs(runtime) == []


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_dialled(
    runtime: Runtime, engine: Runtime, org: Org, receiver: Receiver
) -> None:
    """The name passes the registration check; the connect-time guard sees where it leads."""
    host = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(host, receiver.port, type=socket.SOCK_STREAM)}
    if any(is_public_address(ipaddress.ip_address(a)) for a in addresses):
        pytest.skip(f"{host} resolves to a public address here")
    async with runtime.db.session() as session:  # accepted by the guarded runtime: a plain name
        endpoint, _ = await webhooks.create_endpoint(
            session, runtime, org_id=org.id, url=f"http://{host}:{receiver.port}/hook"
        )
    delivery_id = await send(runtime, endpoint.id)
    await JobWorker(runtime).run_until_idle()

    delivery = await load_delivery(runtime, delivery_id)
    assert delivery.status == "failed"
    assert delivery.last_error == f"target refused: {host} resolves to a private or reserved address; refused"
    assert receiver.received == []


async def test_the_rate_limit_delays_deliveries_and_never_drops_one(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    clock.freeze(T0)
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url(), rate_limit=3)
    first = [await send(engine, endpoint.id, {"n": n}) for n in range(3)]
    await engine_worker.run_until_idle()
    assert sorted(r.body for r in receiver.received) == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    for delivery_id in first:
        assert (await load_delivery(engine, delivery_id)).status == "delivered"

    clock.advance(timedelta(seconds=20))
    last = await send(engine, endpoint.id, {"n": 3})
    await engine_worker.run_until_idle()
    waiting = await load_delivery(engine, last)
    # Due when the first of the three leaves the one-minute window; no attempt spent on waiting.
    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == (
        "pending",
        0,
        T0 + timedelta(seconds=60),
    )
    assert await delivery_log(engine, last) == []

    clock.advance(timedelta(seconds=39))
    await engine_worker.run_until_idle()
    assert len(receiver.received) == 3
    clock.advance(timedelta(seconds=1))
    await engine_worker.run_until_idle()
    assert len(receiver.received) == 4
    delivered = await load_delivery(engine, last)
    assert (delivered.status, delivered.attempts, delivered.delivered_at) == (
        "delivered",
        1,
        T0 + timedelta(seconds=60),
    )


async def test_the_rate_limit_holds_with_many_workers_and_many_deliveries(
    engine: Runtime, org: Org, receiver: Receiver
) -> None:
    clock.freeze(T0)
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url(), rate_limit=5)
    ids = [await send(engine, endpoint.id, {"n": n}) for n in range(12)]
    workers = [JobWorker(engine, concurrency=4, name=f"w{n}") for n in range(3)]

    for minute in range(3):
        await asyncio.gather(*(worker.run_until_idle() for worker in workers))
        assert len(receiver.received) == min(12, 5 * (minute + 1))
        clock.advance(timedelta(seconds=60))

    statuses = {(await load_delivery(engine, d)).status for d in ids}
    assert statuses == {"delivered"}
    assert sorted(r.body for r in receiver.received) == sorted(f'{{"n":{n}}}'.encode() for n in range(12))


async def test_the_response_body_is_kept_up_to_4_kb(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    receiver.answer(Reply(500, "é".encode() + b"x" * 10_000), Reply(200, b"\x00binary\xff"))
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id)
    await engine_worker.run_until_idle()
    clock.advance(timedelta(minutes=1))
    await engine_worker.run_until_idle()

    first, second = await delivery_log(engine, delivery_id)
    assert first.response_body is not None
    assert len(first.response_body.encode()) == 4096
    assert first.response_body.startswith("éxxx")
    assert second.response_body == "\ufffdbinary\ufffd"


async def test_custom_headers_are_sent_and_the_engines_own_are_refused(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    headers = {"Authorization": "Bearer receiver-token", "X-Tenant": "acme"}
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url(), custom_headers=headers)
    assert endpoint.headers_sealed is not None
    assert "receiver-token" not in endpoint.headers_sealed
    await send(engine, endpoint.id)
    await engine_worker.run_until_idle()
    [request] = receiver.received
    assert (request.headers["authorization"], request.headers["x-tenant"]) == (
        "Bearer receiver-token",
        "acme",
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Conduit-Webhooks/")

    for bad in (
        {"Host": "evil.example"},
        {"Content-Length": "0"},
        {"Transfer-Encoding": "chunked"},
        {"Connection": "upgrade"},
        {"Content-Type": "text/plain"},
        {"webhook-signature": "v1,forged"},
        {"Webhook-Id": "msg_x"},
        {"Proxy-Authorization": "Basic eA=="},
        {"X-Split": "a\r\nInjected: yes"},
        {"X-Accent": "café"},
        {"Bad Name": "x"},
    ):
        with pytest.raises(Unprocessable) as refused:
            await new_endpoint(engine, org.id, receiver.url(), custom_headers=bad)
        assert refused.value.code == "invalid_headers"
        assert refused.value.detail == list(bad)


async def test_a_delivery_exists_only_if_the_callers_transaction_commits(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())

    async def failing_request() -> None:
        async with engine.db.session() as session:
            webhooks.enqueue_delivery(session, endpoint, event_type="test.event", payload={"n": 1})
            await session.flush()
            raise RuntimeError("the request failed after queuing its webhook")

    with pytest.raises(RuntimeError):
        await failing_request()

    assert await engine_worker.run_until_idle() == 0
    async with engine.db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    assert receiver.received == []


async def test_a_redelivery_sends_the_same_message_again_and_continues_the_log(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id, event_id="evt_scan_42")
    await engine_worker.run_until_idle()

    async with engine.db.session() as session:
        queued = await webhooks.redeliver(session, await webhooks.delivery(session, org.id, delivery_id))
        assert queued.status == "pending"
    async with engine.db.session() as session:
        with pytest.raises(Conflict) as pending:
            await webhooks.redeliver(session, await webhooks.delivery(session, org.id, delivery_id))
        assert pending.value.code == "delivery_pending"
    await engine_worker.run_until_idle()

    assert [r.headers["webhook-id"] for r in receiver.received] == ["evt_scan_42", "evt_scan_42"]
    assert [(a.attempt, a.outcome) for a in await delivery_log(engine, delivery_id)] == [
        (1, "delivered"),
        (2, "delivered"),
    ]
    assert (await load_delivery(engine, delivery_id)).attempts == 2


async def test_deliver_now_makes_one_attempt_and_never_retries(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    receiver.answer(Reply(500), Reply(204, b""))
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    async with engine.db.session() as session:
        failed, attempt = await webhooks.deliver_now(
            session, engine, endpoint, event_type="email.simulated", payload={"subject": "hi"}
        )
        assert (failed.status, failed.simulated, attempt.status_code, attempt.outcome) == (
            "failed",
            True,
            500,
            "failed",
        )
    async with engine.db.session() as session:
        delivered, attempt = await webhooks.deliver_now(
            session, engine, endpoint, event_type="email.simulated", payload=b"raw bytes", attributes={"a": 1}
        )
    assert (delivered.status, attempt.status_code, delivered.attributes) == ("delivered", 204, {"a": 1})
    assert await engine_worker.run_until_idle() == 0
    assert [r.body for r in receiver.received] == [b'{"subject":"hi"}', b"raw bytes"]


async def test_deleting_an_endpoint_deletes_its_deliveries_and_stops_their_jobs(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, _ = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id)
    async with engine.db.session() as session:
        await webhooks.delete_endpoint(session, await webhooks.get_endpoint(session, org.id, endpoint.id))
    assert await engine_worker.run_until_idle() == 1
    assert receiver.received == []
    async with engine.db.session(write=False) as session:
        assert await session.get(WebhookDelivery, delivery_id) is None
