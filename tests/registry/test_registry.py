"""The public registry after real scans through the API: listing with grade filter, sorts and
paging, search, the trust report with its history, and what a public viewer never sees."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from conduit.kit.clock import clock
from conduit.kit.runtime import Runtime
from tests.conftest import client_for
from tests.mcp_servers import ServerProcess
from tests.orgs.conftest import assert_error
from tests.registry.support import (
    PUBLIC_FINDING_FIELDS,
    PUBLIC_SERVER_FIELDS,
    Owner,
    names,
    new_owner,
    registry,
)
from tests.scanning.support import POISONED_SERVER


async def scan_later(owner: Owner, slug: str) -> dict[str, Any]:
    """Scans a minute apart, so `recent` and the history have an order to show."""
    clock.advance(timedelta(minutes=1))
    return await owner.scanned(slug)


@pytest.fixture
async def catalogue(
    client: httpx.AsyncClient, runtime: Runtime, fixture_http: ServerProcess
) -> dict[str, Any]:
    """Two organizations: a good HTTP server and a poisoned stdio one, scanned in that order; a
    public server never scanned; and private servers, one of them scanned."""
    acme = await new_owner(client, runtime, plan="pro")
    other = await new_owner(client, runtime)
    good = await acme.register(
        "Weather tools", upstream_url=fixture_http.url, description="Forecasts by city", public=True
    )
    poisoned = await other.register_poisoned("Math helpers", description="Adds 100% of numbers", public=True)
    fresh = await acme.register("Zeta notes", upstream_url="http://127.0.0.1:9/mcp", public=True)
    hidden = await acme.register(
        "Secret weather", upstream_url=fixture_http.url, headers={"Authorization": "Bearer upstream-token"}
    )
    good_scan = await scan_later(acme, good["slug"])
    poisoned_scan = await scan_later(other, poisoned["slug"])
    await scan_later(acme, hidden["slug"])
    return {
        "acme": acme,
        "other": other,
        "good": good,
        "poisoned": poisoned,
        "fresh": fresh,
        "hidden": hidden,
        "good_scan": good_scan,
        "poisoned_scan": poisoned_scan,
    }


async def test_the_registry_lists_public_servers_of_every_organization(
    client: httpx.AsyncClient, catalogue: dict[str, Any]
) -> None:
    page = await registry(client)
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    # Best score first, the unscanned last; the private server nowhere.
    assert names(page) == ["Weather tools", "Math helpers", "Zeta notes"]
    for server in page["servers"]:
        assert set(server) == PUBLIC_SERVER_FIELDS
        assert server["badge_url"].endswith(f"/api/badges/{server['id']}")
    weather, math, zeta = page["servers"]
    assert weather["trust_score"] == catalogue["good_scan"]["scores"]["total"]
    assert (math["trust_grade"], math["trust_score"]) == ("F", catalogue["poisoned_scan"]["scores"]["total"])
    assert (zeta["trust_score"], zeta["trust_grade"], zeta["last_scanned_at"]) == (None, None, None)
    assert math["last_scanned_at"] > weather["last_scanned_at"]
    assert math["transport"] == "stdio"


async def test_sorts_filters_and_pages(client: httpx.AsyncClient, catalogue: dict[str, Any]) -> None:
    assert names(await registry(client, sort="name")) == ["Math helpers", "Weather tools", "Zeta notes"]
    assert names(await registry(client, sort="recent")) == ["Math helpers", "Weather tools", "Zeta notes"]
    failing = await registry(client, grade="F")
    assert (names(failing), failing["total"]) == (["Math helpers"], 1)
    assert names(await registry(client, grade="f")) == ["Math helpers"]
    good_grade = catalogue["good_scan"]["scores"]["grade"]
    assert "Weather tools" in names(await registry(client, grade=good_grade))
    second = await registry(client, sort="name", limit=1, offset=1)
    assert (names(second), second["total"], second["limit"], second["offset"]) == (["Weather tools"], 3, 1, 1)
    beyond = await registry(client, offset=10)
    assert (beyond["servers"], beyond["total"]) == ([], 3)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"grade": "E"}, 400, "invalid_grade"),
        ({"grade": "A+"}, 400, "invalid_grade"),
        ({"sort": "popular"}, 400, "invalid_sort"),
        ({"limit": 101}, 422, None),
        ({"limit": 0}, 422, None),
        ({"offset": -1}, 422, None),
    ],
)
async def test_bad_registry_parameters(
    client: httpx.AsyncClient, params: dict[str, Any], status: int, code: str | None
) -> None:
    assert_error(await client.get("/api/registry", params=params), status, code)


async def test_search_covers_names_and_descriptions(
    client: httpx.AsyncClient, catalogue: dict[str, Any]
) -> None:
    async def search(q: str) -> dict[str, Any]:
        response = await client.get("/api/registry/search", params={"q": q})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"servers", "total"}
        return body

    assert names(await search("WEATHER")) == ["Weather tools"]  # not the private "Secret weather"
    assert names(await search("forecasts")) == ["Weather tools"]  # in the description
    assert names(await search("math numbers")) == ["Math helpers"]  # every word, anywhere
    assert (await search("math forecasts"))["total"] == 0
    assert names(await search("100%")) == ["Math helpers"]
    assert names(await search("%")) == ["Math helpers"]  # a literal %, not a wildcard
    assert (await search("_"))["total"] == 0
    everything = await search("e")
    assert everything["total"] == 3
    assert set(everything["servers"][0]) == PUBLIC_SERVER_FIELDS
    paged = await client.get("/api/registry/search", params={"q": "e", "limit": 1})
    assert (len(paged.json()["servers"]), paged.json()["total"]) == (1, 3)
    assert_error(await client.get("/api/registry/search", params={"q": "   "}), 400, "invalid_query")
    assert_error(await client.get("/api/registry/search"), 422)
    assert_error(await client.get("/api/registry/search", params={"q": "x" * 201}), 422)


async def test_the_trust_report_has_the_latest_scan_findings_and_history(
    client: httpx.AsyncClient, catalogue: dict[str, Any]
) -> None:
    other: Owner = catalogue["other"]
    poisoned = catalogue["poisoned"]
    second = await scan_later(other, poisoned["slug"])

    response = await client.get(f"/api/registry/{poisoned['id']}")
    assert response.status_code == 200, response.text
    report = response.json()
    assert set(report) == {"server", "latestScan", "findings", "history"}
    assert set(report["server"]) == PUBLIC_SERVER_FIELDS
    latest = report["latestScan"]
    assert latest["total_score"] == second["scores"]["total"]
    assert latest["grade"] == "F"
    assert latest["breakdown"] == second["scores"]["breakdown"]
    assert latest["findings_count"] == second["findingsCount"] == len(report["findings"])
    assert sum(latest["severity_counts"].values()) == latest["findings_count"]
    assert latest["capped_by"] in (None, "a critical finding")  # None when the score was low already
    assert latest["scanned_at"] == report["server"]["last_scanned_at"]

    history = report["history"]
    assert len(history) == 2
    assert history[0]["scanned_at"] == latest["scanned_at"]
    assert history[0]["scanned_at"] > history[1]["scanned_at"]
    assert [h["total_score"] for h in history] == [second["scores"]["total"]] * 2
    assert set(history[0]) == {"total_score", "grade", "findings_count", "scanned_at"}

    findings = report["findings"]
    for finding in findings:
        assert set(finding) == PUBLIC_FINDING_FIELDS
    assert findings[0]["severity"] == "critical"  # most severe first
    by_location = {(f["id"], f["location"]) for f in findings}
    assert ("CND-PI-001", "tools[0].description") in by_location
    assert ("CND-PI-002", "tools[1].description") in by_location
    assert all(f["title"] and f["remediation"] and f["owasp_category"] for f in findings)


async def test_a_public_viewer_never_sees_the_upstream_or_the_organization(
    client: httpx.AsyncClient, catalogue: dict[str, Any], fixture_http: ServerProcess
) -> None:
    acme: Owner = catalogue["acme"]
    await acme.set_public(catalogue["hidden"]["id"], True)  # with its upstream credentials
    texts = [
        (await client.get("/api/registry")).text,
        (await client.get("/api/registry/search", params={"q": "weather"})).text,
    ]
    for server in ("good", "poisoned", "hidden"):
        texts.append((await client.get(f"/api/registry/{catalogue[server]['id']}")).text)
    everything = "\n".join(texts)
    assert "Secret weather" in everything
    for leak in (
        fixture_http.url,
        str(fixture_http.port),
        str(POISONED_SERVER),
        "upstream-token",
        "attacker@evil.example",  # the hidden orders, which only the evidence quotes
        acme.org_id,
        catalogue["other"].org_id,
        acme.user.email,
        "/s/",  # gateway endpoints name the organization
    ):
        assert leak not in everything, leak
    for text in texts[2:]:
        for finding in json.loads(text)["findings"]:
            assert "evidence" not in finding


async def test_private_servers_are_404_and_owners_can_publish_and_withdraw(
    client: httpx.AsyncClient, catalogue: dict[str, Any]
) -> None:
    acme: Owner = catalogue["acme"]
    hidden = catalogue["hidden"]
    missing = await client.get("/api/registry/srv_doesnotexist")
    private = await client.get(f"/api/registry/{hidden['id']}")
    assert_error(missing, 404, "server_not_found")
    assert_error(private, 404, "server_not_found")
    assert private.json() == missing.json()  # nothing tells a private server from none

    assert (await acme.set_public(hidden["id"], True))["isPublic"] is True
    report = await client.get(f"/api/registry/{hidden['id']}")
    assert report.status_code == 200, report.text
    assert (
        report.json()["latestScan"]["grade"]
        == (await registry(client, sort="recent"))["servers"][0]["trust_grade"]
    )
    assert (await registry(client))["total"] == 4

    assert (await acme.set_public(hidden["id"], False))["isPublic"] is False
    assert_error(await client.get(f"/api/registry/{hidden['id']}"), 404, "server_not_found")
    assert (await registry(client))["total"] == 3
    listed = (await client.get("/api/servers", headers=acme.headers)).json()
    assert {s["name"]: s["public"] for s in listed}["Secret weather"] is False


async def test_a_public_server_never_scanned_has_an_empty_report(
    client: httpx.AsyncClient, catalogue: dict[str, Any]
) -> None:
    report = (await client.get(f"/api/registry/{catalogue['fresh']['id']}")).json()
    assert (report["latestScan"], report["findings"], report["history"]) == (None, [], [])
    assert report["server"]["trust_score"] is None


async def test_a_failed_scan_keeps_the_last_report(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Flaky", upstream_url="http://127.0.0.1:9/mcp", public=True)
    failed = await owner.scan(server["slug"])
    assert failed.json()["error"]
    report = (await client.get(f"/api/registry/{server['id']}")).json()
    assert (report["latestScan"], report["history"]) == (None, [])
    assert (await registry(client))["servers"][0]["last_scanned_at"] is None


async def test_a_token_kept_in_the_sealed_environment_is_not_a_leak_and_never_shown(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await new_owner(client, runtime)
    token = "ghp_" + "Z9" * 18
    server = await owner.register_poisoned("With a token", env={"DEPLOY_GITHUB_TOKEN": token}, public=True)
    await owner.scanned(server["slug"])
    response = await client.get(f"/api/registry/{server['id']}")
    assert response.status_code == 200, response.text
    findings = response.json()["findings"]
    # Conduit stores the environment encrypted: not a credential in plain text (CND-SEC-001).
    assert not [f for f in findings if f["id"] == "CND-SEC-001" or f["location"].startswith("command.env")]
    assert "DEPLOY_GITHUB_TOKEN" not in response.text
    assert "ghp_" not in response.text
    assert "Z9Z9" not in response.text


async def test_the_public_registry_is_rate_limited_per_client_and_says_when_to_come_back(
    client: httpx.AsyncClient, runtime: Runtime, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.freeze()
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"registry_rate_limit": 3}))
    for path in ("/api/registry", "/api/registry/search?q=weather", "/api/registry/srv_missing"):
        assert (await client.get(path)).status_code in (200, 404)

    refused = await client.get("/api/registry")
    body = assert_error(refused, 429, "rate_limited")
    assert "3 registry requests a minute" in body["error"]
    assert int(refused.headers["Retry-After"]) == 20  # one request back every 60 / 3 s

    clock.advance(timedelta(seconds=20))
    assert (await client.get("/api/registry")).status_code == 200
    assert (await client.get("/api/registry")).status_code == 429
    async with client_for(app, ip="203.0.113.9") as elsewhere:  # another client has its own
        assert (await elsewhere.get("/api/registry")).status_code == 200
    # Badges are images in other sites' pages, fetched through their proxies: not limited here.
    assert (await client.get("/api/badges/srv_missing")).status_code == 404
