"""Schemathesis against a running server's own `/openapi.json`: no 500s, no response that breaks
the documented schema, no undocumented status code, on every operation."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.processes import ServerProcess, conduit_env, fresh_database, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("fuzz")
    # Generous lockout limits: the fuzzer signs in with random credentials from one address.
    env = conduit_env(
        workdir / "data",
        fresh_database("fuzz"),
        login_max_failures_per_ip=100000,
        login_max_failures_per_account=100000,
        default_plan="enterprise",
        # Registering a server queues its discovery, which would start whatever random command
        # the fuzzer registered: the API is under test here, not the worker.
        run_jobs="false",
    )
    process = start_server(workdir, env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def auth_headers(fuzz_server: ServerProcess) -> dict[str, str]:
    with fuzz_server.client() as client:
        client.post("/api/v1/accounts", json={"email": "fuzz@example.com", "password": PASSWORD})
        access = client.post("/api/v1/sessions", json={"email": "fuzz@example.com", "password": PASSWORD})
        token = client.post(
            "/api/v1/accounts/me/api-tokens",
            json={"name": "fuzz"},
            headers={"Authorization": f"Bearer {access.json()['access_token']}"},
        ).json()["token"]
    return {"Authorization": f"Bearer {token}"}


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


def test_every_operation_honours_its_schema(fuzz_server: ServerProcess, auth_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=fuzz_server.base_url, headers=auth_headers, checks=CHECKS, timeout=30
            )

        try:
            exercise()
        except BaseException as exc:  # hypothesis raises a BaseExceptionGroup for several failures
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[operation.label] = str(exc)[:1500]
    assert operations > 50
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_the_server_survived(fuzz_server: ServerProcess) -> None:
    assert httpx.get(f"{fuzz_server.base_url}/health", timeout=5).status_code == 200
    assert "unhandled_error" not in fuzz_server.stderr
