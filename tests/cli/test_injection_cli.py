"""`dockyard env list` and `dockyard services redeploy` as a user runs them, against an API
started with `up`; the stateful services are rows written into its database (no container)."""

from __future__ import annotations

from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.kernel.settings import Settings
from dockyard.models.enums import ServiceKind
from tests.injection_rows import add_stateful
from tests.live import Live, ok, ok_json

MASKED = "postgresql://postgres:********@postgres.shop.dockyard.internal:20001/postgres"


async def add_postgres(live: Live, workspace_id: str) -> None:
    """A Postgres `postgres` in shop, recorded in the live control plane's database."""
    platform = Platform.open(Settings.model_validate({"data_dir": live.data_dir}))
    try:
        await register_server(platform, workspace_id, name="node1", provider="manual",
                              ip="10.0.0.1", agent_port=8421, agent_insecure_http=True)
        await add_stateful(platform, workspace_id, "shop", "postgres", ServiceKind.POSTGRES,
                           "node1", 20001)
    finally:
        await platform.close()


async def test_env_list_marks_what_is_injected_and_redeploy_says_what_it_did(
        live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop"))
    where = ("-p", "shop", "-s", "web")
    ok(live.run("env", "set", "DEBUG=1", *where))
    await add_postgres(live, ok_json(live.run("whoami", "--json"))["workspace_id"])

    table = ok(live.run("env", "list", *where))
    lines = {line.split()[0]: line.split() for line in table.splitlines()
             if line.strip().startswith(("DATABASE_URL", "DEBUG"))}
    assert lines["DATABASE_URL"] == ["DATABASE_URL", "True", "postgres", "-",
                                     MASKED[:57] + "..."]  # a listing's long values are cut
    assert lines["DEBUG"][:3] == ["DEBUG", "False", "you"]
    assert "pw-postgres" not in table
    shown = ok_json(live.run("env", "list", *where, "--show-secret", "--json"))
    assert [(r["key"], r["source"]) for r in shown] == [("DATABASE_URL", "injected"),
                                                        ("DEBUG", "user")]
    assert shown[0]["value"] == MASKED.replace("********", "pw-postgres")  # owners may

    ok(live.run("env", "set", "DATABASE_URL=postgresql://me@db.example.test/x", *where))
    table = ok(live.run("env", "list", *where))
    assert "you, not postgres" in table

    said = ok(live.run("services", "redeploy", "-p", "shop"))
    assert said.strip() == ("No app of shop has a release yet: each gets the stateful "
                            "services at its first deploy.")
    assert ok_json(live.run("services", "redeploy", "-p", "shop", "--json")) == []
