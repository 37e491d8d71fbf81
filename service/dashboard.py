"""The dashboard: one page and its two assets, all served by payq itself (no CDN).

The page holds no data. Its script asks for the admin token in a sign-in form, keeps it in the
tab's ``sessionStorage`` (gone when the tab closes) and sends it as a bearer header to the admin
API, so the dashboard needs no cookie and offers no cross-site request surface. Everything it
shows is inserted as text, never as HTML, and a strict Content-Security-Policy forbids inline and
foreign scripts.
"""

from __future__ import annotations

import html
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response

STATIC = files("service") / "static"
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
async def dashboard(request: Request) -> HTMLResponse:
    root = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
    page = STATIC.joinpath("dashboard.html").read_text("utf-8").replace("{{root}}", root)
    return HTMLResponse(page, headers=SECURITY_HEADERS)


@router.get("/dashboard/assets/{name}")
async def dashboard_asset(name: Annotated[str, Path()]) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such asset")
    return Response(STATIC.joinpath(name).read_bytes(), media_type=media_type, headers=SECURITY_HEADERS)
