"""A stateful service's backup schedule and retention through the API, on SQLite and
Postgres: read, changed, refused with a message, and only by those allowed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx

from dockyard.core.platform import Platform
from dockyard.models.enums import Role
from dockyard.models.stateful import StatefulInstance
from tests.backups.test_backup_jobs import NOW, add_stateful
from tests.conftest import Account

SCHEDULE = "/api/v1/projects/shop/stateful/db/backups/schedule"


async def test_the_default_schedule_and_a_change(platform: Platform, client: httpx.AsyncClient,
                                                 owner: Account) -> None:
    service = await add_stateful(platform, owner, "db", created=NOW - timedelta(hours=9))
    answer = await client.get(SCHEDULE, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"schedule": "0 3 * * *", "retention": 7,
                             "last_scheduled_at": None,
                             "next_run_at": "2026-12-02T03:00:00Z"}
    changed = await client.put(SCHEDULE, json={"schedule": "*/30  * * * *", "retention": 3},
                               headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["schedule"] == "*/30 * * * *"
    assert changed.json()["next_run_at"] == "2026-12-02T01:30:00Z"
    only_retention = await client.put(SCHEDULE, json={"retention": 2}, headers=owner.headers)
    assert (only_retention.json()["schedule"], only_retention.json()["retention"]) == (
        "*/30 * * * *", 2)
    instance = await platform.db.read(lambda s: s.get_one(StatefulInstance, service))
    assert (instance.backup_schedule, instance.backup_retention) == ("*/30 * * * *", 2)


async def test_a_wrong_schedule_or_retention_is_refused_and_nothing_changes(
        platform: Platform, client: httpx.AsyncClient, owner: Account) -> None:
    await add_stateful(platform, owner, "db", created=NOW)
    for body, where in (({"schedule": "0 3 * * * *"}, "five fields of numbers: minute hour"),
                        ({"schedule": "@daily"}, "five fields of numbers: minute hour"),
                        ({"schedule": "0 3 * * *\n"}, "five fields of numbers: minute hour"),
                        ({"retention": 0}, "greater than or equal to 1"),
                        ({"retention": 5, "every": "day"}, "Extra inputs")):
        answer = await client.put(SCHEDULE, json=body, headers=owner.headers)
        assert answer.status_code == 422, answer.text
        assert where in answer.text
    current = await client.get(SCHEDULE, headers=owner.headers)
    assert (current.json()["schedule"], current.json()["retention"]) == ("0 3 * * *", 7)


async def test_viewers_read_members_change_strangers_see_nothing(
        platform: Platform, client: httpx.AsyncClient, owner: Account, stranger: Account,
        member_of: Callable[..., Awaitable[Account]]) -> None:
    await add_stateful(platform, owner, "db", created=NOW)
    viewer, member = await member_of(Role.VIEWER), await member_of(Role.MEMBER)
    assert (await client.get(SCHEDULE, headers=viewer.headers)).status_code == 200
    refused = await client.put(SCHEDULE, json={"retention": 1}, headers=viewer.headers)
    assert refused.status_code == 403, refused.text
    allowed = await client.put(SCHEDULE, json={"retention": 1}, headers=member.headers)
    assert allowed.status_code == 200, allowed.text
    assert (await client.get(SCHEDULE, headers=stranger.headers)).status_code == 404
    unknown = await client.get(SCHEDULE.replace("/db/", "/cache/"), headers=owner.headers)
    assert unknown.status_code == 404
    assert "cache" in unknown.json()["detail"]
