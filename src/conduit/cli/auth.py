"""`conduit login`, `conduit whoami`, `conduit logout`: the CLI login flow of seed 000.

`login` opens the server's sign-in page, which hands a five-minute single-use token back to a
listener on 127.0.0.1; the CLI exchanges it for an API key and stores it (0600).
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
import webbrowser
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from conduit.cli.client import Api, config_path, forget_credentials, server_url, write_credentials
from conduit.cli.common import console, err_console, print_rows

LOGIN_TIMEOUT_SECONDS = 300


class _Callback(http.server.BaseHTTPRequestHandler):
    result: dict[str, str]
    done: threading.Event

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path != "/callback" or "token" not in query:
            self.send_response(404)
            self.end_headers()
            return
        self.result.update(query)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"<p>The Conduit CLI is logged in. You can close this tab.</p>")
        self.done.set()

    def log_message(self, format: str, *args: object) -> None:
        return


def _wait_for_callback(port_holder: list[int], state: str) -> str:
    done = threading.Event()
    result: dict[str, str] = {}
    handler = type("Handler", (_Callback,), {"result": result, "done": done})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    port_holder.append(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with console.status("Waiting for the browser (Ctrl-C to cancel)..."):
            if not done.wait(LOGIN_TIMEOUT_SECONDS):
                err_console.print("[red]error:[/red] timed out waiting for the browser")
                raise typer.Exit(1)
    finally:
        server.shutdown()
    if not secrets.compare_digest(result.get("state", ""), state):
        err_console.print("[red]error:[/red] the browser answered for another login attempt; try again")
        raise typer.Exit(1)
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
        state = secrets.token_urlsafe(16)
        port_holder: list[int] = []
        waiter: dict[str, str] = {}

        def wait() -> None:
            waiter["token"] = _wait_for_callback(port_holder, state)

        listener = threading.Thread(target=wait, daemon=True)
        listener.start()
        while not port_holder:
            time.sleep(0.01)
        login_url = f"{base}/cli/login?{urlencode({'port': port_holder[0], 'state': state})}"
        console.print(f"Open this URL to log in:\n\n  {login_url}\n")
        if not no_browser:
            webbrowser.open(login_url)
        listener.join()
        if "token" not in waiter:
            raise typer.Exit(1)
        token = waiter["token"]
    verified = api.request("POST", "/api/auth/cli-verify", json_body={"token": token})
    path = write_credentials(
        {
            "url": base,
            "api_key": verified["api_key"],
            "email": verified["email"],
            "org_name": verified["org_name"],
        }
    )
    console.print(f"Logged in to {base} as {verified['email']} ({verified['org_name']}).")
    console.print(f"Key stored in {path} (mode 0600).")


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


def logout(url: Annotated[str | None, typer.Option(help="Conduit server URL (CONDUIT_URL)")] = None) -> None:
    """Revoke the stored key on the server and forget it here."""
    api = Api.from_environment(url, require_key=False)
    if api.key:
        identity = api.request("GET", "/api/v1/cli/whoami")
        if identity.get("keyId"):
            api.request("DELETE", f"/api/keys/{identity['keyId']}")
    removed = forget_credentials()
    console.print("Logged out." if removed else f"No stored credentials at {config_path()}.")
