"""Helpers for the identity tests: errors, 2FA, reset emails and API tokens, through the real API."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from conduit.identity import totp
from conduit.kit.clock import clock
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from tests.conftest import User

API = "/api/v1"
RESET_TOKEN = re.compile(r"cnd_pr_[A-Za-z0-9_\-]+")


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an error of `status` in the documented `{"code", "error"}` shape."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("code"), str), body
    assert isinstance(body.get("error"), str), body
    assert body["code"], body
    assert body["error"], body
    assert set(body) <= {"code", "error", "detail"}, body
    if code is not None:
        assert body["code"] == code, body
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1, response.headers
    return body


def freeze_at_step_start(offset_seconds: int = 1) -> None:
    """Freeze the clock just after the start of the current 30-second TOTP step (in the past, never
    the future), so a test has the rest of the step to replay a code in."""
    now = datetime.now(UTC)
    start = (int(now.timestamp()) // totp.PERIOD) * totp.PERIOD - totp.PERIOD
    clock.freeze(datetime.fromtimestamp(start + offset_seconds, UTC))


def current_code(secret: str) -> str:
    return totp.code_at(secret, totp.step_at(clock.now()))


def next_step() -> None:
    """Move the clock into the next TOTP step, so a fresh code is accepted."""
    clock.advance(timedelta(seconds=totp.PERIOD))


@dataclass
class TwoFactor:
    secret: str
    backup_codes: list[str]


async def enable_2fa(client: httpx.AsyncClient, user: User) -> TwoFactor:
    """Set up and enable 2FA, then move to the next step so the enabling code is behind us."""
    setup = await client.post(f"{API}/accounts/me/2fa/setup", headers=user.headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    enabled = await client.post(
        f"{API}/accounts/me/2fa/enable", headers=user.headers, json={"code": current_code(secret)}
    )
    assert enabled.status_code == 200, enabled.text
    next_step()
    return TwoFactor(secret, enabled.json()["backup_codes"])


async def totp_challenge(client: httpx.AsyncClient, user: User) -> str:
    response = await client.post(f"{API}/sessions", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totp_required"] is True, body
    return str(body["totp_token"])


async def sign_in(client: httpx.AsyncClient, email_address: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/sessions", json={"email": email_address, "password": password})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_api_token(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        f"{API}/accounts/me/api-tokens", headers=user.headers, json={"name": "ci", **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def outbox_messages(runtime: Runtime, to: str) -> list[email.message.EmailMessage]:
    outbox: Path = runtime.settings.data_dir / "outbox"
    messages = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            messages.append(message)  # type: ignore[arg-type]
    return messages


async def request_reset_token(client: httpx.AsyncClient, runtime: Runtime, worker: JobWorker, to: str) -> str:
    """Ask for a reset, deliver the mail job, and read the token from the newest message to `to`."""
    before = len(outbox_messages(runtime, to))
    response = await client.post(f"{API}/accounts/me/password-reset", json={"email": to})
    assert response.status_code == 202, response.text
    await worker.run_until_idle()
    messages = outbox_messages(runtime, to)
    assert len(messages) == before + 1
    body = messages[-1].get_body(preferencelist=("plain",))
    assert body is not None
    found = RESET_TOKEN.findall(body.get_content())
    assert found, "no reset token in the message"
    return str(found[0])
