"""`conduit login`, `conduit whoami`, `conduit logout`: the CLI login flow of seed 000.

`login` opens the server's sign-in page, which hands a five-minute single-use token back to a
listener on 127.0.0.1; the CLI exchanges it for an API key and stores it (0600).
"""

from __future__ import annotations

import html
import http.server
import json
import secrets
import threading
import webbrowser
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer
from rich.markup import escape

from conduit.cli.client import (
    Api,
    ApiError,
    config_path,
    fail,
    forget_credentials,
    read_credentials,
    server_url,
    write_credentials,
)
from conduit.cli.common import console, err_console, print_rows

LOGIN_TIMEOUT_SECONDS = 300


class _Callback(http.server.BaseHTTPRequestHandler):
    """The browser's redirect back to the terminal: `/callback?token=...&state=...`."""

    state: str
    result: dict[str, str]
    done: threading.Event
    timeout = 10  # seconds; an idle connection (a browser's preconnect) is dropped, not waited on

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path != "/callback":
            self._reply(404, "Not found.")
            return
        # Any web page can send the browser here; only the page this login opened knows the state.
        if not secrets.compare_digest(query.get("state", "").encode(), self.state.encode()):
            self._reply(400, "This answer belongs to another login attempt. Start again from the terminal.")
            return
        if not query.get("token"):
            self._reply(400, "The answer carries no token. Start again from the terminal.")
            return
        self.result["token"] = query["token"]
        self._reply(200, "The Conduit CLI is logged in. You can close this tab.")
        self.done.set()

    def _reply(self, status: int, text: str) -> None:
        body = f"<!doctype html><meta charset=utf-8><title>Conduit CLI</title><p>{html.escape(text)}</p>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        return


def _token_from_browser(base: str, open_browser: bool) -> str:
    """Listen on 127.0.0.1, send the user to the login page, and wait for the redirect back."""
    state = secrets.token_urlsafe(16)
    done = threading.Event()
    result: dict[str, str] = {}
    handler = type("Handler", (_Callback,), {"state": state, "result": result, "done": done})
    # Threaded: a connection the browser opens and leaves idle must not hold up its real request.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    listener = threading.Thread(target=server.serve_forever, daemon=True)
    listener.start()
    try:
        login_url = f"{base}/cli/login?{urlencode({'port': server.server_address[1], 'state': state})}"
        console.print(f"Open this URL to log in:\n\n  {escape(login_url)}\n", highlight=False)
        if open_browser:
            webbrowser.open(login_url)
        with console.status("Waiting for the browser (Ctrl-C to cancel)..."):
            if not done.wait(LOGIN_TIMEOUT_SECONDS):
                err_console.print("[red]error:[/red] timed out waiting for the browser")
                raise typer.Exit(1)
    finally:
        server.shutdown()
        server.server_close()
    return result["token"]


def login(
    url: Annotated[str | None, typer.Option(help="Conduit server URL (CONDUIT_URL)")] = None,
    token: Annotated[str | None, typer.Option(help="A CLI token copied from the login page")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the URL only")] = False,
) -> None:
    """Log in through the browser and store an API key for this machine."""
    base = server_url(url)
    api = Api(base, None)
    api.request("GET", "/api/v1/cli/config")
    if token is None:
        token = _token_from_browser(base, open_browser=not no_browser)
    verified = api.request("POST", "/api/auth/cli-verify", json_body={"token": token})
    previous = read_credentials()
    path = write_credentials(
        {
            "url": base,
            "api_key": verified["api_key"],
            "email": verified["email"],
            "org_name": verified["org_name"],
        }
    )
    who = f"{verified['email']} ({verified['org_name']})"
    console.print(f"Logged in to {escape(base)} as {escape(who)}.", highlight=False)
    console.print(f"Key stored in {escape(str(path))} (mode 0600).", highlight=False)
    if previous.get("api_key") and previous["api_key"] != verified["api_key"]:
        # The file holds one key: the one it held before would otherwise live on, unheld.
        try:
            _revoke(previous)
        except ApiError as exc:
            err_console.print(
                f"warning: the key stored before could not be revoked: {escape(exc.message)}", highlight=False
            )


def whoami(
    url: Annotated[str | None, typer.Option(help="Conduit server URL (CONDUIT_URL)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Who the stored key belongs to, and its organization's plan and usage."""
    api = Api.from_environment(url)
    status = api.request("GET", "/api/auth/cli-status")
    if as_json:
        print(json.dumps(status, indent=2))
        return
    print_rows([{"field": k, "value": v} for k, v in status.items()], ["field", "value"], as_json=False)


def _revoke(stored: dict[str, Any], url: str | None = None) -> None:
    """Revoke a stored key on its server; one already revoked or expired (401) is fine."""
    api = Api(server_url(url or stored.get("url")), stored["api_key"])
    try:
        identity = api.call("GET", "/api/v1/cli/whoami")
        if identity.get("keyId"):
            api.call("DELETE", f"/api/keys/{identity['keyId']}")
    except ApiError as exc:
        if exc.status != 401:
            raise


def logout(url: Annotated[str | None, typer.Option(help="Conduit server URL (CONDUIT_URL)")] = None) -> None:
    """Revoke the stored key on the server and forget it here.

    Only the key `conduit login` stored: a `CONDUIT_API_KEY` in the environment is never revoked.
    """
    stored = read_credentials()
    if not stored.get("api_key"):
        console.print(f"No stored credentials at {escape(str(config_path()))}.", highlight=False)
        return
    try:
        _revoke(stored, url)
    except ApiError as exc:
        # Kept, so the key is not left alive on the server with nobody holding it.
        fail(
            f"could not revoke the key on the server ({exc.message}); it is still stored in "
            f"{config_path()}: try again, or delete that file to forget it anyway"
        )
    forget_credentials()
    console.print("Logged out.")
