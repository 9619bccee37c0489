"""`conduit init`: the first admin, organization and admin key, once; `--new-key` for another."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e  # each test starts `conduit` processes

KEY = re.compile(r"cnd_live_[0-9A-Za-z]+")
ADMIN = "admin@example.com"


def printed(label: str, stdout: str) -> str:
    match = re.search(rf"^{label}:\s+(\S+)", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


async def test_init_prints_a_working_key_once_and_new_key_another(cli: Cli) -> None:
    first = cli("init", "--email", ADMIN, "--org-name", "Acme")
    first_key = printed("Admin API key", first.stdout)
    password = printed("Admin password", first.stdout)
    assert KEY.findall(first.stdout) == [first_key], "the key is printed exactly once"
    assert len(first_key) == len("cnd_live_") + 32 + 6, "32 random characters and a 6-character checksum"
    assert re.search(r"^Organization:\s+Acme \(org_\w+\)$", first.stdout, re.MULTILINE)

    again = cli("init", "--email", ADMIN, "--org-name", "Other")
    assert "already initialised" in again.stdout
    assert not KEY.search(again.stdout + again.stderr)
    assert "Admin password" not in again.stdout

    mistaken = cli("init", "--new-key", "--email", "someone-else@example.com", check=False)
    assert mistaken.returncode == 1
    assert mistaken.stderr.startswith("error: someone-else@example.com is not the instance admin")
    assert not KEY.search(mistaken.stdout)

    renewed = cli("init", "--new-key", "--email", ADMIN.upper())
    second_key = printed("Admin API key", renewed.stdout)
    assert second_key != first_key
    assert KEY.findall(renewed.stdout) == [second_key]
    assert "Admin password" not in renewed.stdout, "an existing admin's password is never reset or shown"

    async with cli.api() as api:
        for key in (first_key, second_key):
            me = await api.get("/api/v1/accounts/me", headers={"X-API-Key": key})
            assert me.status_code == 200, me.text
            assert me.json()["email"] == ADMIN
        wrong = await api.get("/api/v1/accounts/me", headers={"X-API-Key": first_key[:-6] + second_key[-6:]})
        assert wrong.status_code == 401
        signed_in = await api.post("/api/v1/sessions", json={"email": ADMIN, "password": password})
        assert signed_in.status_code == 200, "the generated password is the admin's password"
        audit = await api.get(
            "/api/v1/accounts/me/audit-log", headers={"Authorization": f"Bearer {second_key}"}
        )
        actions = [e["action"] for e in audit.json()]
    assert actions.count("api_key.created") == 2
    assert actions[-1] == "account.created"


async def test_init_refuses_a_common_password_then_takes_a_chosen_one(cli: Cli) -> None:
    refused = cli("init", "--email", ADMIN, "--password", "password123", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error:"), refused.stderr
    assert "Traceback" not in refused.stderr
    assert not KEY.search(refused.stdout)

    password = "an admin passphrase chosen by hand"
    created = cli("init", "--email", ADMIN, "--password", password)
    assert KEY.search(created.stdout), "the refused attempt left no half-made admin behind"
    assert password not in created.stdout + created.stderr
    assert "Admin password" not in created.stdout
    assert re.search(r"^Organization:\s+Default \(org_\w+\)$", created.stdout, re.MULTILINE)
    async with cli.api() as api:
        signed_in = await api.post("/api/v1/sessions", json={"email": ADMIN, "password": password})
    assert signed_in.status_code == 200
