"""Wake idle outbox workers when a job is committed, so they wait instead of polling.

SQLite: once the enqueuing transaction commits, the enqueuer sends one datagram to each of
`SLOTS` abstract unix socket names derived from the database file; each worker on this host
binds one of them. PostgreSQL: `pg_notify` in the enqueuing transaction, delivered at commit to
workers that LISTEN, on any host. A worker also wakes when the next delayed job is due and at
its safety interval, so a lost wake-up only delays a job, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger("dockyard.worker")

SLOTS = 16  # outbox workers per SQLite database and host that are woken; others wait it out
CHANNEL = "dockyard_outbox"
_PENDING = "dockyard_wake"  # session.info key: the database to poke once the commit is done


def socket_name(database: str, slot: int) -> bytes:
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:24]
    return f"\0dockyard-wake-{digest}-{slot}".encode()


def poke(database: str) -> None:
    """Wake the workers of this SQLite database on this host; never fails the caller."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for slot in range(SLOTS):
            with contextlib.suppress(OSError):  # nobody there, or its buffer is full: awake
                sock.sendto(b"!", socket_name(database, slot))


async def announce(session: AsyncSession) -> None:
    """Called by whoever adds outbox rows inside `session`'s transaction."""
    url = session.get_bind().engine.url
    if url.get_backend_name() == "postgresql":
        await session.execute(select(func.pg_notify(CHANNEL, "")))
    elif url.database:
        session.info[_PENDING] = url.database


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    database = session.info.pop(_PENDING, None)
    if database is not None:
        poke(database)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


class Wakeup:
    """What an idle worker waits on: `wait(at_most)` returns early once jobs may be there."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(at_most, 0.0))
        self._event.clear()

    async def start(self) -> None:
        """Begin listening; a wake-up that cannot listen leaves waits to their timeouts."""

    async def close(self) -> None:
        """Stop listening."""


class Polling(Wakeup):
    """No listening at all: look again every `every` seconds."""

    def __init__(self, every: float) -> None:
        super().__init__()
        self.every = every

    async def wait(self, at_most: float) -> None:
        await super().wait(min(at_most, self.every))


class SocketWakeup(Wakeup):
    """Binds the first free slot of a SQLite database's wake-up names."""

    def __init__(self, database: str) -> None:
        super().__init__()
        self.database = database
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        for slot in range(SLOTS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(socket_name(self.database, slot))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)
            self._sock = sock
            return
        log.warning("all %d wake-up slots of this database are taken: this worker looks for "
                    "jobs at its safety interval only", SLOTS)

    def _drain(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(16):
                pass
        self.set()

    async def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


class NotifyWakeup(Wakeup):
    """LISTENs on PostgreSQL on a connection of its own; reconnects at the next wait."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._conn: Any = None

    async def start(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        try:
            self._conn = await asyncpg.connect(self.dsn)
            await self._conn.add_listener(CHANNEL, lambda *_: self.set())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot LISTEN for new jobs (%s): looking at the safety interval", exc)
            await self.close()

    async def wait(self, at_most: float) -> None:
        if self._conn is None or self._conn.is_closed():
            await self.start()
            if self._conn is not None:
                self.set()  # notifications may have been missed while not listening
        await super().wait(at_most)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None


def for_database(url: str) -> Wakeup:
    """The wake-up that suits the database at `url` (an SQLAlchemy URL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return NotifyWakeup(dsn)
    return SocketWakeup(parsed.database or ":memory:")
