"""Shared fixtures: real SQLite and PostgreSQL databases, the platform, an API client."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.api.app import create_app
from dockyard.core.authz import Actor
from dockyard.core.bootstrap import create_owner, ensure_first_owner
from dockyard.core.invitations import accept_invitation, invite
from dockyard.core.platform import Platform
from dockyard.kernel.migrate import upgrade
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.accounts import InvitationAccept, InvitationCreate
from dockyard.models.enums import Role
from tests.host_group import HostGroupScheduling
from tests.pg import PgServer, start_postgres

pytest_plugins = ["tests.browser"]  # `page`, `browser`: Chromium for the dashboard's tests

PASSWORD = "correct-horse-battery"
_counter = itertools.count()


def make_settings(data_dir: Path, database_url: str | None, **overrides: object) -> Settings:
    """Settings for a test, independent of the environment the tests run in."""
    values: dict[str, object] = {
        "data_dir": data_dir, "database_url": database_url, "redis_url": None,
        "login_limit_per_client": 1000, "login_limit_per_account": 1000,
        "password_time_cost": 1, "password_memory_kib": 64,
        "agent_wait_seconds": 0,  # tests that wait for a restarting agent say how long
        **overrides,
    }
    return Settings.model_validate(values)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> HostGroupScheduling | None:
    """`--dist loadgroup`: the groups of tests/host_group.py."""
    return HostGroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    server.psql("CREATE DATABASE dockyard_template")
    upgrade(make_settings(Path("/nonexistent"), server.url("dockyard_template")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sqlite-template")
    upgrade(make_settings(directory, None))
    return directory / "dockyard.db"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str | None:
    """A fresh, migrated database for each test: SQLite, then PostgreSQL."""
    return fresh_database(request, tmp_path, sqlite_template)


def fresh_database(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
                   ) -> str | None:
    """A migrated database of the kind `request.param` names ("sqlite" or "postgres")."""
    if request.param == "sqlite":
        shutil.copy(sqlite_template, tmp_path / "dockyard.db")
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"test_{next(_counter)}"
    server.psql(f"CREATE DATABASE {name} TEMPLATE dockyard_template STRATEGY FILE_COPY")
    return server.url(name)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    result = make_settings(tmp_path, database_url)
    ensure_key_file(result.key_file)
    return result


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    opened = Platform.open(settings)
    yield opened
    await opened.close()


@pytest.fixture
async def client(settings: Settings, platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://dockyard.test") as http:
        yield http


@dataclass
class Account:
    email: str
    user_id: str
    workspace_id: str
    headers: dict[str, str]

    def actor(self, role: Role) -> Actor:
        return Actor(self.user_id, self.workspace_id, role)


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Account:
    answer = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    me = (await client.get("/api/v1/auth/me", headers=headers)).json()
    return Account(email, me["user"]["id"], me["workspace_id"], headers)


@pytest.fixture
async def owner(platform: Platform, client: httpx.AsyncClient) -> Account:
    await ensure_first_owner(platform, "owner@example.com", PASSWORD)
    return await log_in(client, "owner@example.com")


async def join_by_invitation(platform: Platform, owner: Account, role: Role, email: str) -> None:
    """The owner invites `email`; its person accepts, choosing PASSWORD for a new account."""
    body = InvitationCreate(email=email, role=role)
    invited = await invite(platform, owner.actor(Role.OWNER), owner.workspace_id, body)
    accept = InvitationAccept(token=invited.token, password=PASSWORD)
    await accept_invitation(platform, None, accept, client=f"fixture:{email}")


@pytest.fixture
async def member_of(
    platform: Platform, client: httpx.AsyncClient, owner: Account
) -> Callable[..., Awaitable[Account]]:
    """Add a user with a role to the owner's workspace and return them logged in."""

    async def add(role: Role, email: str | None = None) -> Account:
        email = email or f"{role.value}-{next(_counter)}@example.com"
        await join_by_invitation(platform, owner, role, email)
        account = await log_in(client, email)
        account.headers["X-Dockyard-Workspace"] = owner.workspace_id
        return account

    return add


@pytest.fixture
async def stranger(platform: Platform, client: httpx.AsyncClient, owner: Account) -> Account:
    """The owner of a second workspace, who must see nothing of the first."""
    await create_owner(platform, "stranger@example.com", PASSWORD, "other-space")
    return await log_in(client, "stranger@example.com")
