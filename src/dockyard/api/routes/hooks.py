"""Forge webhooks, repository links and their deliveries (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
