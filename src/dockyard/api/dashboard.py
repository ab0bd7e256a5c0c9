"""The dashboard's built files, served at `/` (the Svelte app in `dashboard/`, built into the
package by `scripts/up` and `scripts/test`). Assets are immutable (content-hashed names) and
sent gzipped, compressed once per process."""

from __future__ import annotations

import gzip
import mimetypes
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

BUILD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
ASSET_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NOT_BUILT = ("<!doctype html><title>Dockyard</title><p>The dashboard is not built here. "
             "Run <code>./scripts/up</code>, or <code>cd dashboard &amp;&amp; npm ci &amp;&amp; "
             "npm run build</code>. The API is at <a href=\"/docs\">/docs</a>.</p>")

router = APIRouter(include_in_schema=False)


def _build_dir(request: Request) -> Path:
    return request.app.state.platform.settings.dashboard_dir or BUILD_DIR


@router.get("/")
@router.get("/invite")  # an invitation's link: /invite#<secret>, the secret never sent here
async def index(request: Request) -> Response:
    page = _build_dir(request) / "index.html"
    if not page.is_file():
        return Response(NOT_BUILT, status_code=503, media_type="text/html",
                        headers=SECURITY_HEADERS)
    return Response(page.read_bytes(), media_type="text/html",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/assets/{name}")
async def asset(name: str, request: Request) -> Response:
    folder = _build_dir(request) / "assets"
    if not ASSET_NAME.fullmatch(name) or not (folder / name).is_file():
        raise HTTPException(404, f"no dashboard asset named {name!r}")
    raw, packed = _asset(folder / name)
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=31536000, immutable",
               "Vary": "Accept-Encoding"}
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(packed, media_type=media_type,
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(raw, media_type=media_type, headers=headers)


@cache
def _asset(path: Path) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0)
