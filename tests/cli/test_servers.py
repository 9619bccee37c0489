"""`conduit servers` against a real `conduit serve`, with real MCP upstreams behind it: the
fixture server over stdio and over streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from conduit.cli.main import app
from tests.e2e.processes import ServerProcess, conduit_env, fresh_database, run_cli, start_server
from tests.mcp_servers import ServerProcess as McpServerProcess
from tests.mcp_servers import StdioCommand

pytestmark = pytest.mark.e2e  # starts `conduit` processes

SECRET = "upstream-token-never-shown"
STDERR_LINE = "fixture server starting up"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Instance:
    server: ServerProcess
    env: dict[str, str]
    workdir: Path
    admin_key: str

    def cli(self, *args: str, check: bool = True, process: bool = False) -> Run:
        """`conduit servers ...` in an admin's terminal: the server URL and the admin key.

        In this process by default (the commands only speak HTTP to the real server, and a
        `conduit` start costs a second or more); `process=True` runs the real `conduit` command.
        """
        env = {
            "CONDUIT_URL": self.server.base_url,
            "CONDUIT_API_KEY": self.admin_key,
            "CONDUIT_CONFIG": str(self.workdir / "no-credentials.json"),
        }
        if process:
            clean = {k: v for k, v in self.env.items() if not k.startswith("CONDUIT_")}
            done = run_cli("servers", *args, env={**clean, **env}, cwd=self.workdir, check=check)
            return Run(done.returncode, done.stdout, done.stderr)
        result = CliRunner().invoke(app, ["servers", *args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        run = Run(result.exit_code, result.stdout, result.stderr)
        if check:
            assert run.returncode == 0, f"conduit servers {' '.join(args)}: {run.output}"
        return run

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def fails(self, *args: str, code: str, process: bool = False) -> str:
        """The command exits 1 with one error line naming the API's `code`; returns that line."""
        result = self.cli(*args, check=False, process=process)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, result.output
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        assert lines[0].endswith(f", {code})"), lines[0]
        return lines[0]

    def until(self, *args: str, shows: str, timeout: float = 15.0) -> Run:
        """Run the command until its output shows `shows` (logs are written in batches)."""
        deadline = time.monotonic() + timeout
        while shows not in (run := self.cli(*args)).stdout:
            assert time.monotonic() < deadline, f"conduit servers {' '.join(args)}: no {shows!r}"
            time.sleep(0.2)
        return run


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    workdir = tmp_path_factory.mktemp("cli-servers")
    env = conduit_env(workdir / "data", fresh_database("cli_servers"), log_level="warning")
    init = run_cli("init", "--email", "admin@example.com", "--org-name", "Acme", env=env, cwd=workdir)
    match = re.search(r"^Admin API key:\s+(cnd_live_\S+)$", init.stdout, re.MULTILINE)
    assert match, init.stdout
    server = start_server(workdir, env)
    yield Instance(server, env, workdir, match.group(1))
    server.stop()


def table_rows(output: str) -> list[list[str]]:
    """The cells of each body row of the tables in `output`."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row starting with `first_cell`."""
    for cells in table_rows(output):
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{output}")


async def call_through_gateway(endpoint: str, key: str, message: str) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        Client(streamable_http_client(endpoint, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("echo", {"message": message})
        assert not result.is_error


def test_a_stdio_server_from_registration_to_removal(instance: Instance, fixture_stdio: StdioCommand) -> None:
    # A wrapper that writes a line to stderr, then runs the fixture server: what `logs --stderr` shows.
    wrapper = f'echo "{STDERR_LINE}" >&2; exec "$0" "$@"'
    added = instance.cli(
        "add",
        "Fixture",
        "--command",
        "/bin/sh",
        "--arg=-c",
        f"--arg={wrapper}",
        f"--arg={fixture_stdio.command}",
        *(f"--arg={a}" for a in fixture_stdio.args),
        "--env",
        f"FIXTURE_TOKEN={SECRET}",
        "--description",
        "The test upstream [stdio]",
        process=True,
    )
    endpoint = f"{instance.server.base_url}/s/acme/fixture/mcp"
    assert "Registered Fixture (srv_" in added.stdout
    assert f"Gateway endpoint: {endpoint}\n" in added.stdout
    outputs = [added]

    listed = instance.cli("list")
    name, slug, transport, status, _health, gateway_endpoint = table_row(listed.stdout, "Fixture")
    assert [name, slug, transport, status, gateway_endpoint] == [
        "Fixture",
        "fixture",
        "stdio",
        "active",
        endpoint,
    ]
    [as_json] = [s for s in instance.json("list") if s["slug"] == "fixture"]
    assert as_json["gateway_endpoint"] == endpoint
    assert as_json["description"] == "The test upstream [stdio]"

    discovered = instance.cli("discover", "fixture")
    assert re.search(
        r"^Fixture: \d+ tools \(\d+ added, 0 changed, 0 removed, \d+ unchanged\)$", discovered.stdout, re.M
    )
    assert table_row(discovered.stdout, "echo") == ["echo", "yes", "", "active"]

    disabled = instance.cli("tool", "Fixture", "fail", "--disable", "--display-name", "Always [fails]")
    assert table_row(disabled.stdout, "enabled") == ["enabled", "no"]
    tools = instance.cli("tools", as_json["id"])
    assert table_row(tools.stdout, "fail") == ["fail", "no", "Always [fails]", "active"]
    assert table_row(tools.stdout, "echo") == ["echo", "yes", "", "active"]
    shown = instance.cli("show", "fixture")
    assert table_row(shown.stdout, "command") == ["command", "/bin/sh"]
    assert table_row(shown.stdout, "fail") == ["fail", "no", "Always [fails]", "active"]
    outputs += [listed, shown, instance.cli("show", "fixture", "--json")]

    echoed = instance.cli("call", "fixture", "echo", "--arg", "message=hi", process=True)
    assert echoed.stdout == "hi\n"

    assert "No requests logged yet." in instance.cli("logs", "fixture").stdout
    asyncio.run(call_through_gateway(endpoint, instance.admin_key, "through the gateway"))
    logged = instance.until("logs", "fixture", shows="tools/call")
    calls = [row[1:4] for row in table_rows(logged.stdout) if row[1] == "tools/call"]
    assert calls == [["tools/call", "echo", "ok"]]
    assert table_rows(logged.stdout)[0][1] == "initialize", "oldest first"
    assert instance.json("logs", "fixture", "--limit", "1")["logs"][0]["keyId"].startswith("key_")
    stderr = instance.until("logs", "fixture", "--stderr", shows=STDERR_LINE)
    assert re.search(rf"^\d{{4}}-\d\d-\d\dT\S+Z  {STDERR_LINE}$", stderr.stdout, re.M)
    assert all(SECRET not in run.output for run in outputs)

    refused = instance.cli("remove", "fixture", check=False)  # no terminal to answer the question
    assert refused.returncode == 1
    assert "fixture" in [s["slug"] for s in instance.json("list")]
    assert instance.cli("remove", "fixture", "--yes").stdout == "Server 'Fixture' removed\n"
    assert "fixture" not in [s["slug"] for s in instance.json("list")]
    gone = instance.cli("show", "fixture", check=False)
    assert (gone.returncode, gone.stderr.strip()) == (
        1,
        "error: no server 'fixture' in the organization (see `conduit servers list`)",
    )


def test_an_http_server_and_what_goes_wrong(instance: Instance, fixture_http: McpServerProcess) -> None:
    added = instance.json(
        "add", "Web [EU]", "--url", fixture_http.url, "--timeout", "5", "--transport", "streamable_http"
    )
    assert added["slug"] == "web-eu"
    assert added["transport"] == "streamable_http"
    shown = instance.cli("show", "Web [EU]")
    assert table_row(shown.stdout, "upstream_url") == ["upstream_url", fixture_http.url]
    assert table_row(shown.stdout, "timeout_seconds") == ["timeout_seconds", "5.0"]

    result = instance.json("call", "web-eu", "echo", "--json-args", '{"message": "from JSON"}')
    assert result["isError"] is False
    assert result["result"]["content"][0]["text"] == "from JSON"
    failed = instance.cli("call", "web-eu", "fail", "--arg", "message=it broke", check=False)
    assert failed.returncode == 1
    assert "it broke" in failed.stdout
    assert failed.stderr.strip() == "error: fail reported an error (isError)"
    # --arg values are JSON when they parse: a number stays a number, the fixture wants a string.
    typed = instance.cli("call", "web-eu", "echo", "--arg", "message=42", check=False)
    assert typed.returncode == 1
    assert "message" in typed.stdout

    line = instance.fails("add", "Web [EU]", "--url", fixture_http.url, code="server_exists")
    assert "HTTP 409" in line
    instance.fails("add", "Bad", "--url", fixture_http.url, "--timeout", "0", code="validation_error")
    usage = instance.cli("add", "Both", "--url", fixture_http.url, "--command", "npx", check=False)
    assert usage.returncode == 2
    assert "give exactly one of them" in usage.stderr
    leaked = instance.cli("add", "Env", "--command", "npx", "--env", SECRET, check=False)
    assert leaked.returncode == 2
    assert SECRET not in leaked.output
    missing = instance.cli("tool", "web-eu", "nope", "--enable", check=False)
    assert missing.returncode == 1
    assert "has no tool 'nope'" in missing.stderr

    key_env = {"CONDUIT_API_KEY": "cnd_live_not_a_key", "CONDUIT_CONFIG": str(instance.workdir / "none.json")}
    denied = CliRunner().invoke(
        app, ["servers", "list", "--conduit-url", instance.server.base_url], env=key_env
    )
    assert denied.exit_code == 1
    assert denied.stderr.startswith("error: ")
    assert "HTTP 401" in denied.stderr
    instance.cli("remove", "web-eu", "--yes")
