"""Fixtures of the relay tests: a live Conduit (uvicorn on 127.0.0.1, in the test's loop) and a
signed-up organization with a key in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conduit.kit.runtime import Runtime
from tests.gateway.support import Live, Org, new_org, serve


@pytest.fixture
async def live(runtime: Runtime) -> AsyncIterator[Live]:
    async with serve(runtime) as running:
        yield running


@pytest.fixture
async def org(live: Live) -> Org:
    return await new_org(live.api)
