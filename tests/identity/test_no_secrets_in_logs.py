"""No credential ever reaches the logs: a full identity flow, logged at debug level the way
`conduit serve` configures logging, leaves no password, token, TOTP secret or code behind."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator

import httpx
import pytest
import structlog

from conduit.kit import logging as kit_logging
from conduit.kit.jobs import JobWorker
from conduit.kit.runtime import Runtime
from tests.conftest import PASSWORD, sign_up
from tests.identity.conftest import (
    API,
    auth,
    current_code,
    freeze_at_step_start,
    next_step,
    request_reset_token,
    sign_in,
    totp_challenge,
)

NEW_PASSWORD = "an entirely different passphrase"


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written: pytest swaps it between test phases."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def production_logging() -> Iterator[None]:
    """Logging as `conduit serve` sets it up (every processor, redaction included), at debug."""
    saved = structlog.get_config()
    kit_logging.configure("debug", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()))  # type: ignore[arg-type]
    yield
    structlog.configure(**saved)


def without_timestamps(output: str) -> str:
    """Log text minus timestamps and durations, whose digits could match a 6-digit code by chance."""
    lines = []
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            lines.append(re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?", "", line))
            continue
        if isinstance(event, dict):
            event.pop("timestamp", None)
            event.pop("duration_ms", None)
        lines.append(json.dumps(event))
    return "\n".join(lines)


async def test_a_full_identity_flow_logs_no_secret(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: JobWorker,
    capfd: pytest.CaptureFixture[str],
    production_logging: None,
) -> None:
    freeze_at_step_start()
    secrets: dict[str, str] = {"password": PASSWORD, "new password": NEW_PASSWORD}

    await client.post(f"{API}/accounts", json={"email": "bad", "password": "a password in a bad request"})
    secrets["password in a rejected body"] = "a password in a bad request"
    user = await sign_up(client)
    await sign_in(client, user.email, "a wrong password guess")
    secrets["wrong password"] = "a wrong password guess"
    secrets["access token"] = user.access_token
    secrets["refresh token"] = user.refresh_token

    refreshed = (
        await client.post(f"{API}/sessions/refresh", json={"refresh_token": user.refresh_token})
    ).json()
    secrets["rotated access token"] = refreshed["access_token"]
    secrets["rotated refresh token"] = refreshed["refresh_token"]

    setup = (await client.post(f"{API}/accounts/me/2fa/setup", headers=user.headers)).json()
    secrets["totp secret"] = setup["secret"]
    enabling_code = current_code(setup["secret"])
    secrets["enabling totp code"] = enabling_code
    enabled = await client.post(
        f"{API}/accounts/me/2fa/enable", headers=user.headers, json={"code": enabling_code}
    )
    backup_codes = enabled.json()["backup_codes"]
    for n, code in enumerate(backup_codes):
        secrets[f"backup code {n}"] = code
    next_step()

    challenge = await totp_challenge(client, user)
    secrets["totp challenge"] = challenge
    sign_in_code = current_code(setup["secret"])
    secrets["sign-in totp code"] = sign_in_code
    second_factor = await client.post(
        f"{API}/sessions/2fa", json={"totp_token": challenge, "code": sign_in_code}
    )
    assert second_factor.status_code == 200
    secrets["2fa access token"] = second_factor.json()["access_token"]
    secrets["2fa refresh token"] = second_factor.json()["refresh_token"]
    backup_sign_in = await client.post(
        f"{API}/sessions/2fa",
        json={"totp_token": await totp_challenge(client, user), "code": backup_codes[0]},
    )
    assert backup_sign_in.status_code == 200

    created = await client.post(
        f"{API}/accounts/me/api-tokens",
        headers=user.headers,
        json={"name": "ci", "allowed_ips": ["10.0.0.0/8"]},
    )
    api_token = created.json()["token"]
    secrets["api token"] = api_token
    await client.get(f"{API}/accounts/me", headers={"X-API-Key": api_token})  # refused: wrong IP
    await client.get(f"{API}/accounts/me/api-tokens", headers=auth(api_token))

    reset_token = await request_reset_token(client, runtime, worker, user.email)
    secrets["reset token"] = reset_token
    assert (
        await client.put(
            f"{API}/accounts/me/password-reset", json={"token": reset_token, "new_password": "qwerty123"}
        )
    ).status_code == 422
    reset = await client.put(
        f"{API}/accounts/me/password-reset", json={"token": reset_token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204

    after_reset = await sign_in(client, user.email, NEW_PASSWORD)
    challenge_after = after_reset.json()["totp_token"]
    secrets["second totp challenge"] = challenge_after
    await client.post(f"{API}/sessions/2fa", json={"totp_token": challenge_after, "code": "000000"})

    output = capfd.readouterr()
    logs = without_timestamps(output.out + output.err)

    # The capture really holds the flow's log lines, so an empty capture cannot pass.
    assert logs.count('"event": "request"') >= 15
    assert '"event": "mail_written"' in logs
    assert '"/api/v1/sessions/2fa"' in logs

    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == []
    # Backup codes are also accepted without the dash.
    assert not any(code.replace("-", "") in logs for code in backup_codes)
