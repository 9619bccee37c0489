"""Serves the CLI login page (`conduit login` opens it) and the page an invite link points to."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).parent / "pages"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def _page(name: str) -> str:
    return (PAGES / name).read_text()


@router.get("/cli/login")
async def cli_login_page() -> HTMLResponse:
    return HTMLResponse(_page("cli-login.html"), headers=SECURITY_HEADERS)


@router.get("/cli/signin.js")
async def signin_script() -> Response:
    return Response(_page("signin.js"), media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/invitations/{invitation_id}")
async def invitation_page(invitation_id: str) -> HTMLResponse:
    return HTMLResponse(_page("invitation.html"), headers=SECURITY_HEADERS)
