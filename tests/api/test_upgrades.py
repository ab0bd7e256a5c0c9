"""Agent upgrades from the control plane: the bundle it serves, and `upgrade_servers` against
in-process agents (real release layouts in tmp, the self-test a real python) over ASGI."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import auth, release, tls
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.release import Layout
from dockyard.agent.settings import AgentSettings
from dockyard.agent.upgrade import NOT_FROM_BUNDLE
from dockyard.core import agents
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.core.upgrade import EVENT_KIND, upgrade_servers
from dockyard.kernel.errors import Forbidden, NotFound
from dockyard.models.enums import Role
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server, ServerEvent
from dockyard.models.upgrades import UpgradeEvent, UpgradeRequest
from tests import sqlite_only
from tests.agent.test_upgrade import bundle_of
from tests.agent.test_upgrade_inplace import failing_at_start, start_released_agent
from tests.conftest import Account

database_url = sqlite_only.database_url  # nothing here depends on the database kind

OLD = "0.0.9+0000000000"
ClientOf = Callable[[ServerPublic], NodeAgentClient]


async def test_the_bundle_is_served_by_its_digest_to_anyone(
        client: httpx.AsyncClient, owner: Account) -> None:
    bundle = release.current_bundle()
    info = await client.get("/api/v1/agent/bundle", headers=owner.headers)
    assert info.json() == {"version": bundle.version, "sha256": bundle.sha256,
                           "size": bundle.size}
    served = await client.get(f"/api/v1/agent/bundle/{bundle.sha256}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/gzip"
    assert hashlib.sha256(served.content).hexdigest() == bundle.sha256
    assert (await client.get(f"/api/v1/agent/bundle/{'0' * 64}")).status_code == 404
    for bad in ("A" * 64, "a" * 63, f"{bundle.sha256}0", "..%2F" + "a" * 59):
        assert (await client.get(f"/api/v1/agent/bundle/{bad}")).status_code in (404, 422)
    assert (await client.get("/api/v1/agent/bundle/" + "A" * 64)).status_code == 422
    assert (await client.get("/api/v1/agent/bundle")).status_code == 401


def agent_app(root: Path, secret: str, *, from_bundle: bool) -> httpx.ASGITransport:
    """An agent whose running release is `OLD` (a directory that `current` points at)."""
    layout = Layout(root / "home")
    layout.release(OLD).mkdir(parents=True)
    release.replace_link(layout.current, layout.release(OLD))
    settings = AgentSettings(state_dir=root / "agent", tls=False,
                             releases_dir=layout.home if from_bundle else None,
                             docker_host=f"unix://{root}/no-docker.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(secret))
    return httpx.ASGITransport(app=create_app(settings))


async def add_server(platform: Platform, owner: Account, name: str, version: str) -> None:
    server = await register_server(platform, owner.workspace_id, name=name, provider="manual",
                                   ip="127.0.0.1", agent_port=9, agent_insecure_http=True)

    async def tx(s: AsyncSession) -> None:
        await s.execute(update(Server).where(Server.id == server.id)
                        .values(agent_version=version))

    await platform.db.write(tx)


async def fleet(platform: Platform, owner: Account, tmp_path: Path,
                servers: dict[str, tuple[str, bool]]) -> ClientOf:
    """Servers by name (their recorded version, whether installed from a bundle), each with
    an in-process agent; a name without an agent is unreachable."""
    secret = await agents.secret_for(platform, owner.workspace_id)
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    for name, (version, from_bundle) in servers.items():
        await add_server(platform, owner, name, version)
        transports[name] = agent_app(tmp_path / name, secret, from_bundle=from_bundle)

    def client_of(server: ServerPublic) -> NodeAgentClient:
        transport = transports.get(server.name) or httpx.AsyncHTTPTransport()
        url = f"http://{server.name}.test" if server.name in transports else "http://127.0.0.1:9"
        return NodeAgentClient(url, secret, transport=transport)

    return client_of


async def events_of(platform: Platform, owner: Account, client_of: ClientOf,
                    request: UpgradeRequest) -> list[tuple[str | None, str, str]]:
    found = await upgrade_servers(platform, owner.actor(Role.OWNER), request, client_of)
    return [(e.server, e.step.value, e.message) async for e in found]


def steps(events: list[tuple[str | None, str, str]]) -> list[tuple[str | None, str]]:
    return [(server, step) for server, step, _ in events]


async def recorded(platform: Platform) -> dict[str, tuple[str | None, list[str]]]:
    async def tx(s: AsyncSession) -> dict[str, tuple[str | None, list[str]]]:
        rows = (await s.scalars(select(Server))).all()
        said = (await s.scalars(select(ServerEvent).where(
            ServerEvent.kind == EVENT_KIND).order_by(ServerEvent.id))).all()
        return {row.name: (row.agent_version, [e.message for e in said if e.server_id == row.id])
                for row in rows}

    return await platform.db.read(tx)


async def test_outdated_agents_are_upgraded_current_ones_skipped_others_refused(
        platform: Platform, owner: Account, tmp_path: Path) -> None:
    client_of = await fleet(platform, owner, tmp_path, {
        "a-old": (OLD, True), "b-current": (release.code_version(), True),
        "c-packaged": (OLD, False)})
    events = await events_of(platform, owner, client_of, UpgradeRequest(all=True))
    assert steps(events) == [
        ("a-old", "uploading"), ("a-old", "restarting"), ("a-old", "upgraded"),
        ("b-current", "skipped"), ("c-packaged", "uploading"), ("c-packaged", "refused"),
        (None, "done")]
    assert events[5][2] == NOT_FROM_BUNDLE
    rows = await recorded(platform)
    assert rows["a-old"][0] == release.code_version()
    assert rows["a-old"][1] == [f"upgraded: agent {release.code_version()} answers"]
    assert rows["b-current"] == (release.code_version(), [])
    assert rows["c-packaged"] == (OLD, [f"refused: {NOT_FROM_BUNDLE}"])


async def test_the_first_failure_stops_the_upgrade(
        platform: Platform, owner: Account, tmp_path: Path) -> None:
    client_of = await fleet(platform, owner, tmp_path, {"b-outdated": (OLD, True)})
    await add_server(platform, owner, "a-gone", OLD)
    events = await events_of(platform, owner, client_of, UpgradeRequest(all=True))
    assert steps(events) == [("a-gone", "uploading"), ("a-gone", "failed"), (None, "done")]
    assert "agent unreachable" in events[1][2]
    assert events[2][2].startswith("stopped at a-gone: 0 of 2")
    layout = Layout(tmp_path / "b-outdated" / "home")
    assert release.link_target(layout.current) == layout.release(OLD).resolve()
    assert (await recorded(platform))["b-outdated"] == (OLD, [])


async def test_one_server_by_name_and_the_refusals_before_any_event(
        platform: Platform, owner: Account, tmp_path: Path) -> None:
    client_of = await fleet(platform, owner, tmp_path, {
        "a-old": (OLD, True), "b-old": (OLD, True)})
    events = await events_of(platform, owner, client_of, UpgradeRequest(server="b-old"))
    assert [server for server, _ in steps(events)] == ["b-old"] * 3 + [None]
    with pytest.raises(NotFound):
        await upgrade_servers(platform, owner.actor(Role.OWNER), UpgradeRequest(server="zz"))
    with pytest.raises(Forbidden):
        await upgrade_servers(platform, owner.actor(Role.MEMBER), UpgradeRequest(all=True))


async def test_the_api_streams_the_events_and_refuses_bad_requests(
        client: httpx.AsyncClient, platform: Platform, owner: Account) -> None:
    await add_server(platform, owner, "gone", OLD)
    path = "/api/v1/infra/servers/upgrade"
    for body in ({}, {"server": "gone", "all": True}, {"server": "Bad Name"}):
        assert (await client.post(path, json=body, headers=owner.headers)).status_code == 422
    missing = await client.post(path, json={"server": "nope"}, headers=owner.headers)
    assert missing.status_code == 404
    answer = await client.post(path, json={"server": "gone"}, headers=owner.headers)
    assert answer.headers["content-type"].startswith("text/event-stream")
    kinds = [line.removeprefix("event: ") for line in answer.text.splitlines()
             if line.startswith("event: ")]
    assert kinds == ["uploading", "failed", "done"]
    data = [UpgradeEvent.model_validate_json(line.removeprefix("data: "))
            for line in answer.text.splitlines() if line.startswith("data: ")]
    assert data[1].server == "gone"
    assert data[1].message.startswith("agent unreachable")


async def test_a_release_that_fails_at_start_is_rolled_back_and_the_upgrade_stops(
        platform: Platform, owner: Account, tmp_path: Path) -> None:
    """Real agent processes (pinned TLS), the first pushed a release whose agent fails at
    start: its watchdog puts the old one back, which the control plane tells apart."""
    secret = await agents.secret_for(platform, owner.workspace_id)
    bad = bundle_of(tmp_path, "bad", failing_at_start)
    started = [start_released_agent(tmp_path / name, key=auth.derive_agent_key(secret))
               for name in ("a-node", "b-node")]
    try:
        for name, agent in zip(("a-node", "b-node"), started, strict=True):
            fingerprint = tls.fingerprint_of_file(
                tls.CertificateFiles(agent.state_dir).certificate)
            await register_server(platform, owner.workspace_id, name=name, provider="manual",
                                  ip="127.0.0.1", agent_port=agent.port,
                                  agent_fingerprint=fingerprint)
        found = await upgrade_servers(platform, owner.actor(Role.OWNER),
                                      UpgradeRequest(all=True), bundle=bad)
        events = [(e.server, e.step.value, e.message) async for e in found]
    finally:
        for agent in started:
            agent.stop()
    assert steps(events) == [("a-node", "uploading"), ("a-node", "restarting"),
                             ("a-node", "rolled_back"), (None, "done")]
    assert events[2][2].startswith(f"agent {release.code_version()} answers again")
    rows = await recorded(platform)
    assert rows["a-node"][0] == release.code_version()
    assert rows["a-node"][1][0].startswith("rolled_back: agent")
    assert rows["b-node"][1] == []
