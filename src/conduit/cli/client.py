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
from typing import Any, NoReturn

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


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_credentials(data: dict[str, Any]) -> Path:
    path = config_path()
    write_private_file(path, json.dumps(data, indent=2))
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
            fail("not logged in: run `conduit login` or set CONDUIT_API_KEY")
        return cls(server_url(url), key)

    def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, bytes]]] | None = None,
    ) -> httpx.Response:
        """The 2xx response; `ApiError` for anything else. A `path` may be a whole URL."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        url = path if path.startswith(("http://", "https://")) else f"{self.url}{path}"
        try:
            response = httpx.request(
                method,
                url,
                json=json_body,
                params=params,
                files=files,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(_error_text(response), response.status_code)
        return response

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, bytes]]] | None = None,
    ) -> Any:
        """The decoded body of a 2xx answer; `ApiError` for anything else."""
        response = self.send(method, path, json_body=json_body, params=params, files=files)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, bytes]]] | None = None,
    ) -> Any:
        """`call`, with an error printed as one line and the command ended (exit status 1)."""
        try:
            return self.call(method, path, json_body=json_body, params=params, files=files)
        except ApiError as exc:
            fail(exc.message)


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _error_text(response: httpx.Response) -> str:
    """One line: the message, the field problems if any, the status and the error code."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    code = body.get("code") or body.get("error") or "error"
    detail = body.get("detail")
    problems: Any = None
    if isinstance(detail, dict):  # seed 001's envelope: {"message", "problems"}
        message, problems = detail.get("message"), detail.get("problems")
    elif body.get("error") and body.get("error") != code:  # {"code", "error", "detail"?}
        message, problems = body["error"], detail
    else:
        message = detail
    text = str(message or code)
    if isinstance(problems, list) and problems:
        text += ": " + "; ".join(_problem(p) for p in problems)
    return " ".join(f"{text} (HTTP {response.status_code}, {code})".split())


def _problem(problem: Any) -> str:
    if isinstance(problem, dict) and "msg" in problem:
        where = ".".join(str(part) for part in problem.get("loc", []) if part != "body")
        return f"{where}: {problem['msg']}" if where else str(problem["msg"])
    return str(problem)
