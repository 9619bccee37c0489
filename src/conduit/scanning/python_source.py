"""What the scanner reads from Python source: its syntax tree, the function definitions of a
module, found without visiting its expressions, and which of them are MCP handlers (decorated as
tools, resources or prompts). Shared by the upload parser (`files`) and the code check
(`checks.code`)."""

from __future__ import annotations

import ast
import gc
from collections import deque
from collections.abc import Iterator

Function = ast.FunctionDef | ast.AsyncFunctionDef

# A definition is a statement, and a statement sits only in another statement, an except handler
# or a match case: the rest of the tree (expressions, most of its nodes) cannot hold one.
_HOLDERS = (ast.stmt, ast.excepthandler, ast.match_case)


def parse(text: str) -> ast.Module:
    """`ast.parse` with the garbage collector paused. A syntax tree holds no reference cycles,
    yet the hundreds of thousands of nodes of a large upload set off collection after collection,
    each over every object of the process: they took as long as the parse itself. Objects other
    threads make meanwhile are only collected a little later."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(text)
    finally:
        if was_enabled:
            gc.enable()


def functions(tree: ast.AST) -> Iterator[Function]:
    """Every function definition in the tree, in the order `ast.walk` gives them (breadth first)."""
    todo: deque[ast.AST] = deque([tree])
    while todo:
        node = todo.popleft()
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, _HOLDERS))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def decorator_name(decorator: ast.expr) -> str:
    """`tool` for `@tool`, `@mcp.tool` and `@mcp.tool(...)`; "" when the decorator is no name."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def is_handler(function: Function) -> bool:
    """Whether the function is registered with an MCP server (`@mcp.tool()`,
    `@server.call_tool()`, `@mcp.resource(...)`, `@mcp.prompt()`...), so the model picks its
    arguments."""
    for decorator in function.decorator_list:
        name = decorator_name(decorator)
        if name in ("tool", "call_tool", "resource", "prompt") or name.endswith("_tool"):
            return True
    return False
