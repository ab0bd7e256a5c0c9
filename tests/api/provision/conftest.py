"""Fixtures of the provisioning tests: the fake DigitalOcean whose droplets boot as real
agent processes (support.Droplets), settings that reach it, an admin with its token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from tests.api.provision.support import INFRA, Droplets
from tests.conftest import fresh_database, make_settings
from tests.fakes.digitalocean import TOKEN, FakeDigitalOcean, serve_checked


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
                 ) -> str | None:
    """SQLite, or both databases for the tests marked support.BOTH_DATABASES."""
    return fresh_database(request, tmp_path, sqlite_template)


@pytest.fixture
def droplets(tmp_path: Path) -> Iterator[Droplets]:
    booted = Droplets(tmp_path / "droplets")
    yield booted
    booted.stop()


@pytest.fixture
def fake(tmp_path: Path, droplets: Droplets) -> Iterator[FakeDigitalOcean]:
    yield from serve_checked(tmp_path / "digitalocean.json", on_boot=droplets)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, fake: FakeDigitalOcean) -> Settings:
    result = make_settings(
        tmp_path, database_url, public_url="https://dockyard.example.com",
        digitalocean_api_url=fake.base_url, provision_poll_seconds=0.05,
        provision_ready_seconds=60, provision_active_seconds=30,
        digitalocean_retry_seconds=0.01, snapshot_build_seconds=30)
    ensure_key_file(result.key_file)
    return result


@pytest.fixture
async def admin(client, owner):
    """The owner, with the fake's token stored as credential `digitalocean`."""
    body = {"provider": "digitalocean", "token": TOKEN}
    answer = await client.put(f"{INFRA}/credentials/digitalocean", json=body,
                              headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return owner


