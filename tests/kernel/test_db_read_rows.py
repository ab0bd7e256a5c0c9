"""`Database.read_rows`: one statement in a read transaction on a plain connection, which goes
back to the pool as soon as the statement is read (as a session's does at commit)."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, text

from dockyard.kernel.db import Database
from tests.conftest import make_settings


async def test_concurrent_reads_share_one_pooled_connection(tmp_path):
    db = Database(make_settings(tmp_path, None))
    seen = {"out": 0, "most": 0, "opened": 0}

    def out(*_: object) -> None:
        seen["out"] += 1
        seen["most"] = max(seen["most"], seen["out"])

    def back(*_: object) -> None:
        seen["out"] -= 1

    engine = db.engine.sync_engine
    event.listen(engine, "checkout", out)
    event.listen(engine, "checkin", back)
    event.listen(engine, "connect", lambda *_: seen.__setitem__("opened", seen["opened"] + 1))
    try:
        for _ in range(5):
            answers = await asyncio.gather(*(db.read_rows(text("SELECT :n"), {"n": n})
                                             for n in range(16)))
            assert [list(rows) for rows in answers] == [[(n,)] for n in range(16)]
    finally:
        await db.dispose()
    assert seen == {"out": 0, "most": 1, "opened": 1}  # SQLite calls never wait in between
