"""Preview environments of pull requests (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
