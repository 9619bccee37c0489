"""Uploaded files as an inventory: MCP client configs (Claude Desktop, Cursor, VS Code, Windsurf,
Zed, Codex, Goose), tool-list dumps, dependency manifests and lockfiles, and server source, from
which tools declared with `@mcp.tool()` or `server.tool(...)` are read back as definitions."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from conduit.scanning.inventory import (
    Inventory,
    LaunchCommand,
    RemoteEndpoint,
    ServerInventory,
    SourceFile,
)
from conduit.scanning.python_source import decorator_name, functions, is_handler, parse

ACCEPTED_SUFFIXES = {".json", ".yaml", ".yml", ".txt", ".py", ".js", ".ts", ".toml", ".mjs", ".cjs", ".lock"}
LOCKFILES = {
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "uv.lock",
    "pipfile.lock",
    "cargo.lock",
    "go.sum",
    "bun.lock",
    "composer.lock",
    "gemfile.lock",
}
MANIFESTS = {"package.json", "pyproject.toml", "pipfile", "setup.cfg"}
REJECTED_SUFFIXES = {".exe", ".sh", ".bat", ".cmd", ".ps1", ".dll", ".so", ".bin"}
MAX_FILE_BYTES = 10 << 20


class UnsupportedFile(ValueError):
    """A file the scanner does not accept (executable or unknown type)."""


@dataclass
class UploadedFile:
    name: str
    content: bytes


def accepts(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    lower = path.name.lower()
    if path.suffix.lower() in REJECTED_SUFFIXES:
        return False
    return path.suffix.lower() in ACCEPTED_SUFFIXES or lower in LOCKFILES or lower in MANIFESTS


def file_kind(name: str) -> str:
    lower = PurePosixPath(name.replace("\\", "/")).name.lower()
    suffix = PurePosixPath(lower).suffix
    if lower in LOCKFILES:
        return "lockfile"
    if lower in MANIFESTS or re.match(r"requirements.*\.txt$", lower) or lower.startswith("requirements"):
        return "manifest"
    if suffix == ".py":
        return "python"
    if suffix in (".js", ".ts", ".mjs", ".cjs", ".tsx"):
        return "javascript"
    if suffix in (".json", ".yaml", ".yml", ".toml"):
        return "config"
    return "text"


def inventory_from_files(files: Iterable[UploadedFile], *, target: str | None = None) -> Inventory:
    """Parse every file into one inventory; unreadable parts are noted in `errors`, and make the
    scan partial, rather than failing it."""
    files = list(files)
    inventory = Inventory(target=target or ", ".join(f.name for f in files), kind="files")
    for upload in files:
        if not accepts(upload.name):
            raise UnsupportedFile(f"{upload.name}: not a file type the scanner accepts")
        if len(upload.content) > MAX_FILE_BYTES:
            raise UnsupportedFile(f"{upload.name}: larger than {MAX_FILE_BYTES >> 20} MiB")
        source = SourceFile(
            path=upload.name,
            text=upload.content.decode("utf-8", errors="replace"),
            kind=file_kind(upload.name),
        )
        inventory.files.append(source)
        try:
            _parse(inventory, source)
        except (ValueError, yaml.YAMLError, tomllib.TOMLDecodeError, SyntaxError, RecursionError) as exc:
            inventory.partial = True
            inventory.errors.append(f"{upload.name}: could not parse ({type(exc).__name__})")
    return inventory


def _parse(inventory: Inventory, source: SourceFile) -> None:
    name, text, kind = source.path, source.text, source.kind
    if kind == "python":
        _python_tools(inventory, source)
    elif kind == "javascript":
        _javascript_tools(inventory, name, text)
    elif kind == "config" or (kind == "manifest" and name.lower().endswith(".toml")):
        document = load_document(name, text)
        _document(inventory, name, document)


def load_document(name: str, text: str) -> Any:
    lower = name.lower()
    if lower.endswith(".toml"):
        return tomllib.loads(text)
    if lower.endswith((".yaml", ".yml")):
        return yaml.safe_load(text)
    return json.loads(_strip_json_comments(text))


def _strip_json_comments(text: str) -> str:
    """VS Code and Zed configs are JSON with comments and trailing commas."""
    try:
        json.loads(text)
        return text
    except ValueError:
        pass
    out, i, in_string = [], 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(char)
        i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


# Where each client keeps its servers: (path of keys, style).
CONFIG_ROOTS: list[tuple[tuple[str, ...], str]] = [
    (("mcpServers",), "standard"),  # Claude Desktop, Cursor, Windsurf, Cline, Claude Code .mcp.json
    (("servers",), "standard"),  # VS Code .vscode/mcp.json
    (("mcp", "servers"), "standard"),  # VS Code settings.json
    (("context_servers",), "zed"),
    (("mcp_servers",), "standard"),  # Codex config.toml
    (("extensions",), "goose"),
    (("projects",), "claude_code_projects"),  # ~/.claude.json
]


def _document(inventory: Inventory, name: str, document: Any) -> None:
    if _tool_dump(inventory, name, document):
        return
    if not isinstance(document, dict):
        return
    if PurePosixPath(name.lower()).name == "package.json":
        return  # dependencies are read by the supply-chain check from the raw text
    for path, style in CONFIG_ROOTS:
        node: Any = document
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if style == "claude_code_projects":
            for project, settings in node.items():
                servers = settings.get("mcpServers") if isinstance(settings, dict) else None
                if isinstance(servers, dict):
                    _servers(inventory, name, servers, f"projects.{project}.mcpServers", "standard")
            continue
        _servers(inventory, name, node, ".".join(path), style)


def _servers(inventory: Inventory, file: str, servers: dict[str, Any], root: str, style: str) -> None:
    for server_name, entry in servers.items():
        if not isinstance(entry, dict):
            continue
        location = f"{root}.{server_name}"
        if style == "zed" and isinstance(entry.get("command"), dict):
            entry = {**entry, **entry["command"], "command": entry["command"].get("path")}
        command = entry.get("command") or entry.get("cmd")
        args = entry.get("args") or []
        env = entry.get("env") or entry.get("envs") or entry.get("environment") or {}
        if isinstance(command, list):
            command, args = (command[0] if command else ""), [*command[1:], *args]
        if isinstance(command, str) and command:
            inventory.launch_commands.append(
                LaunchCommand(
                    server=str(server_name),
                    command=command,
                    args=[str(a) for a in args] if isinstance(args, list) else [],
                    env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
                    location=location,
                    file=file,
                )
            )
        url = entry.get("url") or entry.get("serverUrl") or entry.get("uri") or entry.get("httpUrl")
        if isinstance(url, str) and url:
            headers = entry.get("headers") or {}
            inventory.remote_endpoints.append(
                RemoteEndpoint(
                    server=str(server_name),
                    url=url,
                    headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
                    location=location,
                    file=file,
                )
            )
        tools = entry.get("tools")
        if isinstance(tools, list) and tools and all(isinstance(t, dict) for t in tools):
            inventory.servers.append(ServerInventory.from_listing(str(server_name), entry, source=file))


def _looks_like_tool(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and (
            "inputSchema" in value
            or "input_schema" in value
            or "description" in value
            or "parameters" in value
        )
    )


def _tool_dump(inventory: Inventory, name: str, document: Any) -> bool:
    """Tool lists in the shapes people save them: a tools/list result (bare or as a JSON-RPC
    reply), a list of tools, one tool, or servers each with their tools."""
    stem = PurePosixPath(name).stem
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]
    if isinstance(document, list) and document and all(_looks_like_tool(t) for t in document):
        inventory.servers.append(ServerInventory.from_listing(stem, {"tools": document}, source=name))
        return True
    if _looks_like_tool(document):
        inventory.servers.append(ServerInventory.from_listing(stem, {"tools": [document]}, source=name))
        return True
    if not isinstance(document, dict):
        return False
    if isinstance(document.get("tools"), list) and "mcpServers" not in document:
        server_name = str(document.get("serverInfo", {}).get("name") or document.get("name") or stem)
        inventory.servers.append(ServerInventory.from_listing(server_name, document, source=name))
        return True
    servers = document.get("servers")
    if (
        isinstance(servers, list)
        and servers
        and all(isinstance(s, dict) and isinstance(s.get("tools"), list) for s in servers)
    ):
        for i, server in enumerate(servers):
            inventory.servers.append(
                ServerInventory.from_listing(str(server.get("name") or f"{stem}-{i}"), server, source=name)
            )
        return True
    if (
        isinstance(servers, dict)
        and servers
        and all(
            isinstance(s, dict) and isinstance(s.get("tools"), list) and "command" not in s and "url" not in s
            for s in servers.values()
        )
    ):
        for server_name, server in servers.items():
            inventory.servers.append(ServerInventory.from_listing(str(server_name), server, source=name))
        return True
    return False


# --- tool definitions read back from server source ---------------------------------------------


def _python_tools(inventory: Inventory, source: SourceFile) -> None:
    defined = list(functions(parse(source.text)))
    source.declares_handlers = any(is_handler(node) for node in defined)
    tools: list[dict[str, Any]] = []
    for node in defined:
        for decorator in node.decorator_list:
            if decorator_name(decorator) != "tool":
                continue
            call = decorator if isinstance(decorator, ast.Call) else None
            keywords = {k.arg: k.value for k in call.keywords} if call else {}
            description = _constant(keywords.get("description")) or ast.get_docstring(node) or ""
            tool_name = (
                _constant(keywords.get("name"))
                or (_constant(call.args[0]) if call and call.args else None)
                or node.name
            )
            params = [
                a.arg
                for a in [*node.args.args, *node.args.kwonlyargs]
                if a.arg not in ("self", "ctx", "context")
            ]
            tools.append(
                {
                    "name": tool_name,
                    "description": description,
                    "inputSchema": {"type": "object", "properties": {p: {"type": "string"} for p in params}},
                }
            )
    if tools:
        inventory.servers.append(
            ServerInventory.from_listing(
                PurePosixPath(source.path).stem, {"tools": tools}, source=source.path
            )
        )


def _constant(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


JS_STRING = r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|`((?:[^`\\$]|\\.)*)`)"""
JS_TOOL = re.compile(
    r"\.(?:tool|registerTool)\s*\(\s*"
    + JS_STRING
    + r"\s*,\s*(?:\{\s*(?:title\s*:\s*"
    + JS_STRING
    + r"\s*,\s*)?description\s*:\s*)?"
    + JS_STRING,
    re.DOTALL,
)
JS_LISTED = re.compile(r"\bname\s*:\s*" + JS_STRING + r"\s*,\s*description\s*:\s*" + JS_STRING, re.DOTALL)


def _js_unescape(value: str) -> str:
    try:
        return str(json.loads(f'"{value}"'))
    except ValueError:
        return value


def _first(groups: tuple[str | None, ...]) -> str:
    return next((g for g in groups if g is not None), "")


def _javascript_tools(inventory: Inventory, name: str, text: str) -> None:
    tools: dict[str, dict[str, Any]] = {}
    for match in JS_TOOL.finditer(text):
        groups = match.groups()
        tool_name, description = _first(groups[0:3]), _first(groups[6:9])
        tools.setdefault(
            tool_name,
            {"name": tool_name, "description": _js_unescape(description), "inputSchema": {"type": "object"}},
        )
    if re.search(r"ListToolsRequestSchema|tools/list", text):
        for match in JS_LISTED.finditer(text):
            groups = match.groups()
            tool_name = _first(groups[0:3])
            tools.setdefault(
                tool_name,
                {
                    "name": tool_name,
                    "description": _js_unescape(_first(groups[3:6])),
                    "inputSchema": {"type": "object"},
                },
            )
    if tools:
        inventory.servers.append(
            ServerInventory.from_listing(
                PurePosixPath(name).stem, {"tools": list(tools.values())}, source=name
            )
        )
