"""`conduit login`, `whoami`, `logout` against a real `conduit serve`, the test playing the browser."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.processes import CLI_TIMEOUT, ServerProcess, conduit_env, fresh_database, run_cli, start_server

pytestmark = pytest.mark.e2e  # starts `conduit` processes

ADMIN = "admin@example.com"
PASSWORD = "a long and careful passphrase"


@dataclass
class Instance:
    server: ServerProcess
    env: dict[str, str]  # the server's own environment: data directory and database
    workdir: Path

    def cli(
        self, *args: str, config: Path, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`conduit` as a user's terminal runs it: only the credentials file, no database."""
        user_env = {k: v for k, v in self.env.items() if not k.startswith("CONDUIT_")}
        user_env.update(CONDUIT_CONFIG=str(config), **env)
        return run_cli(*args, env=user_env, cwd=self.workdir, check=check)

    def access_token(self) -> str:
        with self.server.client() as client:
            signed_in = client.post("/api/v1/sessions", json={"email": ADMIN, "password": PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        return str(signed_in.json()["access_token"])

    def cli_token(self) -> str:
        """What the login page does once the user has signed in."""
        with self.server.client() as client:
            issued = client.post(
                "/api/auth/cli-token", headers={"Authorization": f"Bearer {self.access_token()}"}
            )
        assert issued.status_code == 200, issued.text
        return str(issued.json()["token"])

    def key_status(self, key: str) -> int:
        with self.server.client() as client:
            return client.get("/api/v1/cli/whoami", headers={"Authorization": f"Bearer {key}"}).status_code


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    workdir = tmp_path_factory.mktemp("cli-login")
    env = conduit_env(workdir / "data", fresh_database("cli2"), log_level="warning")
    run_cli("init", "--email", ADMIN, "--password", PASSWORD, "--org-name", "Acme", env=env, cwd=workdir)
    server = start_server(workdir, env)
    yield Instance(server, env, workdir)
    server.stop()


def stored(config: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(config.read_text())
    return data


class Login:
    """`conduit login --no-browser` running in the background, waiting for the browser."""

    def __init__(self, instance: Instance, config: Path) -> None:
        user_env = {k: v for k, v in instance.env.items() if not k.startswith("CONDUIT_")}
        user_env["CONDUIT_CONFIG"] = str(config)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conduit", "login", "--no-browser", "--url", instance.server.base_url],
            env=user_env,
            cwd=instance.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.printed: list[str] = []
        self.login_url = self._read_login_url()

    def _read_login_url(self) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.printed.append(line)
            match = re.search(r"(http://\S+/cli/login\?\S+)", line)
            if match:
                return match.group(1)
        self.process.wait(CLI_TIMEOUT)
        assert self.process.stderr is not None
        raise AssertionError(f"no login URL printed:\n{''.join(self.printed)}\n{self.process.stderr.read()}")

    @property
    def port_and_state(self) -> tuple[int, str]:
        query = parse_qs(urlsplit(self.login_url).query)
        return int(query["port"][0]), query["state"][0]

    def callback(self, token: str, state: str) -> httpx.Response:
        port, _ = self.port_and_state
        return httpx.get(
            f"http://127.0.0.1:{port}/callback", params={"token": token, "state": state}, timeout=10
        )

    def finish(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=CLI_TIMEOUT)
        return self.process.returncode, "".join(self.printed) + out, err


def test_login_through_the_browser_whoami_and_logout(instance: Instance, tmp_path: Path) -> None:
    config = tmp_path / "conduit" / "config.json"
    login = Login(instance, config)
    assert login.login_url.startswith(f"{instance.server.base_url}/cli/login?")
    port, state = login.port_and_state
    page = httpx.get(login.login_url, timeout=10)
    assert page.status_code == 200
    assert "/api/auth/cli-token" in page.text

    token = instance.cli_token()
    # A browser may open a connection and leave it idle (a preconnect): it holds nothing up.
    idle = socket.create_connection(("127.0.0.1", port))
    # Another page sending the browser here (a wrong or missing state) is refused, and the
    # login goes on waiting for its own answer.
    wrong = login.callback(token, "not-the-state")
    assert wrong.status_code == 400
    assert "another login attempt" in wrong.text
    assert (
        httpx.get(f"http://127.0.0.1:{port}/callback", params={"token": token}, timeout=10).status_code == 400
    )
    assert httpx.get(f"http://127.0.0.1:{port}/elsewhere", timeout=10).status_code == 404
    assert login.process.poll() is None

    right = login.callback(token, state)
    idle.close()
    assert right.status_code == 200
    assert "logged in" in right.text
    code, out, err = login.finish()
    assert code == 0, out + err
    assert f"Logged in to {instance.server.base_url} as {ADMIN} (Acme)." in out
    assert "Traceback" not in err

    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(config.parent).st_mode) == 0o700
    credentials = stored(config)
    assert credentials["url"] == instance.server.base_url
    assert credentials["email"] == ADMIN
    key = credentials["api_key"]
    assert key.startswith("cnd_live_")
    assert key not in out, "the key goes to the file, not the terminal"
    assert instance.key_status(key) == 200

    whoami = json.loads(instance.cli("whoami", "--json", config=config).stdout)
    assert whoami["email"] == ADMIN
    assert whoami["org_name"] == "Acme"
    assert whoami["plan"] == "enterprise"
    assert {"server_count", "usage_today", "usage_limit"} <= set(whoami)
    table = instance.cli("whoami", config=config).stdout
    assert ADMIN in table
    assert "enterprise" in table

    # The CLI token was single-use.
    replay = instance.cli(
        "login", "--url", instance.server.base_url, "--token", token, config=tmp_path / "x.json", check=False
    )
    assert replay.returncode == 1
    assert replay.stderr.strip().splitlines() == [
        "error: CLI token is invalid, used or expired (HTTP 401, invalid_cli_token)"
    ]
    assert not (tmp_path / "x.json").exists()

    logout = instance.cli("logout", config=config)
    assert "Logged out." in logout.stdout
    assert not config.exists()
    assert instance.key_status(key) == 401
    again = instance.cli("logout", config=config)
    assert "No stored credentials" in again.stdout

    gone = instance.cli("whoami", config=config, check=False)
    assert gone.returncode == 1
    assert gone.stderr.strip() == "error: not logged in: run `conduit login` or set CONDUIT_API_KEY"


def test_login_with_a_pasted_token(instance: Instance, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{}")
    config.chmod(0o644)
    login = instance.cli(
        "login", "--url", instance.server.base_url, "--token", instance.cli_token(), config=config
    )
    assert f"as {ADMIN} (Acme)" in login.stdout
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    key = stored(config)["api_key"]
    assert instance.key_status(key) == 200
    # The stored URL is used from now on; CONDUIT_API_KEY overrides the stored key.
    assert json.loads(instance.cli("whoami", "--json", config=config).stdout)["email"] == ADMIN
    bad = instance.cli("whoami", config=config, check=False, CONDUIT_API_KEY="cnd_live_notarealkey")
    assert bad.returncode == 1
    assert "(HTTP 401, invalid_api_key)" in bad.stderr

    # Logout never revokes a key given in the environment, only the stored one.
    env_key = instance.cli("logout", config=config, CONDUIT_API_KEY="cnd_live_notarealkey")
    assert "Logged out." in env_key.stdout
    assert instance.key_status(key) == 401


def test_logout_of_a_key_revoked_elsewhere_still_forgets_it(instance: Instance, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    instance.cli("login", "--url", instance.server.base_url, "--token", instance.cli_token(), config=config)
    key = stored(config)["api_key"]
    with instance.server.client() as client:
        key_id = client.get("/api/v1/cli/whoami", headers={"Authorization": f"Bearer {key}"}).json()["keyId"]
        revoked = client.delete(f"/api/keys/{key_id}", headers={"Authorization": f"Bearer {key}"})
        assert revoked.status_code == 200, revoked.text
    logout = instance.cli("logout", config=config)
    assert "Logged out." in logout.stdout
    assert not config.exists()


def test_logging_in_again_revokes_the_key_it_replaces(instance: Instance, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    instance.cli("login", "--url", instance.server.base_url, "--token", instance.cli_token(), config=config)
    first = stored(config)["api_key"]
    again = instance.cli(
        "login", "--url", instance.server.base_url, "--token", instance.cli_token(), config=config
    )
    assert again.stderr == ""
    second = stored(config)["api_key"]
    assert second != first
    assert instance.key_status(first) == 401
    assert instance.key_status(second) == 200


def test_logout_keeps_the_key_when_the_server_is_unreachable(instance: Instance, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    instance.cli("login", "--url", instance.server.base_url, "--token", instance.cli_token(), config=config)
    key = stored(config)["api_key"]
    failed = instance.cli("logout", "--url", "http://127.0.0.1:9", config=config, check=False)
    assert failed.returncode == 1
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "could not revoke the key" in failed.stderr
    assert config.exists()
    assert instance.key_status(key) == 200
    instance.cli("logout", config=config)
    assert instance.key_status(key) == 401


def test_login_against_nothing_is_one_error_line(instance: Instance, tmp_path: Path) -> None:
    result = instance.cli(
        "login", "--url", "http://127.0.0.1:9", "--no-browser", config=tmp_path / "c.json", check=False
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot reach http://127.0.0.1:9")
