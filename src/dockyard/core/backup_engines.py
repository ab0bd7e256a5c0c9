"""How a Postgres or Redis service is dumped, checked in a scratch container and loaded,
through its server's agent (commands as data, run in the container; no shell)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.agent.client import NodeAgentClient
from dockyard.agent.execs import ExecRequest, ExecResult
from dockyard.agent.models import ContainerSpec, RestartPolicy, VolumeMount
from dockyard.core import backup_checks as checks
from dockyard.core.stateful_node import wait_ready
from dockyard.deploy import stateful as shape
from dockyard.kernel.errors import ServerFailed
from dockyard.models.enums import ServiceKind

SCRATCH_LABEL = "dockyard.scratch"
BACKUP_LABEL = "dockyard.backup"
EXPIRES_LABEL = "dockyard.scratch.expires"  # a loader of a restore, kept until then (epoch)
REDIS_TMP = "/tmp/dockyard-backup-{}.rdb"  # noqa: S108 - inside the service's container
REDIS_RESTORE = "restore.rdb"
AOF_POLL_SECONDS = 0.2
AOF_SECONDS = 600.0


@dataclass(frozen=True)
class Dump:
    """A dump kept on the server's agent (a blob), and what the source held when it was
    taken (Redis: its key count)."""

    blob: str
    bytes: int
    sha256: str
    keys: int | None = None


async def run(client: NodeAgentClient, container: str, argv: list[str],
              env: Mapping[str, str] | None = None, stdin: str | None = None) -> ExecResult:
    """Run a command; a non-zero exit raises with the command's name and its stderr."""
    result = await client.run_in_container(container, ExecRequest(
        argv=argv, env=dict(env or {}), stdin=stdin))
    if result.exit_code != 0:
        await client.delete_blob(result.stdout.id)
        raise ServerFailed(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} in {container} "
                           f"exited {result.exit_code}: {result.stderr_tail.strip()[-500:]}")
    return result


async def output(client: NodeAgentClient, container: str, argv: list[str],
                 env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    """A command's stdout as text (small outputs: lists, counts)."""
    result = await run(client, container, argv, env, stdin)
    try:
        return b"".join([c async for c in client.read_blob(result.stdout.id)]).decode()
    finally:
        await client.delete_blob(result.stdout.id)


def _pg_env(password: str) -> dict[str, str]:
    return {"PGPASSWORD": password}


def _pg_target(user: str) -> list[str]:
    return ["--no-password", "-h", "127.0.0.1", "-U", user, "-d", user]


def _redis_env(password: str) -> dict[str, str]:
    return {"REDISCLI_AUTH": password}


async def dump(client: NodeAgentClient, instance: shape.Instance) -> Dump:
    """`pg_dump -Fc` as the service's user; for Redis an RDB snapshot (over replication,
    so the server's own files are untouched) and its key count just before."""
    container = shape.container_name(instance.site)
    if instance.kind is ServiceKind.POSTGRES:
        result = await run(client, container, ["pg_dump", "-Fc", *_pg_target(instance.user)],
                           _pg_env(instance.password))
        return Dump(result.stdout.id, result.stdout.bytes, result.stdout.sha256)
    return await _redis_dump(client, container, _redis_env(instance.password))


async def _redis_dump(client: NodeAgentClient, container: str, env: dict[str, str]) -> Dump:
    keys = int((await output(client, container, ["redis-cli", "DBSIZE"], env)).strip())
    snapshot = REDIS_TMP.format(secrets.token_hex(8))
    try:
        await output(client, container, ["redis-cli", "--rdb", snapshot], env)
        result = await run(client, container, ["cat", snapshot])
    finally:
        await output(client, container, ["rm", "-f", snapshot])
    return Dump(result.stdout.id, result.stdout.bytes, result.stdout.sha256, keys)


def scratch_name(instance: shape.Instance, backup_id: str) -> str:
    return f"{instance.site}-scratch-{backup_id[:12]}"


def scratch_spec(instance: shape.Instance, backup_id: str, volume: str | None = None,
                 expires: int | None = None) -> ContainerSpec:
    """A container of the same image as `instance` (its own password, no published port,
    no restart), labelled so that a sweep finds it if it is left behind; Redis runs with
    persistence off and DEBUG RELOAD allowed from inside, to load an RDB file."""
    spec = shape.container_spec(instance)
    command = spec.command
    if instance.kind is ServiceKind.REDIS:
        command = ["redis-server", "--port", "6379", "--dir", "/data", "--appendonly", "no",
                   "--dbfilename", REDIS_RESTORE, "--enable-debug-command", "local",
                   "--requirepass", instance.password, "--protected-mode", "no"]
    data_dir = shape.ENGINES[instance.kind].data_dir
    mounts = [VolumeMount(volume=volume, target=data_dir)] if volume else []
    return spec.model_copy(update={
        "name": scratch_name(instance, backup_id), "service": f"scratch-{backup_id[:16]}",
        "command": command, "ports": [], "volumes": mounts,
        "labels": {SCRATCH_LABEL: "true", BACKUP_LABEL: backup_id,
                   **({EXPIRES_LABEL: str(expires)} if expires else {})},
        "restart": RestartPolicy.NO})


def abandoned(labels: Mapping[str, str], live_backups: set[str], now: float) -> bool:
    """A scratch container neither of a running backup nor of a restore still in time."""
    if labels.get(SCRATCH_LABEL) != "true" or labels.get(BACKUP_LABEL) in live_backups:
        return False
    expires = labels.get(EXPIRES_LABEL, "")
    return not (expires.isdigit() and int(expires) > now)


async def start_scratch(client: NodeAgentClient, spec: ContainerSpec) -> str:
    await client.run_container(spec)
    await wait_ready(client, spec.name)
    return spec.name


async def verify(client: NodeAgentClient, scratch: shape.Instance, container: str, blob: str,
                 keys: int | None) -> checks.Verdict:
    """Restore the uploaded dump `blob` into the running scratch container and check it."""
    if scratch.kind is ServiceKind.POSTGRES:
        return await _verify_postgres(client, scratch, container, blob)
    await _load_rdb(client, container, blob, _redis_env(scratch.password))
    found = int((await output(client, container, ["redis-cli", "DBSIZE"],
                              _redis_env(scratch.password))).strip())
    return checks.redis_verdict(keys or 0, found)


async def _verify_postgres(client: NodeAgentClient, scratch: shape.Instance, container: str,
                           blob: str) -> checks.Verdict:
    toc = await output(client, container, ["pg_restore", "-l"], stdin=blob)
    rows = await _dumped_rows(client, container, blob)
    await _pg_restore(client, container, scratch, blob, clean=False)
    listing = await output(client, container, ["psql", "-X", "-A", "-t", "-F", "\t",
                                               "-v", "ON_ERROR_STOP=1",
                                               *_pg_target(scratch.user),
                                               "-c", checks.TABLE_COUNTS_SQL],
                           _pg_env(scratch.password))
    return checks.postgres_verdict(checks.toc_tables(toc), rows,
                                   checks.restored_counts(listing))


async def _dumped_rows(client: NodeAgentClient, container: str, blob: str) -> dict[
        checks.Table, int]:
    """Rows per table as the dump holds them: its data as SQL, COPY lines counted."""
    result = await run(client, container, ["pg_restore", "--data-only", "-f", "-"], stdin=blob)
    counter = checks.CopyCounter()
    try:
        async for chunk in client.read_blob(result.stdout.id):
            counter.feed(chunk)
    finally:
        await client.delete_blob(result.stdout.id)
    return counter.finish()


async def _pg_restore(client: NodeAgentClient, container: str, target: shape.Instance,
                      blob: str, *, clean: bool) -> None:
    replace = ["--clean", "--if-exists"] if clean else []
    await output(client, container, ["pg_restore", "--no-owner", "--no-privileges",
                                     "--exit-on-error", *replace, *_pg_target(target.user)],
                 _pg_env(target.password), stdin=blob)


async def _load_rdb(client: NodeAgentClient, container: str, blob: str, env: dict[str, str]
                    ) -> None:
    """Into a loader/scratch Redis (scratch_spec): write the file, then reload from it."""
    await output(client, container, ["dd", f"of=/data/{REDIS_RESTORE}", "bs=1M"], stdin=blob)
    answer = await output(client, container, ["redis-cli", "DEBUG", "RELOAD", "NOSAVE"], env)
    if answer.strip() != "OK":
        raise ServerFailed(f"Redis did not load the snapshot: {answer.strip()[:300]}")


async def load_postgres(client: NodeAgentClient, target: shape.Instance, blob: str, *,
                        clean: bool) -> None:
    """Into the service's own running container (`clean`: its objects replaced)."""
    await _pg_restore(client, shape.container_name(target.site), target, blob, clean=clean)


async def load_redis_volume(client: NodeAgentClient, loader: shape.Instance, container: str,
                            blob: str) -> None:
    """Into a loader on the (stopped) service's volume: the snapshot loaded, its old AOF
    removed, then AOF written anew from memory, so the service starts with this data."""
    env = _redis_env(loader.password)
    await output(client, container, ["rm", "-rf", "/data/appendonlydir", "/data/dump.rdb"])
    await _load_rdb(client, container, blob, env)
    await output(client, container, ["redis-cli", "CONFIG", "SET", "appendonly", "yes"], env)
    deadline = time.monotonic() + AOF_SECONDS
    while not checks.aof_written(await output(client, container,
                                              ["redis-cli", "INFO", "persistence"], env)):
        if time.monotonic() > deadline:
            raise ServerFailed(f"Redis in {container} did not finish writing its AOF")
        await asyncio.sleep(AOF_POLL_SECONDS)
    await output(client, container, ["rm", "-f", f"/data/{REDIS_RESTORE}"])
