"""Standard Webhooks signatures: the specification's test vector, the `standardwebhooks` library's
verifier on what a real receiver got, secret rotation, and secrets kept out of storage and logs."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from conduit.kit import logging as kit_logging
from conduit.kit.clock import clock
from conduit.kit.errors import Unprocessable
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from conduit.webhooks import service as webhooks
from conduit.webhooks.signing import generate_secret, secret_key, sign, signature_headers
from tests.webhooks.conftest import Org, load_endpoint, new_endpoint, send
from tests.webhooks.receiver import Receiver

# The Standard Webhooks specification's test vector (standard-webhooks/standard-webhooks @ b2fa7b8,
# libraries/go/webhook_test.go, Apache-2.0).
VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "payload": '{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def test_the_specifications_vector() -> None:
    body = VECTOR["payload"].encode()
    assert sign(VECTOR["secret"], VECTOR["msg_id"], VECTOR["timestamp"], body) == VECTOR["signature"]
    sent_at = datetime.fromtimestamp(VECTOR["timestamp"], UTC)
    headers = signature_headers([VECTOR["secret"]], VECTOR["msg_id"], sent_at, body)
    assert headers == {
        "webhook-id": VECTOR["msg_id"],
        "webhook-timestamp": str(VECTOR["timestamp"]),
        "webhook-signature": VECTOR["signature"],
    }


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert len(secret_key(secret)) == 32


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"x" * 23).decode(),  # too short
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
    ],
)
def test_secrets_that_are_not_whsec_base64_of_24_to_64_bytes_are_refused(secret: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        secret_key(secret)
    assert (refused.value.status, refused.value.code) == (422, "invalid_webhook_secret")


async def test_the_standardwebhooks_verifier_accepts_a_real_delivery(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, secret = await new_endpoint(engine, org.id, receiver.url())
    delivery_id = await send(engine, endpoint.id, {"scan_id": "scn_1", "grade": "B", "note": "naïve ✓"})
    await engine_worker.run_until_idle()

    [request] = receiver.received
    assert Webhook(secret).verify(request.body, request.headers) == {
        "scan_id": "scn_1",
        "grade": "B",
        "note": "naïve ✓",
    }
    assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body + b" ", request.headers)
    assert delivery_id.startswith("whd_")


async def test_a_given_secret_is_used(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, secret = await new_endpoint(engine, org.id, receiver.url(), secret=VECTOR["secret"])
    assert secret == VECTOR["secret"]
    await send(engine, endpoint.id)
    await engine_worker.run_until_idle()
    [request] = receiver.received
    Webhook(VECTOR["secret"]).verify(request.body, request.headers)
    with pytest.raises(Unprocessable):
        await new_endpoint(engine, org.id, receiver.url(), secret="hunter2")


async def test_during_a_rotation_both_secrets_verify_then_only_the_new_one(
    engine: Runtime, engine_worker: JobWorker, org: Org, receiver: Receiver
) -> None:
    endpoint, old = await new_endpoint(engine, org.id, receiver.url())
    async with engine.db.session() as session:
        found = await webhooks.get_endpoint(session, org.id, endpoint.id)
        new = webhooks.rotate_secret(engine.keyring, found)
    assert new != old
    await send(engine, endpoint.id)
    await engine_worker.run_until_idle()

    [during] = receiver.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(during.body, during.headers)
    stored = await load_endpoint(engine, endpoint.id)
    assert stored.previous_secret_expires_at is not None
    assert stored.previous_secret_expires_at - clock.now() <= webhooks.ROTATION_GRACE

    clock.advance(webhooks.ROTATION_GRACE + timedelta(seconds=1))
    await send(engine, endpoint.id)
    await engine_worker.run_until_idle()
    after = receiver.received[1]
    # Our clock moved a day on, past the library's five-minute tolerance: check the signature by hand.
    message_id, timestamp = after.headers["webhook-id"], int(after.headers["webhook-timestamp"])
    assert after.headers["webhook-signature"] == sign(new, message_id, timestamp, after.body)
    assert sign(old, message_id, timestamp, after.body) not in after.headers["webhook-signature"]


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """Logging as `conduit serve` configures it, at debug, to the stderr pytest captures."""
    saved = structlog.get_config()
    kit_logging.configure("debug", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()))  # type: ignore[arg-type]
    yield
    structlog.configure(**saved)


async def test_secrets_are_sealed_at_rest_and_never_logged(
    engine: Runtime,
    engine_worker: JobWorker,
    org: Org,
    receiver: Receiver,
    debug_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint, secret = await new_endpoint(
        engine, org.id, receiver.url(), custom_headers={"Authorization": "Bearer receiver-credential"}
    )
    async with engine.db.session() as session:
        rotated = webhooks.rotate_secret(
            engine.keyring, await webhooks.get_endpoint(session, org.id, endpoint.id)
        )
    await send(engine, endpoint.id)
    await engine_worker.run_until_idle()
    assert len(receiver.received) == 1

    stored = await load_endpoint(engine, endpoint.id)
    columns = " ".join(str(v) for v in vars(stored).values())
    output = capsys.readouterr()
    assert "webhook_attempt" in output.err
    for value in (secret, rotated, "receiver-credential"):
        for part in (value, value.removeprefix("whsec_")):
            assert part not in columns
            assert part not in output.out + output.err
