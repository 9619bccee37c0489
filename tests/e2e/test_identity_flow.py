"""Seed 002's identity flows over real HTTP against a real `conduit serve`: sign-up to API token
with 2FA in between, and a password reset through the real outbox and job worker."""

from __future__ import annotations

import email
import re
import time
import uuid
from email import policy
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.e2e.processes import ServerProcess

pytestmark = pytest.mark.e2e

API = "/api/v1"
PASSWORD = "e2e correct horse battery staple"
NEW_PASSWORD = "e2e a different long passphrase"
OUTBOX_TIMEOUT = 15.0


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def sign_up(client: httpx.Client, address: str, password: str = PASSWORD) -> dict[str, object]:
    created = client.post(f"{API}/accounts", json={"email": address, "password": password})
    assert created.status_code == 201, created.text
    body: dict[str, object] = created.json()
    assert body["email"] == address
    assert body["totp_enabled"] is False
    return body


def sign_in(client: httpx.Client, address: str, password: str = PASSWORD) -> dict[str, object]:
    response = client.post(f"{API}/sessions", json={"email": address, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def assert_never_logged(log: str, secrets: dict[str, str]) -> None:
    leaked = sorted(name for name, value in secrets.items() if value in log)
    assert not leaked, f"the server log contains: {', '.join(leaked)}"


def test_sign_up_to_api_token_with_two_factor(server: ServerProcess) -> None:
    address = new_email()
    with server.client() as client:
        account = sign_up(client, address)
        first = sign_in(client, address)
        access = str(first["access_token"])
        assert str(first["refresh_token"]).startswith("cnd_rt_")

        setup = client.post(f"{API}/accounts/me/2fa/setup", headers=bearer(access))
        assert setup.status_code == 200, setup.text
        secret = setup.json()["secret"]
        assert f"secret={secret}" in setup.json()["otpauth_url"]
        authenticator = pyotp.TOTP(secret)
        enable_code = authenticator.now()
        enabled = client.post(
            f"{API}/accounts/me/2fa/enable", headers=bearer(access), json={"code": enable_code}
        )
        assert enabled.status_code == 200, enabled.text
        backup_codes = enabled.json()["backup_codes"]
        assert len(backup_codes) == 10
        assert client.get(f"{API}/accounts/me", headers=bearer(access)).json()["totp_enabled"] is True

        signed_out = client.request(
            "DELETE",
            f"{API}/sessions",
            headers=bearer(access),
            json={"refresh_token": first["refresh_token"]},
        )
        assert signed_out.status_code == 204, signed_out.text
        assert client.get(f"{API}/accounts/me", headers=bearer(access)).status_code == 401
        refreshed = client.post(f"{API}/sessions/refresh", json={"refresh_token": first["refresh_token"]})
        assert refreshed.status_code == 401

        challenge = sign_in(client, address)
        assert challenge["totp_required"] is True
        assert "access_token" not in challenge
        totp_token = str(challenge["totp_token"])
        # The code that enabled 2FA is spent; the authenticator's next code is inside the ±1 step
        # window and newer than any spent step, so it is accepted without waiting 30 s.
        replayed = client.post(f"{API}/sessions/2fa", json={"totp_token": totp_token, "code": enable_code})
        assert replayed.status_code == 401
        assert replayed.json()["code"] == "invalid_totp_code"
        next_code = authenticator.at(time.time() + 30)
        completed = client.post(f"{API}/sessions/2fa", json={"totp_token": totp_token, "code": next_code})
        assert completed.status_code == 200, completed.text
        second = completed.json()
        access = second["access_token"]
        spent = client.post(f"{API}/sessions/2fa", json={"totp_token": totp_token, "code": backup_codes[0]})
        assert spent.status_code == 401, "a completed challenge must not open a second session"

        created = client.post(
            f"{API}/accounts/me/api-tokens",
            headers=bearer(access),
            json={"name": "e2e", "allowed_ips": ["127.0.0.1"]},
        )
        assert created.status_code == 201, created.text
        api_token = created.json()["token"]
        assert re.fullmatch(r"cnd_live_[0-9A-Za-z]{38}", api_token)
        listed = client.get(f"{API}/accounts/me/api-tokens", headers=bearer(access)).json()
        assert [t["token"] for t in listed] == [None], "a token is shown once, at creation"

        me = client.get(f"{API}/accounts/me", headers={"X-API-Key": api_token})
        assert me.status_code == 200, me.text
        assert me.json()["id"] == account["id"]
        assert me.json()["email"] == address
        assert client.get(f"{API}/accounts/me").status_code == 401
        tampered = api_token[:-1] + ("0" if api_token[-1] != "0" else "1")
        wrong = client.get(f"{API}/accounts/me", headers={"X-API-Key": tampered})
        assert wrong.status_code == 401

        audit = client.get(f"{API}/accounts/me/audit-log", headers={"X-API-Key": api_token})
        assert audit.status_code == 200, audit.text
        entries = audit.json()

    assert [e["action"] for e in entries] == [
        "api_token.created",
        "session.created",
        "2fa.code_rejected",
        "session.totp_challenge",
        "session.signed_out",
        "2fa.enabled",
        "2fa.setup_started",
        "session.created",
        "account.created",
    ]
    stamps = [e["created_at"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)
    assert all(stamp.endswith("Z") for stamp in stamps)
    assert {e["ip"] for e in entries} == {"127.0.0.1"}
    assert entries[1]["metadata"]["method"] == "totp"
    assert entries[-2]["metadata"]["method"] == "password"

    assert_never_logged(
        server.stderr + server.stdout,
        {
            "password": PASSWORD,
            "first access token": str(first["access_token"]),
            "first refresh token": str(first["refresh_token"]),
            "second access token": access,
            "second refresh token": second["refresh_token"],
            "TOTP secret": secret,
            "TOTP challenge token": totp_token,
            "API token": api_token,
            **{f"backup code {i}": code for i, code in enumerate(backup_codes)},
        },
    )


def wait_for_reset_email(outbox: Path, recipient: str) -> str:
    """The reset token from the .eml the job worker writes for `recipient`."""
    deadline = time.monotonic() + OUTBOX_TIMEOUT
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if message["To"] == recipient:
                assert message["Subject"] == "Reset your Conduit password"
                body = message.get_body(preferencelist=("plain",))
                assert body is not None
                tokens = set(re.findall(r"cnd_pr_[0-9A-Za-z_\-]+", body.get_content()))
                assert len(tokens) == 1, body.get_content()
                return tokens.pop()
        time.sleep(0.05)
    raise AssertionError(f"no reset email for {recipient} in {outbox} after {OUTBOX_TIMEOUT:.0f} s")


def test_password_reset_through_the_outbox(server: ServerProcess) -> None:
    address = new_email()
    outbox = server.data_dir / "outbox"
    with server.client() as client:
        sign_up(client, address)
        old_session = sign_in(client, address)
        api_token = client.post(
            f"{API}/accounts/me/api-tokens",
            headers=bearer(str(old_session["access_token"])),
            json={"name": "before reset"},
        ).json()["token"]

        requested = client.post(f"{API}/accounts/me/password-reset", json={"email": address})
        assert requested.status_code == 202
        unknown = client.post(f"{API}/accounts/me/password-reset", json={"email": new_email()})
        assert unknown.status_code == 202
        token = wait_for_reset_email(outbox, address)

        reset = client.put(
            f"{API}/accounts/me/password-reset", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert reset.status_code == 204, reset.text
        again = client.put(
            f"{API}/accounts/me/password-reset", json={"token": token, "new_password": PASSWORD + "!"}
        )
        assert again.status_code == 401, "a reset token works once"

        fresh = sign_in(client, address, NEW_PASSWORD)
        assert "access_token" in fresh
        old = client.post(f"{API}/sessions", json={"email": address, "password": PASSWORD})
        assert old.status_code == 401
        stale = client.get(f"{API}/accounts/me", headers=bearer(str(old_session["access_token"])))
        assert stale.status_code == 401, "a reset ends every session"
        assert client.get(f"{API}/accounts/me", headers={"X-API-Key": api_token}).status_code == 401
        actions = [
            e["action"]
            for e in client.get(
                f"{API}/accounts/me/audit-log", headers=bearer(str(fresh["access_token"]))
            ).json()
        ]

    assert actions[:4] == [
        "session.sign_in_failed",
        "session.created",
        "password.reset",
        "password.reset_requested",
    ]
    assert [e for e in actions if e == "password.reset"] == ["password.reset"]
    emails = [p for p in outbox.glob("*.eml") if token in p.read_text(errors="replace")]
    assert len(emails) == 1
    log = server.stderr
    assert str(emails[0].resolve()) in log, "the outbox path is logged for the operator"
    assert_never_logged(
        log + server.stdout,
        {
            "old password": PASSWORD,
            "new password": NEW_PASSWORD,
            "reset token": token,
            "access token": str(fresh["access_token"]),
            "refresh token": str(fresh["refresh_token"]),
            "API token": api_token,
        },
    )
