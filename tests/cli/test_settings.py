"""`conduit settings`: every setting with its value and source, secrets never printed."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from conduit.settings import Settings
from tests.e2e.processes import conduit_env, run_cli

pytestmark = pytest.mark.e2e  # each test starts `conduit` processes

EVERY_SETTING = {f"CONDUIT_{name.upper()}" for name in Settings.model_fields}
SECRET_KEY = "settings-test-secret-" + secrets.token_urlsafe(16)
DB_PASSWORD = "db-pw-" + secrets.token_urlsafe(12)
SMTP_PASSWORD = "smtp-pw-" + secrets.token_urlsafe(12)


def configured_env(data_dir: Path) -> dict[str, str]:
    return conduit_env(
        data_dir,
        f"postgresql+asyncpg://conduit:{DB_PASSWORD}@db.internal:6432/conduit_prod",
        secret_key=SECRET_KEY,
        port=9123,
        smtp_relay_password=SMTP_PASSWORD,
        log_json="false",
    )


def test_every_setting_with_its_source_secrets_masked(tmp_path: Path) -> None:
    env = configured_env(tmp_path / "data")
    as_json = run_cli("settings", "--json", env=env, cwd=tmp_path)
    table = run_cli("settings", env=env, cwd=tmp_path)
    rows = {row["setting"]: row for row in json.loads(as_json.stdout)}

    assert set(rows) == EVERY_SETTING
    from_env = {
        "CONDUIT_DATA_DIR",
        "CONDUIT_DATABASE_URL",
        "CONDUIT_SECRET_KEY",
        "CONDUIT_PORT",
        "CONDUIT_SMTP_RELAY_PASSWORD",
        "CONDUIT_LOG_JSON",
    }
    assert {name for name, row in rows.items() if row["source"] == "env"} == from_env
    assert {row["source"] for name, row in rows.items() if name not in from_env} == {"default"}
    assert all(row["description"] for row in rows.values())
    assert rows["CONDUIT_PORT"]["value"] == "9123"
    assert rows["CONDUIT_LOG_JSON"]["value"] == "False"
    assert rows["CONDUIT_HOST"]["value"] == "127.0.0.1"
    assert rows["CONDUIT_SECRET_KEY"]["value"] == "********"
    assert rows["CONDUIT_SMTP_RELAY_PASSWORD"]["value"] == "********"
    assert (
        rows["CONDUIT_DATABASE_URL"]["value"]
        == "postgresql+asyncpg://conduit:***@db.internal:6432/conduit_prod"
    )

    # Piped output is not cut to the terminal's width: one line per setting, every cell whole.
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in table.stdout.splitlines()
        if line.startswith("│")
    ]
    assert cells == [[r["setting"], r["value"], r["source"], r["description"]] for r in rows.values()]
    for output in (as_json.stdout, as_json.stderr, table.stdout, table.stderr):
        for secret in (SECRET_KEY, DB_PASSWORD, SMTP_PASSWORD):
            assert secret not in output


def test_generated_key_file_is_named_but_never_printed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = conduit_env(data_dir, None)
    before = json.loads(run_cli("settings", "--json", env=env, cwd=tmp_path).stdout)
    [unset] = [row for row in before if row["setting"] == "CONDUIT_SECRET_KEY"]
    assert unset["source"] == "generated on first start"
    assert unset["value"] == ""

    # What `conduit serve` or `conduit init` writes on first start.
    file_key = "file-key-" + secrets.token_urlsafe(32)
    data_dir.mkdir()
    (data_dir / "secret.key").write_text(file_key + "\n")
    after = run_cli("settings", "--json", env=env, cwd=tmp_path)
    [from_file] = [row for row in json.loads(after.stdout) if row["setting"] == "CONDUIT_SECRET_KEY"]
    assert from_file["source"] == f"file {data_dir / 'secret.key'}"
    assert from_file["value"] == "********"
    assert file_key not in after.stdout + after.stderr
    database = [row for row in json.loads(after.stdout) if row["setting"] == "CONDUIT_DATABASE_URL"]
    assert database[0]["value"] == f"sqlite+aiosqlite:///{(data_dir / 'conduit.db').resolve()}"
    assert database[0]["source"] == "default"
