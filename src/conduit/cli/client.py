"""Talking to a Conduit server from the CLI: where it is, which key to use, and HTTP with errors
printed in one line.

The server URL and key come from `--url`/`CONDUIT_URL` and `CONDUIT_API_KEY`, else from the
credentials file `conduit login` writes (`$CONDUIT_CONFIG`, or `~/.config/conduit/config.json`,
mode 0600).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.markup import escape

from conduit.cli.common import err_console


def config_path() -> Path:
    explicit = os.environ.get("CONDUIT_CONFIG")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "conduit" / "config.json"


def read_credentials() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data


def write_credentials(data: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def forget_credentials() -> bool:
    path = config_path()
    if path.exists():
        path.unlink()
        return True
    return False


def default_url() -> str:
    from conduit.settings import Settings

    return Settings().resolved_public_url


def server_url(explicit: str | None = None) -> str:
    url = explicit or os.environ.get("CONDUIT_URL") or read_credentials().get("url") or default_url()
    return str(url).rstrip("/")


@dataclass
class Api:
    url: str
    key: str | None
    timeout: float = 30.0

    @classmethod
    def from_environment(cls, url: str | None = None, *, require_key: bool = True) -> Api:
        credentials = read_credentials()
        key = os.environ.get("CONDUIT_API_KEY") or credentials.get("api_key")
        if require_key and not key:
            err_console.print("[red]error:[/red] not logged in: run `conduit login` or set CONDUIT_API_KEY")
            raise typer.Exit(1)
        return cls(server_url(url), key)

    def request(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            response = httpx.request(
                method,
                f"{self.url}{path}",
                json=json_body,
                params=params,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            err_console.print(f"[red]error:[/red] cannot reach {escape(self.url)}: {escape(str(exc))}")
            raise typer.Exit(1) from None
        if response.status_code >= 400:
            err_console.print(f"[red]error:[/red] {escape(_error_text(response))}")
            raise typer.Exit(1)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = body.get("detail")
    if isinstance(detail, dict):
        detail = detail.get("message")
    message = body.get("error") if "code" in body and body.get("error") != body.get("code") else detail
    return f"{message or detail or body} (HTTP {response.status_code}, {body.get('code', 'error')})"
