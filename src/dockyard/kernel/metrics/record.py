"""One request's record, built from its ASGI scope and what the app told us along the way."""

from __future__ import annotations

import json
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from dockyard.kernel.context import current_request_id
from dockyard.kernel.metrics.realip import CLIENT_IP_HEADERS, Network, client_ip, country

MASK = "********"
_SECRET_PARAM = re.compile(r"token|secret|password|passwd|key|signature|auth|session", re.I)
ERROR_BODY_LIMIT = 2048
_RECORDED_HEADERS = frozenset(
    name.encode() for name in ("user-agent", "referer", "cf-ipcountry", *CLIENT_IP_HEADERS))


@dataclass
class RequestFacts:
    """Filled in while the request runs: the response status and body start, and who called."""

    started: float = field(default_factory=time.perf_counter)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status_code: int = 500
    error_body: bytearray = field(default_factory=bytearray)
    error: str | None = None
    user_id: str | None = None
    workspace_id: str | None = None


_facts: ContextVar[RequestFacts | None] = ContextVar("dockyard_request_facts", default=None)


def begin_request() -> RequestFacts:
    facts = RequestFacts()
    _facts.set(facts)
    return facts


def note_identity(user_id: str, workspace_id: str) -> None:
    """Tell the metrics middleware who the caller is (called once authentication succeeded)."""
    facts = _facts.get()
    if facts is not None:
        facts.user_id, facts.workspace_id = user_id, workspace_id


def query_params(query_string: bytes) -> dict[str, str | list[str]]:
    """The query as a dict; values of parameters that look secret are masked."""
    result: dict[str, str | list[str]] = {}
    if not query_string:
        return result
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        shown = MASK if _SECRET_PARAM.search(name) else value
        previous = result.get(name)
        if previous is None:
            result[name] = shown
        else:
            result[name] = [*([previous] if isinstance(previous, str) else previous), shown]
    return result


def error_detail(facts: RequestFacts) -> str | None:
    if facts.error is not None or facts.status_code < 400:
        return facts.error
    text = bytes(facts.error_body[:ERROR_BODY_LIMIT]).decode("utf-8", "replace")
    try:
        detail = json.loads(text).get("detail", text)
    except (ValueError, AttributeError):
        return text or None
    return detail if isinstance(detail, str) else json.dumps(detail)[:ERROR_BODY_LIMIT]


def recorded_headers(scope: Scope) -> dict[str, str]:
    """The headers a record uses, in one pass; the first of repeated ones, as Starlette's."""
    return {name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope["headers"]) if name in _RECORDED_HEADERS}


def build_record(
    scope: Scope, facts: RequestFacts, trusted: tuple[Network, ...], route: str
) -> dict[str, Any]:
    headers = recorded_headers(scope)
    peer = scope["client"][0] if scope.get("client") else None
    at = facts.at
    return {
        "method": scope["method"], "path": scope["path"][:2048], "route": route[:512],
        "query_params": query_params(scope.get("query_string", b"")),
        "request_id": current_request_id(), "status_code": facts.status_code,
        "error_detail": error_detail(facts),
        "latency_ms": round((time.perf_counter() - facts.started) * 1000, 3),
        "client_ip": client_ip(headers, peer, trusted),
        "user_agent": headers.get("user-agent", "")[:512],
        "referer": headers.get("referer", "")[:2048],
        "user_id": facts.user_id, "workspace_id": facts.workspace_id,
        "country": country(headers, peer, trusted), "created_at": at.isoformat(),
        "year": at.year, "month": at.month, "day": at.day, "hour": at.hour,
    }
