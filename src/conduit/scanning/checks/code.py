"""Dangerous sinks fed by tool arguments in uploaded server source: shell, eval, unsafe
deserialisation, SQL built from strings, unchecked paths, and user-supplied URLs.

Python is parsed with `ast`: the parameters of functions registered as tools (`@mcp.tool()`,
`@server.call_tool()`, ...) are tainted, taint follows assignments inside the function, and a
call is a finding when a tainted value reaches a sink. JavaScript and TypeScript get a lighter,
line-based pass over files that look like MCP servers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from conduit.scanning.checks.base import Context
from conduit.scanning.findings import Category, Check, Confidence, Finding, Severity, check
from conduit.scanning.inventory import SourceFile
from conduit.scanning.python_source import functions, is_handler, parse

ANALYZER = "code"

SHELL = check(
    "CND-CODE-001",
    "Tool argument reaches a shell command",
    Severity.critical,
    Category.security,
    owasp_llm="LLM05",
    owasp_mcp="MCP05",
    cwe="CWE-78",
    analyzer=ANALYZER,
    description="A value the model chooses is passed to a shell (or chooses the program to run): a "
    "prompt injection becomes remote code execution.",
    remediation="Call the program with an argument list and no shell, from a fixed allowlist of "
    "programs; validate every argument.",
    monitor_candidate=True,
)
EVAL = check(
    "CND-CODE-002",
    "Tool argument reaches eval or exec",
    Severity.critical,
    Category.security,
    owasp_llm="LLM05",
    owasp_mcp="MCP05",
    cwe="CWE-95",
    analyzer=ANALYZER,
    description="A value the model chooses is evaluated as code.",
    remediation="Never evaluate arguments; parse them (`ast.literal_eval`, `json.loads`) or map them to "
    "fixed operations.",
    monitor_candidate=True,
)
DESERIALIZATION = check(
    "CND-CODE-003",
    "Unsafe deserialisation of tool input",
    Severity.high,
    Category.security,
    owasp_llm="LLM05",
    owasp_mcp="MCP05",
    cwe="CWE-502",
    analyzer=ANALYZER,
    description="Data from a tool argument is loaded with pickle, marshal, `yaml.load` or similar, "
    "which can run code while loading.",
    remediation="Use a data-only format (JSON, `yaml.safe_load`).",
)
SQL = check(
    "CND-CODE-004",
    "SQL built from tool arguments",
    Severity.high,
    Category.security,
    owasp_llm="LLM05",
    owasp_mcp="MCP05",
    cwe="CWE-89",
    analyzer=ANALYZER,
    description="A query is assembled with string formatting from a value the model chooses.",
    remediation="Use bound parameters (`cursor.execute(sql, params)`); never format values into SQL.",
)
PATH = check(
    "CND-CODE-005",
    "Unchecked path from tool arguments",
    Severity.medium,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP05",
    cwe="CWE-22",
    analyzer=ANALYZER,
    description="A file path the model chooses is opened, listed or deleted with no check that it "
    "stays inside an allowed directory.",
    remediation="Resolve the path and refuse anything outside the allowed roots "
    "(`path.resolve().is_relative_to(root)`), symlinks included.",
)
URL = check(
    "CND-CODE-006",
    "Request to a URL from tool arguments",
    Severity.medium,
    Category.security,
    owasp_llm="LLM06",
    owasp_mcp="MCP05",
    cwe="CWE-918",
    analyzer=ANALYZER,
    description="The server fetches a URL the model chooses, with no visible check of where it "
    "points: internal addresses and cloud metadata endpoints are reachable (SSRF).",
    remediation="Resolve the host and refuse private, loopback and link-local addresses; allowlist "
    "schemes and hosts where possible.",
)

SHELL_CALLS = {
    "os.system",
    "os.popen",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "commands.getoutput",
    "asyncio.create_subprocess_shell",
    "pty.spawn",
    "os.execl",
    "os.execlp",
    "os.execv",
    "os.execvp",
}
PROCESS_CALLS = {
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.Popen",
    "asyncio.create_subprocess_exec",
}
EVAL_CALLS = {"eval", "exec", "compile", "builtins.eval", "builtins.exec"}
DESERIALIZE_CALLS = {
    "pickle.loads",
    "pickle.load",
    "cPickle.loads",
    "dill.loads",
    "dill.load",
    "marshal.loads",
    "shelve.open",
    "jsonpickle.decode",
    "yaml.unsafe_load",
    "yaml.full_load",
    "torch.load",
    "joblib.load",
    "pandas.read_pickle",
}
PATH_CALLS = {
    "open",
    "io.open",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.listdir",
    "os.scandir",
    "os.walk",
    "shutil.rmtree",
    "shutil.copy",
    "shutil.copyfile",
    "shutil.move",
    "pathlib.Path",
    "Path",
    "os.makedirs",
    "os.rename",
    "aiofiles.open",
    "send_file",
    "os.chmod",
}
URL_CALLS = {
    f"{m}.{v}"
    for m in ("requests", "httpx", "aiohttp")
    for v in ("get", "post", "put", "delete", "head", "request", "patch")
}
URL_CALLS |= {"urllib.request.urlopen", "urlopen", "urllib.request.Request", "urllib3.request"}
URL_METHODS = {"get", "post", "put", "delete", "head", "request", "patch", "stream", "fetch"}
SQL_METHODS = {
    "execute",
    "executemany",
    "executescript",
    "raw",
    "fetch",
    "fetchrow",
    "fetchval",
    "query",
    "text",
}
PATH_GUARDS = re.compile(r"is_relative_to|commonpath|realpath|\.resolve\(\)|secure_filename|normpath|abspath")
URL_GUARDS = re.compile(
    r"ipaddress|is_private|is_loopback|allowed_hosts|ALLOWED_HOSTS|allowlist|whitelist|urlparse|urlsplit"
)
CONTEXT_PARAMS = {"self", "cls", "ctx", "context"}


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = (
                f"{node.module}.{alias.name}" if node.module else alias.name
            )


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _tainted_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    arguments = function.args
    params = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    if arguments.vararg:
        params.append(arguments.vararg)
    if arguments.kwarg:
        params.append(arguments.kwarg)
    tainted = {p.arg for p in params if p.arg not in CONTEXT_PARAMS}
    for _ in range(5):
        before = len(tainted)
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr)
                and node.value is not None
            ):
                if _names(node.value) & tainted:
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        tainted |= _targets(target) | ({target.id} if isinstance(target, ast.Name) else set())
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension) and _names(node.iter) & tainted:
                tainted |= _targets(node.target)
            elif (
                isinstance(node, ast.withitem)
                and node.optional_vars is not None
                and _names(node.context_expr) & tainted
            ):
                tainted |= _targets(node.optional_vars)
        if len(tainted) == before:
            break
    return tainted


def _formatted(node: ast.expr, tainted: set[str]) -> bool:
    """A string built from a tainted value: f-string, `+`, `%` or `.format(...)`."""
    if isinstance(node, ast.JoinedStr):
        return bool(_names(node) & tainted)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return bool(_names(node) & tainted)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return bool(_names(node) & tainted)
    return isinstance(node, ast.Name) and node.id in tainted and False


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


@dataclass
class _Hit:
    declared: Check
    line: int
    text: str
    severity: Severity | None = None


# Line ends as the parser sees them (not form feeds), each kept with its line.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _segment(lines: list[str], node: ast.stmt | ast.expr) -> str | None:
    """`ast.get_source_segment(source, node)` from the source's lines split once: that function
    splits the whole source again on every call, which made large files quadratic."""
    if node.end_lineno is None or node.end_col_offset is None:
        return None
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    tail = lines[last].encode()[: node.end_col_offset].decode()
    return "".join([head, *lines[first + 1 : last], tail])


def _python_hits(
    function: ast.FunctionDef | ast.AsyncFunctionDef, aliases: dict[str, str], lines: list[str]
) -> Iterator[_Hit]:
    tainted = _tainted_names(function)
    body = _segment(lines, function) or ""
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        args_tainted = any(_names(a) & tainted for a in [*node.args, *(k.value for k in node.keywords)])
        first = node.args[0] if node.args else None
        first_tainted = first is not None and bool(_names(first) & tainted)
        line = getattr(node, "lineno", function.lineno)
        text = _segment(lines, node) or name
        if name in SHELL_CALLS and args_tainted:
            yield _Hit(SHELL, line, text)
        elif name in PROCESS_CALLS and args_tainted:
            shell = _keyword(node, "shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                yield _Hit(SHELL, line, text)
            elif (
                isinstance(first, ast.List | ast.Tuple) and first.elts and _names(first.elts[0]) & tainted
            ) or (first is not None and not isinstance(first, ast.List | ast.Tuple) and first_tainted):
                yield _Hit(SHELL, line, text, Severity.high)
        elif name in EVAL_CALLS and first_tainted:
            yield _Hit(EVAL, line, text)
        elif (name in DESERIALIZE_CALLS or name == "yaml.load") and first_tainted:
            loader = _keyword(node, "Loader")
            if name == "yaml.load" and loader is not None and "Safe" in _dotted(loader, aliases):
                continue
            yield _Hit(DESERIALIZATION, line, text)
        elif (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
            and first is not None
            and _formatted(first, tainted)
        ):
            yield _Hit(SQL, line, text)
        elif name in PATH_CALLS and first_tainted and not PATH_GUARDS.search(body):
            yield _Hit(PATH, line, text)
        elif (
            (
                name in URL_CALLS
                or (
                    isinstance(node.func, ast.Attribute)
                    and node.func.attr in URL_METHODS
                    and re.search(r"session|client|http", _dotted(node.func.value, aliases), re.I)
                )
            )
            and first_tainted
            and not URL_GUARDS.search(body)
        ):
            yield _Hit(URL, line, text)


def python_findings(source: SourceFile) -> list[Finding]:
    if source.declares_handlers is False:
        return []  # the upload parser found no handler: no function here takes a model's arguments
    try:
        tree = parse(source.text)
    except (SyntaxError, ValueError, RecursionError):  # as the upload parser: the scan goes on
        return []
    imports = _Imports()
    imports.visit(tree)
    lines = _LINE.findall(source.text)
    findings = []
    for node in functions(tree):
        if is_handler(node):
            for hit in _python_hits(node, imports.aliases, lines):
                findings.append(
                    hit.declared.finding(
                        evidence=f"{node.name}(): {hit.text}",
                        location=f"{source.path}:{hit.line}",
                        severity=hit.severity,
                        file=source.path,
                        line=hit.line,
                        confidence=Confidence.firm,
                    )
                )
    return findings


JS_SERVER = re.compile(
    r"@modelcontextprotocol/sdk|\.(?:tool|registerTool)\s*\(|CallToolRequestSchema|FastMCP|McpServer"
)
JS_INPUT = r"(?:args|params|input|arguments|request\.params\.arguments|req\.body|options)\b"
JS_SINKS: list[tuple[Check, re.Pattern[str]]] = [
    (
        SHELL,
        re.compile(
            r"\b(?:exec|execSync|spawnSync|spawn|execFile)\s*\(\s*(?:`[^`]*\$\{|[^,)]*\+\s*\w|"
            + JS_INPUT
            + r")"
        ),
    ),
    (
        EVAL,
        re.compile(
            r"\b(?:eval|new\s+Function|vm\.runIn\w*Context|vm\.Script)\s*\(\s*(?!['\"`][^'\"`$]*['\"`]\s*\))"
        ),
    ),
    (
        SQL,
        re.compile(
            r"\.(?:query|execute|raw|run|all|get|prepare|exec)\s*\(\s*(?:`[^`]*(?:SELECT|INSERT|UPDATE|DELETE|FROM|WHERE)[^`]*\$\{|['\"][^'\"]*(?:SELECT|INSERT|UPDATE|DELETE|WHERE)[^'\"]*['\"]\s*\+)",
            re.I,
        ),
    ),
    (
        PATH,
        re.compile(
            r"\bfs(?:\.promises)?\.(?:readFile|writeFile|unlink|rm|rmdir|readdir|createReadStream|appendFile)(?:Sync)?\s*\(\s*"
            + JS_INPUT
        ),
    ),
    (URL, re.compile(r"\b(?:fetch|axios(?:\.(?:get|post|request))?|got|request)\s*\(\s*" + JS_INPUT)),
]
JS_PATH_GUARD = re.compile(r"path\.resolve|realpath|startsWith\(|isWithin|relative\(")


def javascript_findings(source: SourceFile) -> list[Finding]:
    if not JS_SERVER.search(source.text):
        return []
    findings = []
    guarded = bool(JS_PATH_GUARD.search(source.text))
    for number, line in enumerate(source.text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(("//", "*", "/*")):
            continue
        for declared, pattern in JS_SINKS:
            if declared is PATH and guarded:
                continue
            if pattern.search(line):
                findings.append(
                    declared.finding(
                        evidence=stripped[:200],
                        location=f"{source.path}:{number}",
                        severity=Severity.high if declared in (SHELL, EVAL) else None,
                        file=source.path,
                        line=number,
                        confidence=Confidence.tentative,
                    )
                )
                break
    return findings


def run(context: Context) -> list[Finding]:
    findings: list[Finding] = []
    for source in context.inventory.files:
        if source.kind == "python":
            findings.extend(python_findings(source))
        elif source.kind == "javascript":
            findings.extend(javascript_findings(source))
    return findings
