"""Resolved credentials, kept a few seconds per process so most requests skip the lookup.

Keyed by a SHA-256 digest of the token and the workspace asked for, never the token itself.
A write that changes or removes a row of the tables below empties this process's cache when it
commits (`Database.on_commit`), so a revocation holds at once here; other processes notice it
when their entry ends, at most `auth_cache_seconds` later. An entry never outlives its
credential's own expiry.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from dockyard.core.authz import Actor
from dockyard.kernel.db import ANY_TABLE
from dockyard.models.base import utcnow

# The rows an authentication reads: a change to any of them may end or narrow a credential.
AUTH_TABLES = frozenset({"api_tokens", "user_sessions", "memberships", "users", "workspaces"})


@dataclass
class Credential:
    """A bearer token resolved: who acts, when the credential was last used, when it ends."""

    actor: Actor
    last_used: datetime | None
    ends: datetime | None


def cache_key(token: str, workspace: str | None) -> bytes:
    return hashlib.sha256(f"{workspace or ''}\n{token}".encode()).digest()


class AuthCache:
    """A bounded map of credentials, oldest dropped first; `seconds` 0 turns it off."""

    def __init__(self, seconds: float, size: int = 4096) -> None:
        self.seconds, self.size = seconds, size
        self.generation = 0  # bumped by every invalidation
        self._entries: OrderedDict[bytes, tuple[float, Credential]] = OrderedDict()

    def get(self, key: bytes) -> Credential | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: bytes, found: Credential, generation: int) -> None:
        """Keep `found`, unless an invalidation happened since its lookup began."""
        if self.seconds <= 0 or generation != self.generation:
            return
        until = time.monotonic() + self._lifetime(found.ends)
        self._entries[key] = (until, found)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _lifetime(self, ends: datetime | None) -> float:
        if ends is None:
            return self.seconds
        return min(self.seconds, (ends - utcnow()).total_seconds())

    def invalidate(self, tables: frozenset[str]) -> None:
        """Called after every committed write with the tables it changed."""
        if ANY_TABLE in tables or tables & AUTH_TABLES:
            self.generation += 1
            self._entries.clear()
