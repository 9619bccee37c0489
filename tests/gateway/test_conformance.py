"""The official conformance suite scores Conduit exactly as it scores the upstream alone."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.conformance import compare, key_proxy, provision, run_suite
from tests.e2e.processes import conduit_env, fresh_database, start_server
from tests.mcp_servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_conformance_through_conduit_equals_direct(fixture_http: ServerProcess) -> None:
    direct, _ = run_suite(fixture_http.url)
    workdir = Path(tempfile.mkdtemp(prefix="conduit-conformance-"))
    conduit = start_server(
        workdir, conduit_env(workdir / "data", fresh_database("conformance"), default_plan="enterprise")
    )
    try:
        key, endpoint = provision(conduit.base_url, fixture_http.url)
        with key_proxy(endpoint, key) as proxied:
            through, summary = run_suite(proxied)
    finally:
        conduit.stop()
    assert sum(passed for passed, _ in direct.values()) >= 30
    assert compare(direct, through) == [], summary
    assert through == direct, summary
