"""Collect a fresh, held-out set of real, harmless MCP servers' listings into
data/harmless-fresh/: one JSON file per server, in the format of data/harmless/ (without `split`).

Each package is installed beforehand outside the repository: an npm package with
`npm install --prefix ROOT/npm/<name with / and @ as _> PACKAGE`, a PyPI package into its own
venv ROOT/venvs/<package>. Each server is started over stdio with dummy credentials (URLs point
at 127.0.0.1) inside a fresh network namespace that has only loopback (`unshare -n`), so nothing
it does at start-up reaches the network; its listings are read with conduit.scanning.collect
(all pages). No tool is called and no scanner is run here.

    .venv/bin/python eval/scanner/collect_harmless.py [--timeout SECONDS] [NAME ...]

Without names it collects every server not in FAILED (name one to retry it). Install notes for
the collected set (Node 20, npm 11: npm picks the newest version whose `engines` allow Node 20,
which is not always the registry's `latest`):
- venvs use Python 3.11, except kagimcp, pagerduty-mcp, mcp-server-docker, dbt-mcp,
  pdf-tools-mcp and postgres-mcp, which need 3.12;
- `pip install "mcp<2"` into the venvs of mcp-server-sqlite, mcp-server-duckdb,
  office-powerpoint-mcp-server, mcp-server-tree-sitter, mcp-server-sentry (plus httpx),
  cli-mcp-server and pdf-tools-mcp (they predate the mcp 2.x API), and `pydantic<2.11` into
  semgrep-mcp's;
- npm `--ignore-scripts` (no browser downloads) for @line/line-bot-mcp-server,
  @executeautomation/playwright-mcp-server, mcp-mermaid, @azure-devops/mcp and
  @larksuiteoapi/lark-mcp; then `apt-get install libsecret-1-dev` and `npm rebuild keytar` for
  @azure-devops/mcp, and `npm rebuild better-sqlite3` for @bytebase/dbhub.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from conduit.scanning.collect import collect, spec_for_command

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "harmless-fresh"
COLLECTED_WITH = (
    "tools/list, prompts/list, resources/list, resources/templates/list over stdio (all pages), "
    "dummy credentials"
)
ROOT = "/tmp/harmless-fresh"  # noqa: S108 - the scratch directory the packages are installed in
HOME = f"{ROOT}/home"  # the servers' $HOME, with the dummy files they read
LOCAL = "http://127.0.0.1:9"  # nothing listens there
TOKEN = "dummy-token-0000000000000000"

# (file name, package, registry, executable (npm bin or venv console script), args, env)
SERVERS: list[tuple[str, str, str, str, list[str], dict[str, str]]] = []


def npm(name: str, package: str, binary: str, args: list[str] | None = None, **env: str) -> None:
    SERVERS.append((name, package, "npm", binary, args or [], env))


def pypi(name: str, package: str, binary: str, args: list[str] | None = None, **env: str) -> None:
    SERVERS.append((name, package, "pypi", binary, args or [], env))


# --- npm ---------------------------------------------------------------------------------------
npm("stripe", "@stripe/mcp", "mcp", ["--tools=all", "--api-key=sk_test_dummy000000000000000000"])
npm(
    "supabase",
    "@supabase/mcp-server-supabase",
    "mcp-server-supabase",
    ["--access-token", TOKEN],
    SUPABASE_ACCESS_TOKEN=TOKEN,
)
npm("browsermcp", "@browsermcp/mcp", "mcp-server-browsermcp")
npm("airtable", "airtable-mcp-server", "airtable-mcp-server", AIRTABLE_API_KEY="pat" + TOKEN)
npm("asana", "@roychri/mcp-server-asana", "mcp-server-asana", ASANA_ACCESS_TOKEN=TOKEN)
npm(
    "bitwarden",
    "@bitwarden/mcp-server",
    "mcp-server-bitwarden",
    BW_SESSION=TOKEN,
    BW_CLIENT_ID="dummy",
    BW_CLIENT_SECRET="dummy",
)
npm(
    "azure",
    "@azure/mcp",
    "azmcp",
    ["server", "start"],
    AZURE_TENANT_ID="00000000-0000-0000-0000-000000000000",
)
npm("perplexity", "@perplexity-ai/mcp-server", "perplexity-mcp", PERPLEXITY_API_KEY="pplx-" + TOKEN)
npm("netlify", "@netlify/mcp", "netlify-mcp", NETLIFY_PERSONAL_ACCESS_TOKEN=TOKEN)
npm("playwright-executeautomation", "@executeautomation/playwright-mcp-server", "playwright-mcp-server")
npm("magic-21st", "@21st-dev/magic", "magic", [f"API_KEY={TOKEN}"], API_KEY=TOKEN)
npm(
    "line-bot",
    "@line/line-bot-mcp-server",
    "line-bot-mcp-server",
    CHANNEL_ACCESS_TOKEN=TOKEN,
    DESTINATION_USER_ID="U00000000000000000000000000000000",
)
npm("dbhub", "@bytebase/dbhub", "dbhub", ["--transport", "stdio", "--demo"])
npm("kubernetes-manusa", "kubernetes-mcp-server", "kubernetes-mcp-server")
npm("searxng", "mcp-searxng", "mcp-searxng", SEARXNG_URL=LOCAL)
npm(
    "datadog",
    "@winor30/mcp-server-datadog",
    "mcp-server-datadog",
    DATADOG_API_KEY=TOKEN,
    DATADOG_APP_KEY=TOKEN,
    DATADOG_SITE="127.0.0.1",
)
npm(
    "twilio",
    "@twilio-alpha/mcp",
    "twilio-mcp-server",
    ["AC00000000000000000000000000000000/SK00000000000000000000000000000000:dummy"],
)
npm("redis-reference", "@modelcontextprotocol/server-redis", "mcp-server-redis", ["redis://127.0.0.1:9"])
npm(
    "gdrive",
    "@modelcontextprotocol/server-gdrive",
    "mcp-server-gdrive",
    GDRIVE_CREDENTIALS_PATH=f"{HOME}/gdrive-credentials.json",
    GDRIVE_OAUTH_PATH=f"{HOME}/gcp-oauth.keys.json",
)
npm(
    "cloudflare",
    "@cloudflare/mcp-server-cloudflare",
    "mcp-server-cloudflare",
    ["run", "0" * 32],
    CLOUDFLARE_API_TOKEN=TOKEN,
)
npm("heroku", "@heroku/mcp-server", "heroku-mcp-server", HEROKU_API_KEY=TOKEN)
npm(
    "trello",
    "mcp-server-trello",
    "mcp-server-trello",
    TRELLO_API_KEY=TOKEN,
    TRELLO_TOKEN=TOKEN,
    TRELLO_BOARD_ID="000000000000000000000000",
)
npm("magicui", "@magicuidesign/mcp", "mcp")
npm(
    "resend", "resend-mcp", "resend-mcp", RESEND_API_KEY="re_" + TOKEN, SENDER_EMAIL_ADDRESS="dev@example.com"
)
npm(
    "azure-devops-microsoft",
    "@azure-devops/mcp",
    "mcp-server-azuredevops",
    ["dummy-org"],
    ADO_MCP_AZURE_TOKEN_CREDENTIALS="dummy",
)
npm("nx", "nx-mcp", "nx-mcp")
npm(
    "n8n",
    "n8n-mcp",
    "n8n-mcp",
    MCP_MODE="stdio",
    N8N_API_URL=LOCAL,
    N8N_API_KEY=TOKEN,
    DISABLE_CONSOLE_OUTPUT="true",
)
npm("eslint", "@eslint/mcp", "mcp")
npm("antv-chart", "@antv/mcp-server-chart", "mcp-server-chart")
npm(
    "google-calendar",
    "@cocal/google-calendar-mcp",
    "google-calendar-mcp",
    GOOGLE_OAUTH_CREDENTIALS=f"{HOME}/gcp-oauth.keys.json",
)
npm("shortcut", "@shortcut/mcp", "mcp-server-shortcut", SHORTCUT_API_TOKEN=TOKEN)
npm("drawio", "@drawio/mcp", "drawio-mcp")
npm("mobile", "@mobilenext/mobile-mcp", "mcp-server-mobile")
npm(
    "brave-search-official",
    "@brave/brave-search-mcp-server",
    "brave-search-mcp-server",
    ["--transport", "stdio"],
    BRAVE_API_KEY=TOKEN,
)
npm("lark", "@larksuiteoapi/lark-mcp", "lark-mcp", ["mcp", "-a", "cli_dummy", "-s", "dummy"])
npm(
    "slack-korotovsky",
    "slack-mcp-server",
    "slack-mcp-server",
    ["--transport", "stdio"],
    SLACK_MCP_XOXP_TOKEN="xoxp-" + TOKEN,
)
npm(
    "jira-aashari",
    "@aashari/mcp-server-atlassian-jira",
    "mcp-atlassian-jira",
    ATLASSIAN_SITE_NAME="dummy",
    ATLASSIAN_USER_EMAIL="dev@example.com",
    ATLASSIAN_API_TOKEN=TOKEN,
)
npm("ms-365", "@softeria/ms-365-mcp-server", "ms-365-mcp-server")
npm("monday", "@mondaydotcomorg/monday-api-mcp", "mcp-server-monday-api", ["-t", TOKEN])
npm("argocd", "argocd-mcp", "argocd-mcp", ["stdio"], ARGOCD_BASE_URL=LOCAL, ARGOCD_API_TOKEN=TOKEN)
npm("mermaid", "mcp-mermaid", "mcp-mermaid")
npm("gcp-observability", "@google-cloud/observability-mcp", "observability-mcp")
npm("mastra-docs", "@mastra/mcp-docs-server", "mcp-docs-server")
npm("currents", "@currents/mcp", "mcp", CURRENTS_API_KEY=TOKEN)
npm("doppler", "@dopplerhq/mcp-server", "doppler-mcp", DOPPLER_TOKEN="dp.pt." + TOKEN)
npm(
    "infisical",
    "@infisical/mcp",
    "mcp",
    INFISICAL_HOST_URL=LOCAL,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_ID="dummy",
    INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET="dummy",
)
npm(
    "1password-takescake",
    "@takescake/1password-mcp",
    "1password-mcp",
    OP_SERVICE_ACCOUNT_TOKEN="ops_" + TOKEN,
)
npm("terraform-registry", "terraform-mcp-server", "terraform-mcp-server")
npm("salesforce", "@salesforce/mcp", "sf-mcp-server", ["--orgs", "DEFAULT_TARGET_ORG", "--toolsets", "all"])

# --- PyPI --------------------------------------------------------------------------------------
pypi("sqlite", "mcp-server-sqlite", "mcp-server-sqlite", ["--db-path", f"{HOME}/test.db"])
pypi("duckdb", "mcp-server-duckdb", "mcp-server-duckdb", ["--db-path", f"{HOME}/test.duckdb"])
pypi(
    "atlassian",
    "mcp-atlassian",
    "mcp-atlassian",
    [],
    JIRA_URL="http://127.0.0.1:9/jira",
    JIRA_USERNAME="dev@example.com",
    JIRA_API_TOKEN=TOKEN,
    CONFLUENCE_URL="http://127.0.0.1:9/wiki",
    CONFLUENCE_USERNAME="dev@example.com",
    CONFLUENCE_API_TOKEN=TOKEN,
)
pypi("obsidian", "mcp-obsidian", "mcp-obsidian", OBSIDIAN_API_KEY=TOKEN, OBSIDIAN_HOST="127.0.0.1")
pypi(
    "semgrep",
    "semgrep-mcp",
    "semgrep-mcp",
    ["-t", "stdio"],
    OTEL_SDK_DISABLED="true",
    SEMGREP_SEND_METRICS="off",
    SEMGREP_ENABLE_VERSION_CHECK="0",
)
pypi(
    "jupyter",
    "jupyter-mcp-server",
    "jupyter-mcp-server",
    ["start", "--transport", "stdio", "--start-new-code-sandbox", "false"],
    JUPYTER_URL="http://127.0.0.1:9",
    JUPYTER_TOKEN=TOKEN,
    DOCUMENT_URL="http://127.0.0.1:9",
    RUNTIME_URL="http://127.0.0.1:9",
    DOCUMENT_TOKEN=TOKEN,
    RUNTIME_TOKEN=TOKEN,
)
pypi("kagi", "kagimcp", "kagimcp", KAGI_API_KEY=TOKEN)
pypi(
    "qdrant",
    "mcp-server-qdrant",
    "mcp-server-qdrant",
    QDRANT_URL="http://127.0.0.1:9",
    COLLECTION_NAME="dummy",
)
pypi("redis", "redis-mcp-server", "redis-mcp-server", ["--url", "redis://127.0.0.1:9/0"])
pypi(
    "pagerduty",
    "pagerduty-mcp",
    "pagerduty-mcp",
    ["--enable-write-tools"],
    PAGERDUTY_USER_API_KEY=TOKEN,
    PAGERDUTY_API_HOST="http://127.0.0.1:9",
)
pypi("elevenlabs", "elevenlabs-mcp", "elevenlabs-mcp", ELEVENLABS_API_KEY=TOKEN)
pypi(
    "docker", "mcp-server-docker", "mcp-server-docker", DOCKER_HOST=f"unix://{HOME}/docker.sock"
)  # the stub below answers /version
pypi("powerpoint", "office-powerpoint-mcp-server", "ppt_mcp_server")
pypi(
    "motherduck", "mcp-server-motherduck", "mcp-server-motherduck", ["--db-path", ":memory:", "--read-write"]
)
pypi("sentry-reference", "mcp-server-sentry", "mcp-server-sentry", ["--auth-token", TOKEN])
pypi("tree-sitter", "mcp-server-tree-sitter", "mcp-server-tree-sitter")
pypi("aws-dynamodb", "awslabs-dynamodb-mcp-server", "awslabs.dynamodb-mcp-server")
pypi("aws-ecs", "awslabs-ecs-mcp-server", "ecs-mcp-server")
pypi("aws-api", "awslabs-aws-api-mcp-server", "awslabs.aws-api-mcp-server")
pypi(
    "aws-billing", "awslabs-billing-cost-management-mcp-server", "awslabs.billing-cost-management-mcp-server"
)
pypi("aws-s3-tables", "awslabs-s3-tables-mcp-server", "awslabs.s3-tables-mcp-server")
pypi("aws-support", "awslabs-aws-support-mcp-server", "awslabs.aws-support-mcp-server")
pypi("aws-bedrock-kb", "awslabs-bedrock-kb-retrieval-mcp-server", "awslabs.bedrock-kb-retrieval-mcp-server")
pypi("grafana", "mcp-grafana", "mcp-grafana", GRAFANA_URL="http://127.0.0.1:9", GRAFANA_API_KEY=TOKEN)
pypi(
    "dbt",
    "dbt-mcp",
    "dbt-mcp",
    DBT_HOST="127.0.0.1",
    DBT_TOKEN=TOKEN,
    DBT_PROD_ENV_ID="1",
    DBT_PROJECT_DIR=HOME,
    DBT_PATH="/bin/false",
    DISABLE_REMOTE="true",
    DISABLE_MCP_SERVER_METADATA="true",
    DISABLE_LSP="true",
    DISABLE_SQL="true",
)  # the SQL tools are proxied from the dbt platform at start-up
pypi(
    "postgres-crystaldba",
    "postgres-mcp",
    "postgres-mcp",
    ["--access-mode=unrestricted"],
    DATABASE_URI="postgresql://user:dummy@127.0.0.1:9/db",
)
pypi("pdf-tools", "pdf-tools-mcp", "pdf-tools-mcp")
pypi("google-analytics", "analytics-mcp", "analytics-mcp", GOOGLE_PROJECT_ID="dummy")
pypi(
    "cli",
    "cli-mcp-server",
    "cli-mcp-server",
    ALLOWED_DIR=HOME,
    ALLOWED_COMMANDS="ls,cat,pwd",
    ALLOWED_FLAGS="-l,-a",
)
pypi(
    "snowflake",
    "snowflake-labs-mcp",
    "mcp-server-snowflake",
    [
        "--service-config-file",
        f"{HOME}/snowflake.yaml",
        "--account",
        "dummy",
        "--user",
        "dummy",
        "--password",
        "dummy",
    ],
)

# Dummy files the servers above read (written by main()): ~/.kube/config pointing at 127.0.0.1,
# Google OAuth client and token files with fake values.
# Tried and not collected: each needs a live backend (or the network) to start or to list tools,
# or does not start as installed.
FAILED = {
    "stripe": "@stripe/mcp 0.3.3 only proxies to Stripe's hosted MCP server",
    "supabase": "tools/list fetches from the Supabase API (fetch failed)",
    "magic-21st": "@21st-dev/magic proxies to 21st.dev's hosted endpoint",
    "redis-reference": "@modelcontextprotocol/server-redis waits for a Redis connection (timeout)",
    "heroku": "@heroku/mcp-server 1.2.8 imports an SDK path the installed SDK does not export",
    "slack-korotovsky": "slack-mcp-server authenticates with Slack at start-up",
    "qdrant": "mcp-server-qdrant does not answer initialize without network (timeout)",
    "doppler": "@dopplerhq/mcp-server validates the token with Doppler at start-up",
    "salesforce": "@salesforce/mcp exits with a TypeError at start-up without an org",
    "aws-api": "awslabs-aws-api-mcp-server downloads AWS's service reference at start-up",
    "dbt": "dbt-mcp registers proxied tools from the dbt platform at start-up",
    "snowflake": "snowflake-labs-mcp connects to Snowflake at start-up",
    "postgres-crystaldba": "postgres-mcp: pip could not resolve its dependencies",
}

# Everything a server sees besides its own variables (AWS profile and region for AWS Labs ones).
BASE_ENV = {
    "HOME": HOME,
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "FASTMCP_LOG_LEVEL": "ERROR",
    "NO_UPDATE_NOTIFIER": "1",
    "DO_NOT_TRACK": "1",
}


def install_dir(root: Path, package: str, registry: str) -> Path:
    if registry == "npm":
        return root / "npm" / package.replace("/", "_").replace("@", "_")
    return root / "venvs" / package


def executable(root: Path, package: str, registry: str, binary: str) -> Path:
    base = install_dir(root, package, registry)
    return base / ("node_modules/.bin" if registry == "npm" else "bin") / binary


def version_of(root: Path, package: str, registry: str) -> str:
    base = install_dir(root, package, registry)
    if registry == "npm":
        return str(json.loads((base / "node_modules" / package / "package.json").read_text())["version"])
    out = subprocess.run(  # noqa: S603 - our own venv's python
        [
            str(base / "bin" / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({package!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def one(root: Path, entry: tuple[str, str, str, str, list[str], dict[str, str]], timeout: float) -> str:
    name, package, registry, binary, args, env = entry
    program = executable(root, package, registry, binary)
    if not program.exists():
        return f"FAIL {name}: not installed ({program})"
    # A network namespace of its own with loopback only: whatever the server tries at start-up
    # cannot leave the machine.
    command = ["-n", "--", "sh", "-c", 'ip link set lo up; exec "$0" "$@"', str(program), *args]
    path = f"{program.parent}:/usr/local/bin:/usr/bin:/bin"
    spec = spec_for_command("unshare", command, {**BASE_ENV, "PATH": path, **env})
    try:
        inventory = await asyncio.wait_for(collect(spec, timeout=timeout / 2, probe=False), timeout)
    except Exception as exc:  # any failure is reported and the next one tried
        return f"FAIL {name}: {type(exc).__name__}: {str(exc)[:300]}"
    if not inventory.servers:
        return f"FAIL {name}: no server"
    server = inventory.servers[0]
    if not server.tools:
        return f"FAIL {name}: no tools ({'; '.join(inventory.errors)[:300]})"
    if inventory.partial:
        print(f"  note {name}: partial: {'; '.join(inventory.errors)[:300]}")
    record: dict[str, Any] = {
        "server": name,
        "package": package,
        "registry": registry,
        "version": version_of(root, package, registry),
        "serverInfo": server.server_info,
        "instructions": server.instructions,
        "tools": [t.raw for t in server.tools],
        "prompts": [p.raw for p in server.prompts],
        "resources": [r.raw for r in server.resources],
        "resourceTemplates": [t.raw for t in server.templates],
        "collected_with": COLLECTED_WITH,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1))
    return f"OK {name} {package} {record['version']} tools={len(record['tools'])}"


KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- cluster: {{server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}
  name: dummy
contexts:
- context: {{cluster: dummy, user: dummy, namespace: default}}
  name: dummy
current-context: dummy
users:
- name: dummy
  user: {{token: {TOKEN}}}
"""


def prepare(home: Path) -> None:
    """The dummy files some servers read at start-up."""
    (home / ".kube").mkdir(parents=True, exist_ok=True)
    (home / ".kube" / "config").write_text(KUBECONFIG)
    (home / "gdrive-credentials.json").write_text(
        json.dumps(
            {
                "access_token": "ya29.dummy",
                "refresh_token": "1//dummy",
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/drive.readonly",
                "expiry_date": 1,
            }
        )
    )
    (home / "gcp-oauth.keys.json").write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "dummy.apps.googleusercontent.com",
                    "client_secret": "dummy",
                    "redirect_uris": [LOCAL],
                    "auth_uri": f"{LOCAL}/auth",
                    "token_uri": f"{LOCAL}/token",
                }
            }
        )
    )


class _DockerStub(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _DockerHandler(http.server.BaseHTTPRequestHandler):
    """Just enough of a Docker Engine API for docker-py's start-up version check; the server is
    only listed, never asked to do anything."""

    def do_GET(self) -> None:
        body = json.dumps({"ApiVersion": "1.43", "Version": "24.0.0", "MinAPIVersion": "1.12"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "stub"

    def log_message(self, *args: Any) -> None:
        pass


def docker_stub(path: Path) -> _DockerStub:
    path.unlink(missing_ok=True)
    server = _DockerStub(str(path), _DockerHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("names", nargs="*")
    options = parser.parse_args()
    prepare(Path(ROOT) / "home")
    docker_stub(Path(ROOT) / "home" / "docker.sock")
    chosen = [s for s in SERVERS if s[0] in options.names or (not options.names and s[0] not in FAILED)]
    for entry in chosen:
        print(await one(Path(ROOT), entry, options.timeout), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
