"""Agents that upgrade in place, and the agent bundle they upgrade to (issue 13)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["infra"])
