"""`dockyard backups schedule` as a user runs it, against a control plane started with
`dockyard up` whose database holds a Postgres service."""

from __future__ import annotations

from sqlalchemy import select

from dockyard.core.platform import Platform
from dockyard.models.enums import Role
from dockyard.models.tables import Membership
from tests.backups.test_backup_jobs import NOW, add_stateful
from tests.conftest import Account, make_settings
from tests.live import Live, ok, one_line_error


async def add_postgres(live: Live) -> None:
    platform = Platform.open(make_settings(live.data_dir, None))
    try:
        query = select(Membership).where(Membership.role == Role.OWNER)
        owner = (await platform.db.read(lambda s: s.scalars(query))).one()
        account = Account("owner@example.com", owner.user_id, owner.workspace_id, {})
        await add_stateful(platform, account, "db", created=NOW)
    finally:
        await platform.close()


async def test_schedule_shown_changed_and_a_wrong_one_refused(live: Live) -> None:
    await add_postgres(live)
    shown = ok(live.run("backups", "schedule", "db", "-p", "shop"))
    assert shown == ("shop/db is backed up at '0 3 * * *' (cron, UTC), next at "
                     "2026-12-03T03:00:00Z; the newest 7 good backups are kept.\n")
    changed = ok(live.run("backups", "schedule", "db", "-p", "shop", "--cron", "0 */6 * * *",
                          "--keep", "3"))
    assert changed == ("shop/db is backed up at '0 */6 * * *' (cron, UTC), next at "
                       "2026-12-02T12:00:00Z; the newest 3 good backups are kept.\n")
    wrong = live.run("backups", "schedule", "db", "-p", "shop", "--cron", "0 3 * * * *")
    one_line_error(wrong, "five fields of numbers", "422")
    assert "'0 */6 * * *'" in ok(live.run("backups", "schedule", "db", "-p", "shop"))
    none_kept = live.run("backups", "schedule", "db", "-p", "shop", "--keep", "0")
    assert none_kept.returncode != 0
    assert "--keep" in none_kept.stderr
