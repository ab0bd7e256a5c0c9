"""Commands that run the control plane on this machine: up, down, serve, migrate."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from dockyard.cli import daemons
from dockyard.cli.account import login_with_password
from dockyard.cli.client import CliError
from dockyard.cli.output import done
from dockyard.kernel.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dockyard.core.bootstrap import FirstOwner
    from dockyard.models.schemas import ServerPublic

# The server's modules are imported inside the commands that run it, so that the client
# commands start fast.

START_TIMEOUT = 30.0


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _healthy(url):
            return
        if process.poll() is not None:
            raise CliError(f"the API exited with code {process.returncode}; see {log}")
        time.sleep(0.2)
    raise CliError(f"the API did not answer at {url} within {START_TIMEOUT:.0f}s; see {log}")


def _start_api(settings: Settings) -> None:
    """Start `dockyard serve` detached from this terminal, logging to the data dir."""
    process = daemons.start(daemons.API, settings)
    _wait_healthy(settings.api_url, process, daemons.API.log_file(settings))


def queue_daemons(settings: Settings) -> list[daemons.Daemon]:
    """The worker unless the API runs it (it reads the database outbox without Redis); the
    relay with Redis."""
    wanted = [] if settings.worker == "embedded" else [daemons.WORKER]
    return [*wanted, daemons.RELAY] if settings.redis_url else wanted


def _start_queue_processes(settings: Settings) -> None:
    for daemon in queue_daemons(settings):
        if daemons.running_pid(daemon, settings) is None:
            daemons.start(daemon, settings)
            done(f"Started the {daemon.name} (logs: {daemon.log_file(settings)}).")


async def _first_owner(settings: Settings, email: str, password: str | None) -> FirstOwner:
    from dockyard.core.bootstrap import ensure_first_owner
    from dockyard.core.platform import Platform

    platform = Platform.open(settings)
    try:
        return await ensure_first_owner(platform, email, password)
    finally:
        await platform.close()


def up(
    email: Annotated[
        str, typer.Option(envvar="DOCKYARD_ADMIN_EMAIL", help="The first owner's email.")
    ] = "admin@example.com",
    password: Annotated[
        str | None,
        typer.Option(envvar="DOCKYARD_ADMIN_PASSWORD", help="The first owner's password."),
    ] = None,
    local_node: Annotated[bool, typer.Option(
        envvar="DOCKYARD_LOCAL_NODE",
        help="Also run this machine as a server: Docker, an agent and nginx (needs root).",
    )] = False,
) -> None:
    """Bring the control plane up here: key, database, first owner, API in the background."""
    settings = _migrated_settings()
    owner = asyncio.run(_first_owner(settings, email, password))
    url = settings.api_url
    if _healthy(url):
        done(f"The API is already running at {url}.")
    else:
        _start_api(settings)
        done(f"The API is running at {url} (logs: {daemons.API.log_file(settings)}).")
    _start_queue_processes(settings)
    _report_owner(url, owner, chosen=password is not None)
    if local_node:
        _report_local_node(asyncio.run(_local_node(settings)))


async def _local_node(settings: Settings) -> ServerPublic:
    from dockyard.core.local_node import ensure_local_node
    from dockyard.core.platform import Platform

    platform = Platform.open(settings)
    try:
        return await ensure_local_node(platform)
    finally:
        await platform.close()


def _report_local_node(server: ServerPublic) -> None:
    if server.status not in ("active", "degraded"):
        raise CliError(f"this machine's agent at {server.ip}:{server.agent_port} does not "
                       "answer; see the agent log in the data directory (local-agent/)")
    done(f"This machine is server '{server.name}' (agent {server.agent_version}, "
         f"port {server.agent_port}).")
    if server.status_reason:
        done(f"It is {server.status}: {server.status_reason}")


def _report_owner(url: str, owner: FirstOwner, chosen: bool) -> None:
    if owner.password is None:
        done(f"Log in with: dockyard login --url {url}")
        done(f"Dashboard: {url}/")
        return
    login_with_password(url, owner.email, owner.password)
    done(f"Created the owner {owner.email} in workspace '{owner.workspace}'.")
    if chosen:
        done("Password: the one given in DOCKYARD_ADMIN_PASSWORD / --password")
    else:
        done(f"Password (shown once, keep it): {owner.password}")
    done(f"This CLI is logged in. Elsewhere: dockyard login --url {url} --email {owner.email}")
    done(f"Dashboard: {url}/ (sign in as {owner.email})")
    done(f"API documentation: {url}/docs")


def down(
    local_node: Annotated[bool, typer.Option(
        help="Also stop this machine's agent and its nginx (containers keep running).")] = False,
) -> None:
    """Stop the API, worker and relay started by `dockyard up`."""
    settings = Settings()
    if local_node:
        from dockyard.core.local_node import launch_of, stop_local_node

        stop_local_node(launch_of(settings), settings)
        done("This machine's agent is stopped.")
    stopped = [d.name for d in daemons.ALL if daemons.stop(d, settings)]
    if daemons.API.name not in stopped:
        raise CliError("no API started by `dockyard up` is recorded here")
    done(f"The {' and the '.join(stopped)} stopped.")


def migrate() -> None:
    """Create the key if missing and migrate the database to the newest schema."""
    _migrated_settings()
    done("The database is up to date.")


def _migrated_settings() -> Settings:
    from dockyard.kernel.migrate import upgrade
    from dockyard.kernel.security import ensure_key_file

    settings = Settings()
    ensure_key_file(settings.key_file)
    upgrade(settings)
    return settings


async def _check_migrated(settings: Settings) -> bool:
    from dockyard.core.platform import Platform
    from dockyard.kernel.schema_version import is_migrated

    platform = Platform.open(settings)
    try:
        return await is_migrated(platform.db)
    finally:
        await platform.close()


def serve() -> None:
    """Run the API in the foreground (what `dockyard up` starts in the background)."""
    import uvicorn

    settings = Settings()
    if not asyncio.run(_check_migrated(settings)):
        raise CliError("the database is not migrated; run `dockyard migrate` (or `dockyard up`)")
    _configure_logging(settings)
    uvicorn.run(f"{__name__}:api_app", factory=True, **uvicorn_options(settings))


def api_app() -> FastAPI:
    """The API of one serving process, from the environment's settings."""
    from dockyard.api.app import create_app

    settings = Settings()
    _configure_logging(settings)  # each worker process is a fresh interpreter
    app = create_app(settings)
    _tune_garbage_collector()
    return app


def _tune_garbage_collector() -> None:
    """The modules and the app live as long as the process: freeze them out of collections
    (a full collection walking them paused requests for 100-200 ms), and collect the young
    generation less often (bench/api_bench.py: p99 latency 140-165 ms -> 20-25 ms)."""
    gc.collect()  # start-up's garbage first: a frozen object is never freed
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _configure_logging(settings: Settings) -> None:
    from dockyard.kernel.logging import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    logging.getLogger("uvicorn.access").propagate = settings.access_log


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the API (the bench serves its bare endpoint the same way)."""
    return {"host": settings.host, "port": settings.port, "log_config": None,
            "timeout_graceful_shutdown": 10, "workers": settings.api_workers,
            "access_log": settings.access_log}


def openapi() -> None:
    """Print the API's OpenAPI document (JSON), for generating clients."""
    import json
    import tempfile

    from dockyard.api.app import create_app

    with tempfile.TemporaryDirectory() as scratch:  # the document needs no data of this machine
        document = create_app(Settings(data_dir=Path(scratch))).openapi()
    typer.echo(json.dumps(document, indent=1, sort_keys=True))
