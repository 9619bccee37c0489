"""Small builders for the scanner's tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from conduit.scanning.engine import ScanResult, scan
from conduit.scanning.inventory import Inventory, ServerInventory

POISONED_SERVER = Path(__file__).with_name("poisoned_server.py")
POISONED_ARGV = [sys.executable, "-P", str(POISONED_SERVER)]


def tool(name: str, description: str = "Does a thing.", **properties: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
    }


def inventory(*tools: dict[str, Any], name: str = "server", **listing: Any) -> Inventory:
    server = ServerInventory.from_listing(name, {"tools": list(tools), **listing})
    return Inventory(target=name, kind="files", servers=[server])


async def scan_tools(*tools: dict[str, Any], **listing: Any) -> ScanResult:
    return await scan(inventory(*tools, **listing))


def ids(result: ScanResult) -> set[str]:
    return {f.id for f in result.findings}
