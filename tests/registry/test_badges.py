"""`/api/badges/{serverId}`: SVG that parses, says the grade in its colour in three styles,
escapes what it shows, caches for an hour with an ETag and answers 304 to it; private servers
have no badge."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from conduit.kit.runtime import Runtime
from conduit.registry import badges
from tests.orgs.conftest import assert_error
from tests.registry.support import new_owner

SVG = "{http://www.w3.org/2000/svg}"


def parse(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{SVG}svg"
    return root


def words(root: ET.Element) -> list[str]:
    """The badge's texts, once each (each is drawn twice: shadow and text)."""
    texts = [node.text or "" for node in root.iter(f"{SVG}text")]
    return texts[1::2]


def fills(root: ET.Element) -> set[str]:
    return {node.get("fill", "") for node in root.iter(f"{SVG}rect")}


async def test_a_scanned_servers_badge_in_each_style(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register_poisoned("Math helpers", public=True)
    scanned = await owner.scanned(server["slug"])
    total, count = scanned["scores"]["total"], scanned["findingsCount"]
    path = f"/api/badges/{server['id']}"

    standard = await client.get(path)
    root = parse(standard)
    assert words(root) == ["trust score", f"F · {total}/100"]
    assert badges.GRADE_COLOURS["F"] in fills(root)
    assert root.findtext(f"{SVG}title") == f"trust score: F · {total}/100"
    assert standard.headers["cache-control"] == "public, max-age=3600"
    assert standard.headers["x-content-type-options"] == "nosniff"
    assert standard.headers["etag"].startswith('"')  # strong
    assert parse(await client.get(path, params={"style": "standard"})).attrib == root.attrib

    assert words(parse(await client.get(path, params={"style": "compact"}))) == ["trust", "F"]
    detailed = words(parse(await client.get(path, params={"style": "detailed"})))
    assert detailed == ["Math helpers", f"F · {total}/100 · {count} findings"]

    tags = {(await client.get(path, params={"style": style})).headers["etag"] for style in badges.STYLES}
    assert len(tags) == 3


async def test_etag_and_if_none_match(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Down", upstream_url="http://127.0.0.1:9/mcp", public=True)
    path = f"/api/badges/{server['id']}"
    first = await client.get(path)
    tag = first.headers["etag"]
    assert (await client.get(path)).headers["etag"] == tag  # the same content, the same tag

    for sent in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        cached = await client.get(path, headers={"If-None-Match": sent})
        assert cached.status_code == 304, sent
        assert cached.content == b""
        assert cached.headers["etag"] == tag
        assert cached.headers["cache-control"] == "public, max-age=3600"
    fresh = await client.get(path, headers={"If-None-Match": '"stale"'})
    assert fresh.status_code == 200
    assert fresh.content == first.content


async def test_head_answers_the_badges_headers_without_the_image(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Down", upstream_url="http://127.0.0.1:9/mcp", public=True)
    path = f"/api/badges/{server['id']}?style=detailed"
    full = await client.get(path)

    head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("etag", "cache-control", "content-type", "content-length"):
        assert head.headers[name] == full.headers[name], name
    assert int(head.headers["content-length"]) == len(full.content)
    cached = await client.head(path, headers={"If-None-Match": full.headers["etag"]})
    assert cached.status_code == 304
    assert (await client.head("/api/badges/srv_nope")).status_code == 404


async def test_the_badge_changes_with_the_first_scan(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register_poisoned("Math helpers", public=True)
    path = f"/api/badges/{server['id']}"
    before = await client.get(path)
    root = parse(before)
    assert words(root) == ["trust score", "not scanned"]
    assert badges.UNSCANNED_COLOUR in fills(root)
    assert words(parse(await client.get(path, params={"style": "compact"}))) == ["trust", "not scanned"]
    assert words(parse(await client.get(path, params={"style": "detailed"}))) == [
        "Math helpers",
        "not scanned",
    ]

    await owner.scanned(server["slug"])
    after = await client.get(path, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200  # the old tag no longer matches
    assert after.headers["etag"] != before.headers["etag"]
    assert words(parse(after))[1].startswith("F · ")


async def test_names_are_escaped_and_cleaned(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    name = "<script>alert(\"x\")</script> & 'co'\u202e\u200b\tx"
    server = await owner.register(name, upstream_url="http://127.0.0.1:9/mcp", public=True)
    response = await client.get(f"/api/badges/{server['id']}", params={"style": "detailed"})
    root = parse(response)
    assert words(root)[0] == "<script>alert(\"x\")</script> & 'co' x"
    assert not [node for node in root.iter() if node.tag.endswith("script")]
    assert b"<script" not in response.content
    assert "\u202e" not in response.text
    assert root.get("aria-label", "").startswith("<script>")  # escaped in the attribute too


async def test_private_and_unknown_servers_have_no_badge(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await new_owner(client, runtime)
    private = await owner.register("Private", upstream_url="http://127.0.0.1:9/mcp")
    missing = await client.get("/api/badges/srv_doesnotexist")
    hidden = await client.get(f"/api/badges/{private['id']}")
    assert_error(missing, 404, "server_not_found")
    assert_error(hidden, 404, "server_not_found")
    assert hidden.json() == missing.json()
    assert "max-age" not in hidden.headers.get("cache-control", "")
    await owner.set_public(private["id"], True)
    parse(await client.get(f"/api/badges/{private['id']}"))


@pytest.mark.parametrize("style", ["flat", "STANDARD", ""])
async def test_unknown_styles_are_400(client: httpx.AsyncClient, runtime: Runtime, style: str) -> None:
    owner = await new_owner(client, runtime)
    server = await owner.register("Down", upstream_url="http://127.0.0.1:9/mcp", public=True)
    response = await client.get(f"/api/badges/{server['id']}", params={"style": style})
    assert_error(response, 400, "invalid_style")


def test_clean_keeps_visible_text_only() -> None:
    assert badges.clean("a\u202eb\u200cc\x00d\ne  f") == "abcd e f"
    assert badges.clean("x" * 50) == "x" * 39 + "…"
    assert badges.clean("\u200b") == ""


def test_if_none_match_compares_weakly() -> None:
    assert badges.matches('W/"abc"', '"abc"')
    assert badges.matches('"x" , "abc"', '"abc"')
    assert not badges.matches('"abcd"', '"abc"')
    assert not badges.matches(None, '"abc"')
    assert not badges.matches("", '"abc"')
