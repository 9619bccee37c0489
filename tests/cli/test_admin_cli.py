"""The admin CLI (`conduit config|project|user|key|system`) against a real `conduit serve`, and the
operator's `conduit org` on the same database."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conduit.cli.main import app
from tests.e2e.processes import ServerProcess, conduit_env, fresh_database, run_cli, start_server

pytestmark = pytest.mark.e2e  # starts `conduit` processes

SECRET = "ghp_cli_secret_value"
PASSPHRASE = "a passphrase for the backup"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Instance:
    server: ServerProcess
    env: dict[str, str]  # the server's: data directory and database, for `conduit org`
    workdir: Path
    admin_key: str

    def cli(self, *args: str, check: bool = True, process: bool = False) -> Run:
        """An admin's terminal: the server URL and the admin key, no database.

        In this process by default (the commands only speak HTTP to the real server, and a
        `conduit` start costs seconds); `process=True` runs the real `conduit` command.
        """
        env = {
            "CONDUIT_URL": self.server.base_url,
            "CONDUIT_API_KEY": self.admin_key,
            "CONDUIT_CONFIG": str(self.workdir / "no-credentials.json"),
        }
        if process:
            clean = {k: v for k, v in self.env.items() if not k.startswith("CONDUIT_")}
            done = run_cli(*args, env={**clean, **env}, cwd=self.workdir, check=check)
            return Run(done.returncode, done.stdout, done.stderr)
        result = CliRunner().invoke(app, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        run = Run(result.exit_code, result.stdout, result.stderr)
        if check:
            assert run.returncode == 0, f"conduit {' '.join(args)}: {run.stdout}{run.stderr}"
        return run

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def operator(self, *args: str, check: bool = True) -> CompletedProcess[str]:
        """The operator on the server's machine: `conduit org` works on the database."""
        return run_cli(*args, env=self.env, cwd=self.workdir, check=check)

    def fails(self, *args: str, code: str, process: bool = False) -> str:
        """The command exits 1 with one error line naming `code`; returns that line."""
        result = self.cli(*args, check=False, process=process)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        assert lines[0].endswith(f", {code})"), lines[0]
        return lines[0]

    def key_status(self, key: str) -> int:
        with self.server.client() as client:
            return client.get("/api/v1/cli/whoami", headers={"Authorization": f"Bearer {key}"}).status_code


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    workdir = tmp_path_factory.mktemp("cli-admin")
    env = conduit_env(workdir / "data", fresh_database("cli2"), log_level="warning")
    init = run_cli("init", "--email", "admin@example.com", "--org-name", "Acme", env=env, cwd=workdir)
    match = re.search(r"^Admin API key:\s+(cnd_live_\S+)$", init.stdout, re.MULTILINE)
    assert match, init.stdout
    server = start_server(workdir, env)
    yield Instance(server, env, workdir, match.group(1))
    server.stop()


def test_configurations_and_their_servers(instance: Instance) -> None:
    created = instance.cli("config", "create", "prod", "--description", "Production [EU]")
    assert "Production [EU]" in created.stdout, "descriptions are data, not markup"
    instance.fails("config", "create", "prod", code="config_exists")
    line = instance.fails("config", "create", "bad name", code="validation_error")
    assert "config_name" in line

    github = instance.json(
        "config",
        "add-server",
        "prod",
        "github",
        "--command",
        "npx",
        "--arg=-y",
        "--arg",
        "server-github",
        "--env",
        f"GITHUB_TOKEN={SECRET}",
        "--description",
        "GitHub",
    )
    assert (github["transport"], github["server_command"], github["args"]) == (
        "stdio",
        "npx",
        ["-y", "server-github"],
    )
    assert github["env"] == {"GITHUB_TOKEN": "********"}
    web = instance.cli(
        "config",
        "add-server",
        "prod",
        "web",
        "--server-url",
        "https://web.example.com/sse",
        "--tools",
        "fetch,search",
    )
    assert "sse" in web.stdout
    instance.fails("config", "add-server", "prod", "github", "--command", "uvx", code="server_exists")

    listed = instance.cli("config", "list", "--json").stdout
    assert SECRET not in listed
    configs = json.loads(listed)
    assert [c["config_name"] for c in configs] == ["prod"]
    assert [(s["server_name"], s["transport"], s["tools"]) for s in configs[0]["servers"]] == [
        ("github", "stdio", None),
        ("web", "sse", ["fetch", "search"]),
    ]
    shown = instance.cli("config", "show", "prod").stdout
    assert "github" in shown
    assert "https://web.example.com/sse" in shown
    assert "fetch, search" in shown
    assert SECRET not in shown

    updated = instance.json(
        "config", "update-server", "prod", "web", "--server-url", "https://web.example.com/mcp"
    )
    assert (updated["transport"], updated["tools"]) == ("streamable_http", ["fetch", "search"])
    copied = instance.json("config", "copy", "prod", "prod-copy")
    assert [s["server_name"] for s in copied["servers"]] == ["github", "web"]
    renamed = instance.json("config", "rename", "prod-copy", "staging")
    assert renamed["config_name"] == "staging"
    assert "Configuration 'staging' deleted" in instance.cli("config", "delete", "staging").stdout
    assert "Server 'web' removed from 'prod'" in instance.cli("config", "remove-server", "prod", "web").stdout
    servers = instance.json("config", "servers", "prod")
    assert [s["server_name"] for s in servers] == ["github"]

    line = instance.fails("config", "show", "missing", code="config_not_found", process=True)
    assert line == "error: Configuration 'missing' not found (HTTP 404, config_not_found)"


def test_projects_users_and_keys(instance: Instance) -> None:
    instance.cli("config", "create", "tools")
    instance.cli("project", "create", "web", "--description", "The web team")
    assigned = instance.json("project", "assign-config", "web", "tools")
    assert assigned["config_name"] == "tools"
    instance.fails("project", "assign-config", "web", "missing", code="config_not_found")
    user = instance.json("user", "create", "dev@example.com", "--role", "developer")
    assert (user["email"], user["role"]) == ("dev@example.com", "developer")
    instance.fails("user", "create", "dev@example.com", code="user_exists")
    instance.fails("key", "create", "dev@example.com", "--project", "web", code="user_not_in_project")
    added = instance.json("project", "add-user", "web", "dev@example.com")
    assert added["users"] == ["dev@example.com"]
    assert instance.json("project", "show", "web")["users"] == ["dev@example.com"]
    assert "dev@example.com" in instance.cli("project", "users", "web").stdout
    assert instance.json("user", "projects", "dev@example.com") == ["web"]
    assert {u["email"] for u in instance.json("user", "list")} == {"admin@example.com", "dev@example.com"}

    created = instance.cli(
        "key", "create", "dev@example.com", "--project", "web", "--name", "laptop", process=True
    )
    keys = re.findall(r"cnd_live_\w{38}", created.stdout)
    assert len(keys) == 1, f"the key is printed once: {created.stdout}"
    key = keys[0]
    assert key in created.stdout.splitlines(), "on a line of its own, never folded into a table"
    assert "shown only this once" in created.stderr
    assert instance.key_status(key) == 200

    listed = instance.cli("key", "list", "dev@example.com", "--json").stdout
    assert key not in listed
    (entry,) = json.loads(listed)
    assert (entry["name"], entry["project_name"], entry["status"], entry["api_key"]) == (
        "laptop",
        "web",
        "active",
        None,
    )
    key_id = entry["key_id"]

    rotated = instance.json("key", "rotate", "dev@example.com", key_id)
    assert instance.key_status(key) == 401
    assert instance.key_status(rotated["api_key"]) == 200
    key, key_id = rotated["api_key"], rotated["key_id"]
    assert instance.json("key", "disable", "dev@example.com", key_id)["status"] == "disabled"
    assert instance.key_status(key) == 401
    assert instance.json("key", "enable", "dev@example.com", key_id)["status"] == "active"
    assert instance.key_status(key) == 200
    assert f"Key {key_id} deleted" in instance.cli("key", "delete", "dev@example.com", key_id).stdout
    assert instance.key_status(key) == 401
    instance.fails("key", "delete", "dev@example.com", key_id, code="api_key_not_found")

    assert instance.json("user", "set-role", "dev@example.com", "viewer")["role"] == "viewer"
    assert instance.json("project", "remove-user", "web", "dev@example.com")["users"] == []
    assert instance.json("project", "unassign-config", "web")["config_name"] is None
    assert "Project 'web' deleted" in instance.cli("project", "delete", "web").stdout
    assert "User dev@example.com deleted" in instance.cli("user", "delete", "dev@example.com").stdout
    instance.fails("user", "show", "dev@example.com", code="user_not_found")


def test_backup_and_restore(instance: Instance, tmp_path: Path) -> None:
    instance.cli("config", "create", "keep")
    instance.cli("config", "add-server", "keep", "vault", "--command", "uvx", "--env", f"TOKEN={SECRET}")
    instance.cli("project", "create", "kept")
    instance.cli("project", "assign-config", "kept", "keep")
    assert instance.json("system", "health")["database"] == "ok"

    backup = tmp_path / "backup.json"
    backup.write_text("old")
    backup.chmod(0o644)
    written = instance.cli("system", "backup", "-o", str(backup), process=True)
    assert f"Backup written to {backup}" in written.stdout
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    text = backup.read_text()
    assert SECRET not in text
    document = json.loads(text)
    vault = next(s for s in document["configuration"]["servers"] if s["name"] == "vault")
    assert vault["env_names"] == ["TOKEN"]
    sealed = tmp_path / "sealed.json"
    instance.cli("system", "backup", "-o", str(sealed), "--include-secrets", "--passphrase", PASSPHRASE)
    assert stat.S_IMODE(os.stat(sealed).st_mode) == 0o600
    assert SECRET not in sealed.read_text()

    instance.cli("project", "delete", "kept")
    instance.cli("config", "create", "stray")
    restored = instance.cli("system", "restore", str(backup), "--yes", process=True)
    assert "Restored" in restored.stdout
    assert restored.stderr == "", "the server is still there with its secret"
    names = [c["config_name"] for c in instance.json("config", "list")]
    assert "keep" in names
    assert "stray" not in names
    assert instance.json("project", "show", "kept")["config_name"] == "keep"

    instance.cli("config", "delete", "keep")  # its server goes with it, and the secret
    restored = instance.cli("system", "restore", str(backup), "--yes")
    assert "vault: TOKEN" in restored.stderr
    assert instance.json("config", "show", "keep")["servers"][0]["env"] == {}

    instance.fails(
        "system",
        "restore",
        str(sealed),
        "--yes",
        "--passphrase",
        "not the passphrase",
        code="wrong_passphrase",
    )
    restored = instance.cli("system", "restore", str(sealed), "--yes", "--passphrase", PASSPHRASE)
    assert restored.stderr == ""
    assert instance.json("config", "show", "keep")["servers"][0]["env"] == {"TOKEN": "********"}

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (broken, tmp_path / "missing.json"):
        result = instance.cli("system", "restore", str(path), "--yes", check=False)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith(f"error: cannot read {path}")
    document["configuration"]["configs"][0]["servers"].append({"server": "ghost"})
    broken.write_text(json.dumps(document))
    line = instance.fails("system", "restore", str(broken), "--yes", code="invalid_backup")
    assert "unknown server 'ghost'" in line


def test_org_plans_on_the_local_database(instance: Instance) -> None:
    plans = instance.operator("org", "plans").stdout
    rows = {line.split()[1]: line for line in plans.splitlines() if line.startswith("│")}
    assert set(rows) >= {"free", "pro", "team", "scale", "enterprise"}
    assert rows["free"].split()[3] == "3", "free: 3 servers"

    (acme,) = [
        o for o in json.loads(instance.operator("org", "list", "--json").stdout) if o["name"] == "Acme"
    ]
    assert acme["plan"] == "enterprise"
    changed = instance.operator("org", "set-plan", acme["slug"], "pro")
    assert changed.stdout.strip() == "Acme: plan enterprise -> pro"
    orgs = {o["id"]: o for o in json.loads(instance.operator("org", "list", "--json").stdout)}
    assert orgs[acme["id"]]["plan"] == "pro"
    assert instance.json("system", "health")["organization"]["plan"] == "pro"

    for args, code in [
        (("acme-nope", "pro"), "organization_not_found"),
        ((acme["id"], "platinum"), "invalid_plan"),
    ]:
        result = instance.operator("org", "set-plan", *args, check=False)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert result.stderr.strip().endswith(f"({code})"), result.stderr


def test_without_a_key_or_server_every_command_is_one_error_line(instance: Instance, tmp_path: Path) -> None:
    env = {k: v for k, v in instance.env.items() if not k.startswith("CONDUIT_")}
    env["CONDUIT_CONFIG"] = str(tmp_path / "none.json")
    env["CONDUIT_URL"] = instance.server.base_url
    result = run_cli("config", "list", env=env, cwd=instance.workdir, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: not logged in: run `conduit login` or set CONDUIT_API_KEY"
    env["CONDUIT_API_KEY"] = instance.admin_key
    env["CONDUIT_URL"] = "http://127.0.0.1:9"
    result = run_cli("project", "list", env=env, cwd=instance.workdir, check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:9")
    with httpx.Client() as client:  # the server is still fine
        assert client.get(f"{instance.server.base_url}/health").status_code == 200
