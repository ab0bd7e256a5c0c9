"""A Postgres service's backup and verified restore, timed, for a database of about
`--mb` MB: the library calls the API makes (`create_backup`, `restore_backup`) on a
SQLite control plane in a temporary directory, a real agent app over ASGI on this
machine's Docker, the offline Postgres image. Prints the figures; asserts nothing.

"backup": dump (pg_dump -Fc), seal and store, read back, restore into a scratch
container and check every table's rows. "restore": read back, create a new service,
load it.

    .venv/bin/python bench/stateful_backup_bench.py [--mb 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import docker
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.agent.conftest import SECRET as TEST_SECRET  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.real_agent import agent_on_this_docker, firewall_namespace  # noqa: E402

from dockyard.agent.client import NodeAgentClient  # noqa: E402
from dockyard.core import backup_restore, backups, stateful  # noqa: E402
from dockyard.core.authz import Actor  # noqa: E402
from dockyard.core.bootstrap import ensure_first_owner  # noqa: E402
from dockyard.core.platform import Platform  # noqa: E402
from dockyard.core.projects import create_project  # noqa: E402
from dockyard.core.servers import register_server  # noqa: E402
from dockyard.deploy.runner import DeployRunner  # noqa: E402
from dockyard.kernel.migrate import upgrade  # noqa: E402
from dockyard.kernel.security import ensure_key_file  # noqa: E402
from dockyard.models.backup_schemas import BackupRestore  # noqa: E402
from dockyard.models.enums import Role, ServerStatus  # noqa: E402
from dockyard.models.schemas import ProjectCreate, ServerPublic  # noqa: E402
from dockyard.models.stateful_schemas import StatefulCreate  # noqa: E402
from dockyard.models.tables import Server, User, Workspace  # noqa: E402
from dockyard.providers import images, local  # noqa: E402

PROJECT = "bench"
ROW = 1000  # bytes of payload per row


async def fill(url: str, megabytes: int) -> int:
    """`megabytes` of rows in one table (hex digests: about half compressible, like much
    real data); the number of rows."""
    rows = megabytes * 1024 * 1024 // ROW
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE blobs (id bigint PRIMARY KEY, body text)")
        await connection.execute(
            "INSERT INTO blobs SELECT n, (SELECT string_agg(md5(n::text || '.' || g::text), '')"
            " FROM generate_series(1, $1) g) FROM generate_series(1, $2) n", ROW // 32, rows)
    finally:
        await connection.close()
    return rows


def reachable(url: str, port: int) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}").geturl()


async def platform_in(directory: Path) -> tuple[Platform, Actor]:
    settings = make_settings(directory, None)
    ensure_key_file(settings.key_file)
    upgrade(settings)
    p = Platform.open(settings)
    await ensure_first_owner(p, "bench@example.com", "correct-horse-battery")
    user_id, workspace_id = await p.db.read(lambda s: _first(s))
    return p, Actor(user_id, workspace_id, Role.OWNER)


async def _first(s: AsyncSession) -> tuple[str, str]:
    return (await s.scalar(select(User.id)) or "", await s.scalar(select(Workspace.id)) or "")


async def node(p: Platform, actor: Actor, directory: Path, docker_host: str, namespace: str
               ) -> DeployRunner:
    """The agent's firewall rules go into `namespace`, not this machine's firewall."""
    transport = agent_on_this_docker(directory / "agent", docker_host, namespace)

    async def connect(server: ServerPublic) -> NodeAgentClient:
        return NodeAgentClient("http://agent.test", TEST_SECRET, transport=transport,
                               timeout=3600)

    server = await register_server(p, actor.workspace_id, name="node1", provider="manual",
                                   ip="127.0.0.1", agent_port=8421, agent_insecure_http=True)
    await p.db.write(lambda s: s.execute(
        update(Server).where(Server.id == server.id).values(status=ServerStatus.ACTIVE)))
    return DeployRunner(p.db, p.settings, p.box, connect)


def clean(docker_host: str) -> None:
    api = docker.APIClient(base_url=docker_host)
    for found in api.containers(all=True, filters={"label": "dockyard.managed=true"}):
        if found["Labels"].get("dockyard.service", "").startswith((f"{PROJECT}-", "scratch-")):
            api.remove_container(found["Id"], force=True)
    for volume in api.volumes().get("Volumes") or []:
        if volume["Name"].startswith(f"{PROJECT}-"):
            api.remove_volume(volume["Name"], force=True)


async def bench(megabytes: int) -> None:
    docker_host = local.ensure_local_docker(images.ImageSettings().cache_dir)
    images.bootstrap_tarball(images.RECIPES["postgres"], images.ImageSettings())
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as temporary:
        directory = Path(temporary)
        p, actor = await platform_in(directory)
        try:
            with firewall_namespace("dybench") as namespace:
                runner = await node(p, actor, directory, docker_host, namespace)
                await measure(p, runner, actor, megabytes)
        finally:
            await p.close()
            clean(docker_host)


async def measure(p: Platform, runner: DeployRunner, actor: Actor, megabytes: int) -> None:
    await create_project(p, actor, ProjectCreate(name=PROJECT))
    started = time.monotonic()
    made = await stateful.create_stateful(p, runner, actor, PROJECT,
                                          StatefulCreate(name="db", kind="postgres"))
    print(f"create a Postgres service: {time.monotonic() - started:.1f} s")
    shown = await stateful.stateful_info(p, runner, actor, PROJECT, "db", show_secret=True)
    connection = await asyncpg.connect(reachable(shown.url, made.port))
    await connection.fetchval("SELECT 1")
    await connection.close()
    print(f"... and a client connected and queried: {time.monotonic() - started:.1f} s after "
          "the create began")
    rows = await fill(reachable(shown.url, made.port), megabytes)
    started = time.monotonic()
    backup = await backups.create_backup(p, runner, actor, PROJECT, "db")
    print(f"backup of {megabytes} MB ({rows} rows), stored {backup.size_bytes / 2**20:.1f} MiB"
          f", verified: {time.monotonic() - started:.1f} s ({backup.verification})")
    started = time.monotonic()
    await backup_restore.restore_backup(p, runner, actor, PROJECT, "db", backup.id,
                                        BackupRestore(into="db-copy"))
    print(f"restore into a new service: {time.monotonic() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    asyncio.run(bench(parser.parse_args().mb))


if __name__ == "__main__":
    main()
