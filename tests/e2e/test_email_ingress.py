"""Email ingress against a real `conduit serve`: swaks and smtplib with STARTTLS and AUTH, a
receiver on 127.0.0.1 that verifies the Standard Webhooks signature, and a server killed with
SIGKILL right after its `250` that still delivers the message, once, when it comes back."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.processes import ServerProcess, conduit_env, free_port, fresh_database, start_server
from tests.email.dns_server import DnsServer
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.e2e

API = "/api/v1"
DOMAIN = "mail.conduit.test"
PASSWORD = "e2e correct horse battery staple"
SMTP_PASSWORD = "relay password for e2e"
DELIVERY_TIMEOUT = 30.0
T = TypeVar("T")


class Loopback:
    """A DNS server and a webhook receiver on 127.0.0.1, served by an event loop in a thread
    while the test drives blocking clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.dns = DnsServer()
        self.receiver = Receiver()
        self._listener: asyncio.Server | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        self.run(self.dns.start())
        self._listener = self.run(self._listen())
        self.receiver.port = self._listener.sockets[0].getsockname()[1]

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self.receiver.handle, "127.0.0.1", 0)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.run(self.dns.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    services = Loopback()
    services.start()
    yield services
    services.stop()


def ingress_env(workdir: Path, loopback: Loopback, **settings: object) -> dict[str, str]:
    return conduit_env(
        workdir / "data",
        fresh_database("e2e_email"),
        job_poll_seconds=0.1,
        log_level="debug",
        smtp_port=free_port(),
        smtp_hostname="mx.conduit.test",
        public_email_domains=DOMAIN,
        dns_nameservers=f"127.0.0.1:{loopback.dns.port}",
        allow_private_targets="true",
        **settings,
    )


def smtp_port(env: dict[str, str]) -> int:
    return int(env["CONDUIT_SMTP_PORT"])


def signed_up(client: httpx.Client) -> dict[str, str]:
    address = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    created = client.post(f"{API}/accounts", json={"email": address, "password": PASSWORD})
    assert created.status_code == 201, created.text
    signed_in = client.post(f"{API}/sessions", json={"email": address, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


def webhook(client: httpx.Client, headers: dict[str, str], loopback: Loopback, local: str) -> dict[str, Any]:
    policy = client.post(
        f"{API}/smtp-policies",
        json={"name": "relay only", "require_smtp_auth": True, "smtp_credentials": f"relay:{SMTP_PASSWORD}"},
        headers=headers,
    )
    assert policy.status_code == 201, policy.text
    created = client.post(
        f"{API}/webhooks",
        json={
            "address": f"{local}@{DOMAIN}",
            "target_url": loopback.receiver.url(f"/{local}"),
            "smtp_security_policy_id": policy.json()["id"],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def send_with_smtplib(port: int, to: str, subject: str) -> tuple[int, bytes]:
    email = EmailMessage()
    email["From"] = "alice@sender.example.org"
    email["To"] = to
    email["Subject"] = subject
    email.set_content("Sent over STARTTLS with AUTH.\n")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=15) as client:
        client.starttls(context=context)
        client.login("relay", SMTP_PASSWORD)
        client.mail("alice@sender.example.org")
        code, reply = client.rcpt(to)
        assert code == 250, reply
        return client.data(email.as_bytes(policy=SMTP))


def wait_for_deliveries(loopback: Loopback, path: str, count: int) -> list[Any]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        received = [r for r in loopback.receiver.received if r.path == path]
        if len(received) >= count:
            return received
        time.sleep(0.1)
    raise AssertionError(f"{count} deliveries to {path} expected, got {len(loopback.receiver.received)}")


def verified(secret: str, received: Any) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


def test_a_message_accepted_before_a_sigkill_is_delivered_once_after_restart(
    tmp_path: Path, loopback: Loopback
) -> None:
    # The first server takes mail but runs no jobs: what its 250 promised lives only in the database.
    env = ingress_env(tmp_path, loopback)
    first = start_server(tmp_path, {**env, "CONDUIT_RUN_JOBS": "false"})
    try:
        with first.client() as client:
            hook = webhook(client, signed_up(client), loopback, "crash")
        code, reply = send_with_smtplib(smtp_port(env), f"crash@{DOMAIN}", "accepted, then killed")
        assert code == 250, reply
        assert reply.startswith(b"2.0.0 Ok: queued as eml_")
    finally:
        first.process.kill()  # SIGKILL: no shutdown hook runs
        first.process.wait(10)
    assert loopback.receiver.received == []

    second = start_server(tmp_path, env)
    try:
        [received] = wait_for_deliveries(loopback, "/crash", 1)
        payload = verified(hook["secret"], received)
        assert payload["subject"] == "accepted, then killed"
        assert payload["queue_id"] == reply.decode().rsplit(" ", 1)[-1]
        assert payload["envelope"]["auth_user"] == "relay"
        time.sleep(2)  # a duplicate would arrive within a few polls
        assert len([r for r in loopback.receiver.received if r.path == "/crash"]) == 1
    finally:
        second.stop()
    assert_secret_not_logged(second, SMTP_PASSWORD)


@pytest.fixture(scope="module")
def swaks() -> str:
    path = shutil.which("swaks")
    if path is None:
        pytest.skip("swaks is not installed: make test installs it with scripts/install-swaks.sh")
    return path


def test_swaks_with_starttls_and_auth_reaches_a_verifying_receiver(
    tmp_path: Path, loopback: Loopback, swaks: str
) -> None:
    env = ingress_env(tmp_path, loopback)
    server = start_server(tmp_path, env)
    try:
        with server.client() as client:
            hook = webhook(client, signed_up(client), loopback, "swaks")
        result = subprocess.run(
            [
                swaks,
                "--server",
                "127.0.0.1",
                "--port",
                str(smtp_port(env)),
                "--ehlo",
                "client.example.org",
                "--from",
                "alice@sender.example.org",
                "--to",
                f"swaks+e2e@{DOMAIN}",
                "--tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "relay",
                "--auth-password",
                SMTP_PASSWORD,
                "--header",
                "Subject: through the real server",
                "--body",
                "Hello from swaks.",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "250 2.0.0 Ok: queued as eml_" in result.stdout
        [received] = wait_for_deliveries(loopback, "/swaks", 1)
        payload = verified(hook["secret"], received)
        assert payload["subject"] == "through the real server"
        assert payload["envelope"]["recipients"][0]["tag"] == "e2e"
        assert payload["envelope"]["tls"] is True
    finally:
        server.stop()
    assert_secret_not_logged(server, SMTP_PASSWORD)


def assert_secret_not_logged(server: ServerProcess, secret: str) -> None:
    assert secret not in server.stdout + server.stderr
