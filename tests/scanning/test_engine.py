"""The engine as a server runs it: checks off the event loop."""

from __future__ import annotations

import asyncio
import random
import time

from conduit.scanning.engine import scan
from conduit.scanning.inventory import Inventory, ServerInventory

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "golf", "hotel", "india", "juliet", "kilo")


def big_inventory(tools: int) -> Inventory:
    """Distinct, harmless descriptions, so no cache shortens the checks."""
    rng = random.Random(7)

    def prose(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words)) + "."

    listing = {
        "tools": [
            {
                "name": f"tool_{i}",
                "description": prose(60),
                "inputSchema": {
                    "type": "object",
                    "properties": {"q": {"type": "string", "description": prose(20)}},
                },
            }
            for i in range(tools)
        ]
    }
    return Inventory(target="big", kind="files", servers=[ServerInventory.from_listing("big", listing)])


async def test_a_long_scan_leaves_the_event_loop_free() -> None:
    # In the server the same loop relays gateway traffic: a scan must not stall it for seconds.
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    result = await scan(big_inventory(800))
    took = time.monotonic() - started
    done.set()
    await ticking

    assert result.summary["servers"][0]["tools"] == 800
    assert took > 0.3, "the inventory is too small to show anything"
    stalled = max(gaps, default=took)  # no tick at all: stalled throughout
    assert stalled < max(0.25, took / 4), f"the loop stalled {stalled:.2f} s of a {took:.2f} s scan"
