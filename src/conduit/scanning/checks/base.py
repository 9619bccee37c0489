"""What every check module shares: the scan context, and the texts of an inventory a model
reads, each with the location a finding names (`tools[3].inputSchema.properties.note.description`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from conduit.scanning.findings import Finding
from conduit.scanning.inventory import Inventory, ServerInventory, Tool
from conduit.scanning.normalize import Normalized, normalize

MAX_SCHEMA_DEPTH = 6


@dataclass
class Surface:
    """One piece of text the model will read."""

    server: ServerInventory
    location: str
    text: str
    kind: str  # instructions | tool.name | tool.description | param.description | prompt... | resource...
    tool: Tool | None = None
    tool_index: int | None = None
    _normalized: Normalized | None = field(default=None, repr=False)

    @property
    def normalized(self) -> Normalized:
        if self._normalized is None:
            self._normalized = normalize(self.text)
        return self._normalized


@dataclass
class Context:
    inventory: Inventory
    previous_hashes: Mapping[str, str] | None = None
    _surfaces: list[Surface] | None = None

    def surfaces(self) -> list[Surface]:
        if self._surfaces is None:
            self._surfaces = list(_surfaces(self.inventory))
        return self._surfaces

    def tool_location(self, server: ServerInventory, index: int) -> str:
        return f"{self.inventory.prefix(server)}tools[{index}]"


Analyzer = Callable[[Context], list[Finding]]


def _schema_texts(schema: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str, str]]:
    """(location, text, kind) of every description, title, default and enum in a JSON Schema."""
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return
    for key in ("description", "title"):
        value = schema.get(key)
        if isinstance(value, str) and value.strip():
            yield f"{path}.{key}", value, f"param.{key}"
    default = schema.get("default")
    if isinstance(default, list) and default and all(isinstance(item, str) for item in default):
        default = ", ".join(default)  # default recipients, tags, paths
    # Short defaults are values, not text, except an address: a default recipient is read too.
    if isinstance(default, str) and (len(default) > 20 or "@" in default):
        yield f"{path}.default", default, "param.default"
    enum = schema.get("enum")
    if isinstance(enum, list):
        for i, item in enumerate(enum):
            if isinstance(item, str) and len(item) > 30:
                yield f"{path}.enum[{i}]", item, "param.enum"
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            if isinstance(name, str) and len(name) > 40:
                yield f"{path}.properties", name, "param.name"
            yield from _schema_texts(sub, f"{path}.properties.{name}", depth + 1)
    for key in ("items", "additionalProperties"):
        yield from _schema_texts(schema.get(key), f"{path}.{key}", depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list):
            for i, option in enumerate(options):
                yield from _schema_texts(option, f"{path}.{key}[{i}]", depth + 1)


def _surfaces(inventory: Inventory) -> Iterator[Surface]:
    for server in inventory.servers:
        prefix = inventory.prefix(server)
        if server.instructions.strip():
            yield Surface(server, f"{prefix}instructions", server.instructions, "instructions")
        for i, tool in enumerate(server.tools):
            base = f"{prefix}tools[{i}]"
            yield Surface(server, f"{base}.name", tool.name, "tool.name", tool, i)
            if tool.title:
                yield Surface(server, f"{base}.title", tool.title, "tool.title", tool, i)
            if tool.description:
                yield Surface(server, f"{base}.description", tool.description, "tool.description", tool, i)
            for location, text, kind in _schema_texts(tool.input_schema, f"{base}.inputSchema"):
                yield Surface(server, location, text, kind, tool, i)
            for location, text, kind in _schema_texts(tool.output_schema, f"{base}.outputSchema"):
                yield Surface(server, location, text, kind, tool, i)
        for i, prompt in enumerate(server.prompts):
            base = f"{prefix}prompts[{i}]"
            if prompt.description:
                yield Surface(server, f"{base}.description", prompt.description, "prompt.description")
            for j, argument in enumerate(prompt.arguments):
                argument_text = argument.get("description")
                if isinstance(argument_text, str) and argument_text:
                    yield Surface(
                        server, f"{base}.arguments[{j}].description", argument_text, "prompt.argument"
                    )
        for i, resource in enumerate(server.resources):
            base = f"{prefix}resources[{i}]"
            for key, text in (("name", resource.name), ("description", resource.description)):
                if text:
                    yield Surface(server, f"{base}.{key}", text, f"resource.{key}")
        for i, template in enumerate(server.templates):
            base = f"{prefix}resourceTemplates[{i}]"
            for key, text in (("name", template.name), ("description", template.description)):
                if text:
                    yield Surface(server, f"{base}.{key}", text, f"template.{key}")


def snippet(text: str, start: int, end: int, margin: int = 60) -> str:
    """The matched text with some context, on one line."""
    left = max(0, start - margin)
    right = min(len(text), end + margin)
    piece = " ".join(text[left:right].split())
    return ("…" if left else "") + piece + ("…" if right < len(text) else "")
