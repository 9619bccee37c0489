"""A real `conduit serve` process per test module, on a free loopback port and a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.processes import ServerProcess, conduit_env, fresh_database, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("e2e")
    # Debug logging: the tests that look for leaked secrets in the log see everything it can hold.
    env = conduit_env(workdir / "data", fresh_database("e2e"), job_poll_seconds=0.1, log_level="debug")
    process = start_server(workdir, env)
    yield process
    process.stop()
