"""Servers from DigitalOcean: provision, snapshots, sizes and regions (issue 13)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["infra"])
