"""Per-request context carried through logs, audit rows and (later) jobs and agent calls."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("dockyard_request_id", default=None)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(value: str | None) -> str:
    """Bind an incoming id when it is safe to echo and log; otherwise a fresh one."""
    request_id = value if value and _VALID_REQUEST_ID.fullmatch(value) else uuid.uuid4().hex
    _request_id.set(request_id)
    return request_id
