"""git over HTTP at a per-service remote (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
