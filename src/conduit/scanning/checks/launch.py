"""Risky launch commands in client configs or on the command line: packages fetched unpinned at
every start, remote scripts piped to a shell, root, and privileged containers."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Confidence, Finding, Severity, check
from conduit.scanning.inventory import LaunchCommand

ANALYZER = "launch"

UNPINNED = check(
    "CND-LC-001",
    "Server package runs unpinned",
    Severity.medium,
    Category.compliance,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe="CWE-829",
    analyzer=ANALYZER,
    description="The command downloads and runs the newest version of a package at every start "
    "(`npx -y pkg`, `uvx pkg`): whoever publishes the next version runs code on this machine, "
    "unreviewed.",
    remediation="Pin an exact version (`pkg@1.4.2`, `pkg==1.4.2`), or install the package once and "
    "run the installed binary.",
    monitor_candidate=True,
)
PIPE_TO_SHELL = check(
    "CND-LC-002",
    "Remote script piped into a shell",
    Severity.high,
    Category.security,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe="CWE-494",
    analyzer=ANALYZER,
    description="The command downloads a script and runs it (`curl … | sh`): no version, no review, "
    "no integrity check.",
    remediation="Install a pinned, checksummed release and run it directly.",
)
RUNS_AS_ROOT = check(
    "CND-LC-003",
    "Server runs as root",
    Severity.medium,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP02",
    cwe="CWE-250",
    analyzer=ANALYZER,
    description="The server is started with `sudo` or as user root in its container; a compromised "
    "or poisoned server gets the whole machine.",
    remediation="Run the server as an unprivileged user.",
)
PRIVILEGED_CONTAINER = check(
    "CND-LC-004",
    "Privileged container",
    Severity.high,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP02",
    cwe="CWE-250",
    analyzer=ANALYZER,
    description="The container runs privileged, with extra capabilities, the host's Docker socket, "
    "root filesystem, network or process namespace: it is not isolated from the host.",
    remediation="Drop `--privileged`, `--cap-add`, host namespaces and host mounts; mount only the "
    "directories the server needs, read-only where possible.",
)
UNPINNED_IMAGE = check(
    "CND-LC-005",
    "Container image not pinned",
    Severity.low,
    Category.compliance,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe="CWE-829",
    analyzer=ANALYZER,
    description="The image is referenced without a version tag or by `latest`, so a new push changes "
    "what runs.",
    remediation="Reference the image by digest (`image@sha256:…`) or an immutable version tag.",
)

RUNNERS = {"npx", "bunx", "uvx", "pipx", "pnpx"}
NPX_FLAGS_WITH_VALUE = {"-p", "--package", "-c", "--call", "--registry", "--cache", "--node-options"}
EXACT_NPM = re.compile(r"@\d+\.\d+\.\d+(?:[-+][\w.]+)?$")
EXACT_PY = re.compile(r"==\d[\w.]*$|@\d+\.\d+(?:\.\d+)?$")
REMOTE_SCRIPT = re.compile(
    r"\b(?:curl|wget|iwr|invoke-webrequest|irm|invoke-restmethod)\b[^|;&]*\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b|"
    r"\b(?:ba|z)?sh\s+-c\s+[\"']?\$\((?:curl|wget)|\biex\s*\(|\|\s*iex\b|\bsh\s+<\(\s*(?:curl|wget)",
    re.IGNORECASE,
)
CONTAINER = {"docker", "podman", "nerdctl"}
PRIVILEGED_FLAGS = re.compile(
    r"^--privileged(?:=true)?$|^--cap-add(?:=|$)|^--security-opt(?:=|$)|^--(?:pid|ipc|userns|uts)(?:=|$)",
)
HOST_MOUNT = re.compile(r"^(?:/|/var/run/docker\.sock|/run/docker\.sock|/etc|/root|/home|~|\$HOME)(?::|$)")


def _program(command: LaunchCommand) -> tuple[str, list[str]]:
    argv = [command.command, *command.args]
    while argv and os.path.basename(argv[0]) in ("sudo", "env", "doas", "exec"):
        argv = argv[1:]
        while argv and (argv[0].startswith("-") or "=" in argv[0]):
            argv = argv[1:]
    if not argv:
        return "", []
    return os.path.basename(argv[0]).removesuffix(".cmd").removesuffix(".exe"), argv[1:]


def _package(program: str, args: list[str]) -> tuple[str | None, bool]:
    """The package a runner fetches and whether it runs without asking (`-y`)."""
    auto = any(a in ("-y", "--yes") for a in args)
    if program == "pipx" and args[:1] == ["run"]:
        args = args[1:]
    if program in ("pnpm", "yarn") and args[:1] == ["dlx"]:
        args = args[1:]
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in ("--from", "--package", "-p", "--with") and i + 1 < len(args):
            return args[i + 1], auto
        if arg in NPX_FLAGS_WITH_VALUE or arg in ("--python", "--index-url", "--spec"):
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg, auto
    return None, auto


def _pinned(program: str, package: str) -> bool:
    if program in ("uvx", "pipx"):
        return bool(EXACT_PY.search(package))
    name_version = package[1:] if package.startswith("@") else package
    return bool(EXACT_NPM.search("@" + name_version.split("@", 1)[1])) if "@" in name_version else False


def _container(command: LaunchCommand, args: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    if not args or args[0] not in ("run", "create"):
        return findings
    where: dict[str, Any] = {
        "location": f"{command.location}.args",
        "file": command.file,
        "server": command.server,
    }
    flagged: list[str] = []
    image: str | None = None
    i = 1
    while i < len(args):
        arg = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if (
            PRIVILEGED_FLAGS.match(arg)
            or arg in ("--network=host", "--net=host")
            or (arg in ("--network", "--net") and value == "host")
        ):
            flagged.append(arg if "=" in arg or arg == "--privileged" else f"{arg} {value}")
        if arg in ("-v", "--volume", "--mount") and HOST_MOUNT.match(
            value.split(",")[0].removeprefix("source=").removeprefix("src=")
        ):
            flagged.append(f"{arg} {value}")
        if arg in ("-u", "--user") and value.split(":")[0] in ("root", "0"):
            findings.append(
                RUNS_AS_ROOT.finding(evidence=f"{arg} {value}", confidence=Confidence.confirmed, **where)
            )
        if arg.startswith("-"):
            takes_value = "=" not in arg and arg not in (
                "--rm",
                "-i",
                "-t",
                "-it",
                "-d",
                "--privileged",
                "--init",
                "--read-only",
                "-ti",
            )
            i += 2 if takes_value else 1
            continue
        image = arg
        break
    if flagged:
        findings.append(
            PRIVILEGED_CONTAINER.finding(evidence=" ".join(flagged), confidence=Confidence.confirmed, **where)
        )
    if (
        image
        and "@sha256:" not in image
        and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"))
    ):
        findings.append(UNPINNED_IMAGE.finding(evidence=image, confidence=Confidence.confirmed, **where))
    return findings


def command_findings(command: LaunchCommand) -> list[Finding]:
    findings: list[Finding] = []
    where: dict[str, Any] = {
        "location": f"{command.location}.args",
        "file": command.file,
        "server": command.server,
    }
    line = " ".join([command.command, *command.args])
    if REMOTE_SCRIPT.search(line):
        findings.append(PIPE_TO_SHELL.finding(evidence=line, confidence=Confidence.confirmed, **where))
    if os.path.basename(command.command) in ("sudo", "doas") or " sudo " in f" {line} ":
        findings.append(RUNS_AS_ROOT.finding(evidence=line, confidence=Confidence.confirmed, **where))
    program, args = _program(command)
    if program in RUNNERS or (program in ("pnpm", "yarn") and args[:1] == ["dlx"]):
        package, auto = _package(program, args)
        if package and not package.startswith((".", "/")) and not _pinned(program, package):
            findings.append(
                UNPINNED.finding(
                    evidence=line,
                    severity=Severity.medium if auto or program in ("uvx", "pipx", "bunx") else Severity.low,
                    confidence=Confidence.confirmed,
                    **where,
                )
            )
    if program in CONTAINER:
        findings.extend(_container(command, args))
    return findings


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    for command in context.inventory.launch_commands:
        findings.extend(command_findings(command))
    findings.extend(manifest_findings(context))
    return findings


# --- dependency manifests ----------------------------------------------------------------------

UNPINNED_DEPENDENCY = check(
    "CND-DEP-001",
    "Dependency without a pinned version",
    Severity.low,
    Category.compliance,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe="CWE-1104",
    analyzer=ANALYZER,
    description="A dependency accepts any version (`*`, `latest`, no version at all), so the next "
    "install may bring in code nobody reviewed.",
    remediation="Pin versions and commit a lockfile.",
)
REMOTE_DEPENDENCY = check(
    "CND-DEP-002",
    "Dependency fetched from a URL or a Git branch",
    Severity.medium,
    Category.compliance,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe="CWE-494",
    analyzer=ANALYZER,
    description="A dependency comes from a URL, a Git branch or plain HTTP instead of a registry "
    "release, with no integrity check of what is fetched.",
    remediation="Depend on a registry release, or on a Git commit hash with an integrity hash.",
)
INSTALL_SCRIPT = check(
    "CND-DEP-003",
    "Install script fetches and runs code",
    Severity.high,
    Category.security,
    owasp_llm="LLM03",
    owasp_mcp="MCP04",
    cwe="CWE-506",
    analyzer=ANALYZER,
    description="A package lifecycle script (`preinstall`, `postinstall`, `prepare`) downloads or "
    "runs code when the package is installed.",
    remediation="Remove the script; ship what it fetches inside the package.",
)

FLOATING = re.compile(r"^(?:\*|latest|x|>=?\s*[\d.]+|)$", re.IGNORECASE)
REMOTE_SPEC = re.compile(r"^(?:https?:|git\+|git:|github:|[\w-]+/[\w.-]+(?:#.*)?$)", re.IGNORECASE)
SUSPICIOUS_SCRIPT = re.compile(
    r"\b(?:curl|wget|Invoke-WebRequest|iwr|node\s+-e|eval|base64\s+-d|nc\s)\b|\|\s*(?:ba)?sh\b", re.I
)


def _package_json(path: str, text: str) -> list[Finding]:
    try:
        document = json.loads(text)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    findings = []
    for section in ("dependencies", "optionalDependencies"):
        dependencies = document.get(section)
        if not isinstance(dependencies, dict):
            continue
        for name, spec in dependencies.items():
            spec = str(spec).strip()
            where: dict[str, Any] = {
                "location": f"{section}.{name}",
                "file": path,
                "confidence": Confidence.confirmed,
            }
            if REMOTE_SPEC.match(spec) and not spec.startswith(("workspace:", "file:", "link:")):
                findings.append(REMOTE_DEPENDENCY.finding(evidence=f"{name}: {spec}", **where))
            elif FLOATING.match(spec):
                findings.append(UNPINNED_DEPENDENCY.finding(evidence=f"{name}: {spec or '(any)'}", **where))
    scripts = document.get("scripts")
    if isinstance(scripts, dict):
        for hook in ("preinstall", "install", "postinstall", "prepare"):
            script = scripts.get(hook)
            if isinstance(script, str) and SUSPICIOUS_SCRIPT.search(script):
                findings.append(
                    INSTALL_SCRIPT.finding(
                        evidence=f"{hook}: {script}",
                        location=f"scripts.{hook}",
                        file=path,
                        confidence=Confidence.confirmed,
                    )
                )
    return findings


REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][\w.\[\],-]*)\s*(.*?)\s*(?:#.*)?$")


def _requirements(path: str, text: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-r", "-c", "--")):
            continue
        where: dict[str, Any] = {
            "location": f"{path}:{number}",
            "file": path,
            "line": number,
            "confidence": Confidence.confirmed,
        }
        if re.search(r"(?:^|\s|@\s*)(?:https?://|git\+)", stripped):
            if not re.search(r"@[0-9a-f]{40}|#sha256=", stripped):
                findings.append(REMOTE_DEPENDENCY.finding(evidence=stripped, **where))
            continue
        match = REQUIREMENT.match(stripped)
        if match and "==" not in match.group(2) and "===" not in match.group(2):
            findings.append(UNPINNED_DEPENDENCY.finding(evidence=stripped, **where))
    return findings


def _lockfile(path: str, text: str) -> list[Finding]:
    findings = []
    for match in re.finditer(r"\"resolved\"\s*:\s*\"(http://[^\"]+|git\+[^\"]+)\"", text):
        line = text.count("\n", 0, match.start()) + 1
        findings.append(
            REMOTE_DEPENDENCY.finding(
                evidence=match.group(1),
                location=f"{path}:{line}",
                file=path,
                line=line,
                confidence=Confidence.confirmed,
            )
        )
    return findings


def manifest_findings(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    for source in context.inventory.files:
        base = source.path.replace("\\", "/").rsplit("/", 1)[-1].lower()
        if base == "package.json":
            findings.extend(_package_json(source.path, source.text))
        elif source.kind == "manifest" and base.endswith(".txt"):
            findings.extend(_requirements(source.path, source.text))
        elif source.kind == "lockfile":
            findings.extend(_lockfile(source.path, source.text))
    return findings
