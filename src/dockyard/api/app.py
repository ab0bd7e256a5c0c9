"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from dockyard import __version__
from dockyard.api import dashboard
from dockyard.api.deps import PlatformDep
from dockyard.api.errors import install_error_handlers
from dockyard.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from dockyard.api.openapi import install_openapi, operation_id
from dockyard.api.routes import (
    alerts,
    app_metrics,
    auth,
    autoscale,
    backups,
    credentials,
    deploys,
    domains,
    env,
    git,
    history,
    hooks,
    invitations,
    logs,
    overview,
    previews,
    processes,
    projects,
    provision,
    servers,
    services,
    stateful,
    upgrades,
    workspaces,
)
from dockyard.api.routes import metrics as metrics_routes
from dockyard.api.routing import API_PREFIX, add_routes
from dockyard.core import agents, deployments, health, hook_queue, own_logs, traffic
from dockyard.core import autoscale as autoscaling
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel import host_lock
from dockyard.kernel.errors import NotMigrated
from dockyard.kernel.metrics.middleware import install_request_metrics
from dockyard.kernel.schema_version import is_migrated
from dockyard.kernel.settings import Settings
from dockyard.models.schemas import Health

ROUTERS = (auth, workspaces, invitations, projects, services, env, servers, credentials, history,
           deploys, logs, processes, stateful, backups, domains, provision, upgrades,
           hooks, previews, app_metrics, alerts, autoscale, overview)
DEPLOY_PATH = f"{API_PREFIX}/infra/deploy"
GIT_PATHS = "/git/"  # git's pushes stream (api/routes/git.py)
HOOK_PATHS = f"{API_PREFIX}/hooks/"  # forges' deliveries, read within their own limit
SHUTDOWN_WAIT_SECONDS = 30.0
LOOPS_LOCK = "api-loops.lock"  # in the data dir: held by the API process that runs the loops
LOOPS_RETRY_SECONDS = 2.0
log = logging.getLogger(__name__)


async def open_platform(settings: Settings) -> Platform:
    """Open the platform, refusing to serve a database that is not migrated."""
    platform = Platform.open(settings)
    if not await is_migrated(platform.db):
        await platform.close()
        raise NotMigrated("the database is not migrated; run `dockyard migrate` (or `dockyard up`)")
    return platform


def create_app(settings: Settings, platform: Platform | None = None) -> FastAPI:
    """The API. Pass `platform` to share one already opened (tests, embedded use)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.platform = platform or await open_platform(settings)
        if platform is None:
            app.state.deploys = _new_runner(app.state.platform)
        await app.state.deploys.recover()
        async with _in_background(_lead_loops(app.state.platform, app.state.deploys)):
            yield
        await app.state.deploys.shutdown(SHUTDOWN_WAIT_SECONDS)
        if platform is None:
            await app.state.platform.close()

    app = FastAPI(title="Dockyard", version=__version__, lifespan=lifespan,
                  generate_unique_id_function=operation_id)
    if platform is not None:
        app.state.platform = platform
        app.state.deploys = _new_runner(platform)
    add_routes(app, *(module.router for module in ROUTERS),
               metrics_routes.router,  # at /metrics/requests, as PRODUCT.md names it
               git.router,  # at /git: a remote for git, not part of the JSON API
               dashboard.router)  # at / and /assets: the dashboard's built files
    app.add_api_route("/healthz", _healthz, methods=["GET"], tags=["health"], name="healthz")
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       streamed={DEPLOY_PATH: settings.max_archive_bytes,
                                 GIT_PATHS: settings.max_archive_bytes,
                                 HOOK_PATHS: settings.max_hook_body_bytes})
    install_request_metrics(app, settings)  # inside RequestIdMiddleware: records see the id
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    install_openapi(app)
    return app


def _new_runner(platform: Platform) -> DeployRunner:
    """The deploy engine, acting on the webhook deliveries queued for each deployment's
    service when it ends."""
    runner = deployments.new_runner(platform)
    hook_queue.watch(platform, runner)
    return runner


@asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _lead_loops(platform: Platform, runner: DeployRunner) -> None:
    """Run the background loops in one API process of this machine (several serve the API):
    the one holding the lock file; another takes over within seconds if it exits."""
    async with host_lock.held(platform.settings.data_dir / LOOPS_LOCK, LOOPS_RETRY_SECONDS):
        log.info("this process (pid %d) runs the API's background loops", os.getpid())
        async with (_agent_polling(platform, runner), _job_worker(platform),
                    _in_background(own_logs.rotator(platform.settings).run())):
            await asyncio.Event().wait()


@asynccontextmanager
async def _job_worker(platform: Platform) -> AsyncIterator[None]:
    """The job worker, when it runs in this process (DOCKYARD_WORKER=embedded); at the end
    it finishes or hands back its jobs, as the worker process does on SIGTERM."""
    if platform.settings.worker != "embedded":
        yield
        return
    from dockyard.kernel.queue.embedded import embedded_worker

    log.info("this process (pid %d) runs the job worker", os.getpid())
    async with embedded_worker(platform.settings, platform.db):
        yield


@asynccontextmanager
async def _agent_polling(platform: Platform, runner: DeployRunner) -> AsyncIterator[None]:
    """Poll every server's agent in the background while the API runs (0 s turns it off),
    watch whether each server's copies of services take traffic, and act on the webhook
    deliveries queued while no process ran."""
    interval = platform.settings.agent_poll_seconds
    watch = traffic.TrafficWatch(platform)
    tasks = [asyncio.create_task(watch.run_forever(platform.settings.traffic_check_seconds)),
             asyncio.create_task(hook_queue.resume(platform, runner)),
             asyncio.create_task(autoscaling.run_forever(platform, runner))]
    if interval:
        tasks.append(asyncio.create_task(agents.poll_forever(platform, interval)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _healthz(platform: PlatformDep) -> Health:
    """Liveness and database reachability."""
    return await health.check(platform)
