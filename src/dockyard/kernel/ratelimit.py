"""Fixed-window attempt counters, kept in memory or, for the API processes of one machine
(DOCKYARD_API_WORKERS), in a small SQLite file they share: a limit holds for the machine,
not per process."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.kernel.errors import RateLimited

MAX_KEYS = 10_000


class Counts(Protocol):
    def take(self, key: str, now: float, window: float, limit: int) -> float | None:
        """Count one hit; None if allowed, else the second its window started."""


@dataclass
class RateLimiter:
    """At most `limit` hits per key in each window of `window` seconds."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    counts: Counts = field(default_factory=lambda: MemoryCounts())

    def hit(self, key: str) -> None:
        """Count one attempt for `key`; raise RateLimited when the window is used up."""
        now = self.clock()
        started = self.counts.take(key, now, self.window, self.limit)
        if started is not None:
            raise RateLimited(max(1, math.ceil(started + self.window - now)))


def _window_of(row: tuple[float, int] | None, now: float, window: float) -> tuple[float, int]:
    """The current window's start and count (a new window when the old one ended, or when
    the clock went back, as a wall clock may)."""
    if row is None or not 0 <= now - row[0] < window:
        return now, 0
    return row


@dataclass
class MemoryCounts:
    _hits: dict[str, tuple[float, int]] = field(default_factory=dict)

    def take(self, key: str, now: float, window: float, limit: int) -> float | None:
        started, count = _window_of(self._hits.get(key), now, window)
        if count >= limit:
            return started
        self._hits[key] = (started, count + 1)
        if len(self._hits) > MAX_KEYS:
            self._hits = {k: v for k, v in self._hits.items() if 0 <= now - v[0] < window}
        return None


class SharedCounts:
    """Counts in a SQLite file every API process of the machine opens (not the platform's
    database: no write of its own waits on these). Counts need no durability: a crash may
    forget the last hits. Use a wall clock with it: a monotonic one restarts at boot."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def take(self, key: str, now: float, window: float, limit: int) -> float | None:
        with self._lock, self._open() as db:  # one IMMEDIATE transaction
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT started, count FROM hits WHERE key = ?",
                             (f"{self.name}:{key}",)).fetchone()
            started, count = _window_of(row, now, window)
            if count >= limit:
                return started
            db.execute("INSERT INTO hits VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                       "started = excluded.started, count = excluded.count",
                       (f"{self.name}:{key}", started, count + 1))
            if count == 0:  # a new window: forget the ended ones now and then
                db.execute("DELETE FROM hits WHERE started < ?", (now - 24 * 3600,))
            return None

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE IF NOT EXISTS hits "
                       "(key TEXT PRIMARY KEY, started REAL NOT NULL, count INTEGER NOT NULL)")
            self._connection = db
        return self._connection
